"""Reports rebuilt from events (scripts/report) and a proxy that resumes its events (cache_resume), with real
mitmdump processes in front of the gateway simulator and Claude Code's traffic with a sub-agent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from claude_code import SESSION, claude_code_with_a_sub_agent

from cachepin_tools.harness.processes import ROOT, Simulator

pytestmark = pytest.mark.e2e

ABOUT = ("generated_at", "started_at", "run_id", "versions")  # when and by what the report was written
TURN_FACTS = ("index", "verdict", "thread", "position", "model", "input_tokens", "cache_creation_input_tokens",
              "cache_read_input_tokens", "output_tokens", "cost")


def simulator() -> Simulator:
    return Simulator("--accounts", "3", "--min-tokens", "64")


def proxy(mitmdump, upstream: Simulator, folder: Path, **options: object):  # type: ignore[no-untyped-def]
    folder.mkdir(exist_ok=True)
    return mitmdump(upstream.url, ["inject.py", "cache_audit.py"], options={
        "cache_events": str(folder / "events.jsonl"), "cache_report": str(folder / "report.json"),
        "cache_junit": str(folder / "junit.xml"), "cache_minimums": "*=64", **options})


def rebuild(*events: Path, folder: Path, expect: str = "warm") -> subprocess.CompletedProcess[str]:
    """scripts/report, as the README runs it (its python, the same module)."""
    return subprocess.run(
        [str(ROOT / "scripts" / "report"), *map(str, events), "--json", str(folder / "rebuilt.json"),
         "--junit", str(folder / "rebuilt.xml"), "--html", str(folder / "rebuilt.html"), "--expect", expect],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def facts(report: dict) -> list[list[object]]:
    """What a conversation's report says of each turn, without what differs between two runs of it (flow ids,
    times)."""
    return [[turn[name] for name in TURN_FACTS] for session in report["sessions"] for turn in session["turns"]]


def test_the_events_of_one_run_rebuild_its_report(mitmdump, tmp_path: Path) -> None:
    with simulator() as upstream:
        running = proxy(mitmdump, upstream, tmp_path, cache_expect="warm", cache_min_hit=80)
        claude_code_with_a_sub_agent(running.url)
        assert running.stop() == 0, running.output
    rebuilt = rebuild(tmp_path / "events.jsonl", folder=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    written, again = read(tmp_path / "report.json"), read(tmp_path / "rebuilt.json")
    for about in ABOUT:
        written.pop(about), again.pop(about)
    again["expectations"]["min_hit"] = 80  # given to the proxy only
    assert again == written
    assert written["runs"][0]["turns"] == 7 and len(written["sessions"][0]["threads"]) == 2
    assert "cachepin report: 7 turns of 1 runs from 1 files" in rebuilt.stderr
    assert SESSION[:12] in rebuilt.stdout  # the table
    assert (tmp_path / "rebuilt.xml").read_text() == (tmp_path / "junit.xml").read_text()
    assert SESSION in (tmp_path / "rebuilt.html").read_text()


def test_two_replicas_splitting_a_conversation_make_the_report_of_one_proxy(mitmdump, tmp_path: Path) -> None:
    """Turns alternate between replicas A and B. On its own, each replica's report judges half a conversation;
    merged, the events give what one proxy carrying all of it reports."""
    fleet = {"affinity_salt": "the fleet's shared secret"}  # replicas name threads alike (README)
    with simulator() as upstream:
        single = proxy(mitmdump, upstream, tmp_path / "single", cache_expect="warm", **fleet)
        claude_code_with_a_sub_agent(single.url)
        assert single.stop() == 0, single.output
    with simulator() as upstream:  # the same traffic, on caches as cold as the single proxy's were
        a, b = proxy(mitmdump, upstream, tmp_path / "a", **fleet), proxy(mitmdump, upstream, tmp_path / "b", **fleet)
        claude_code_with_a_sub_agent(a.url, b.url)
        assert a.stop() == 0 and b.stop() == 0
    assert [len(read(tmp_path / name / "report.json")["sessions"][0]["turns"]) for name in "ab"] == [4, 3]
    rebuilt = rebuild(tmp_path / "a" / "events.jsonl", tmp_path / "b" / "events.jsonl", folder=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    merged, one = read(tmp_path / "rebuilt.json"), read(tmp_path / "single" / "report.json")
    assert facts(merged) == facts(one) and [turn[0] for turn in facts(merged)] == [1, 2, 3, 4, 5, 6, 7]
    assert merged["totals"] == one["totals"] and merged["ok"] is one["ok"] is True
    assert {run["instance"] for run in merged["runs"]} == {run["instance"] for name in "ab"
                                                          for run in read(tmp_path / name / "report.json")["runs"]}
    assert sorted(run["turns"] for run in merged["runs"]) == [3, 4]


def test_a_killed_proxy_leaves_events_that_rebuild_its_report(mitmdump, tmp_path: Path) -> None:
    with simulator() as upstream:
        running = proxy(mitmdump, upstream, tmp_path, cache_expect="warm")
        claude_code_with_a_sub_agent(running.url)
        running.proc.send_signal(signal.SIGKILL)
        assert running.stop() == -signal.SIGKILL
    assert not (tmp_path / "report.json").exists()  # no done(): no report
    rebuilt = rebuild(tmp_path / "events.jsonl", folder=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    (session,) = read(tmp_path / "rebuilt.json")["sessions"]
    assert [turn["verdict"] for turn in session["turns"]] == ["cold", "hit", "cold", "hit", "hit", "hit", "hit"]


def test_expectations_fail_a_rebuild_as_they_fail_the_proxy(mitmdump, tmp_path: Path) -> None:
    """Without the inject addon the simulator spreads turns over its accounts: later turns miss."""
    with simulator() as upstream:
        running = mitmdump(upstream.url, ["cache_audit.py"], options={
            "cache_events": str(tmp_path / "events.jsonl"), "cache_expect": "warm", "cache_minimums": "*=64"})
        claude_code_with_a_sub_agent(running.url)
        assert running.stop() == 3
    rebuilt = rebuild(tmp_path / "events.jsonl", folder=tmp_path)
    assert rebuilt.returncode == 3 and "cachepin report FAILED: session " in rebuilt.stderr
    assert rebuild(tmp_path / "events.jsonl", folder=tmp_path, expect="off").returncode == 0


def test_a_bad_line_is_named_and_the_rest_is_reported(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"torn\n')
    rebuilt = rebuild(events, tmp_path / "missing.jsonl", folder=tmp_path)
    assert rebuilt.returncode == 2
    assert f"cachepin report: cannot read {tmp_path / 'missing.jsonl'}: No such file or directory" in rebuilt.stderr
    rebuilt = rebuild(events, folder=tmp_path, expect="off")
    assert rebuilt.returncode == 2 and f"skipped {events}:1: not JSON" in rebuilt.stderr
    assert read(tmp_path / "rebuilt.json")["totals"]["requests"] == 0


@pytest.mark.parametrize("resume", [True, False])
def test_a_restarted_proxy_resumes_its_events(mitmdump, tmp_path: Path, resume: bool) -> None:
    """Turns 1-3 through one process, 4-7 through the next, on one events file."""
    with simulator() as upstream:
        processes = [proxy(mitmdump, upstream, tmp_path, cache_expect="warm", cache_resume=resume)]

        def route(n: int) -> str:
            if n == 3:  # a restart between turns 3 and 4
                assert processes[0].stop() == 0
                processes.append(proxy(mitmdump, upstream, tmp_path, cache_expect="warm", cache_resume=resume))
            return processes[-1].url

        claude_code_with_a_sub_agent(route=route)
        assert processes[1].stop() == 0, processes[1].output
    report = read(tmp_path / "report.json")
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    (session,) = report["sessions"]
    if resume:
        assert [turn["index"] for turn in session["turns"]] == [1, 2, 3, 4, 5, 6, 7]
        assert [run["turns"] for run in report["runs"]] == [3, 4]
        assert [event["turn"]["index"] for event in events] == [1, 2, 3, 4, 5, 6, 7]  # no pair twice
        assert "cachepin audit: resumed 3 turns of 1 earlier runs from" in processes[1].output
        assert "cachepin audit: nothing to resume:" in processes[0].output
        assert read(tmp_path / "report.json")["totals"]["requests"] == 7
    else:  # the report says it covers this run only; its turns are numbered from 1 again
        assert [turn["index"] for turn in session["turns"]] == [1, 2, 3, 4]
        assert [run["turns"] for run in report["runs"]] == [4] and report["runs"][0]["run_id"] == report["run_id"]
        assert [event["turn"]["index"] for event in events] == [1, 2, 3, 1, 2, 3, 4]
    assert len({event["run_id"] for event in events}) == 2
    # every later turn continues a conversation and reads, in the resumed run as in the other
    assert [turn["verdict"] for turn in session["turns"]][-4:] == ["hit", "hit", "hit", "hit"]
