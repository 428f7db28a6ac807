"""Requests read in a worker process, through a real mitmdump: every turn reported, also when a worker dies or the
proxy stops with reads in flight, and the same report as when the proxy reads them itself."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anthropic
import pytest
from claude_code import MODEL, claude_code_with_a_sub_agent

from cachepin_tools.harness.processes import Mitmdump, Simulator, wait_until

pytestmark = pytest.mark.e2e

READY = re.compile(r"request reader process ready \(pid (\d+);")
SALT = "a-salt-both-runs-share-0123456789"


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[Simulator]:
    with Simulator("--accounts", "1", "--min-tokens", "64", "--log", str(tmp_path / "served.jsonl")) as sim:
        yield sim


def served(tmp_path: Path) -> int:
    path = tmp_path / "served.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def audit(mitmdump, simulator: Simulator, tmp_path: Path, workers: int) -> Mitmdump:  # type: ignore[no-untyped-def]
    return mitmdump(simulator.url, ["inject.py", "cache_audit.py"], options={
        "cache_report": str(tmp_path / "report.json"), "cache_events": str(tmp_path / "events.jsonl"),
        "cache_minimums": "*=64", "cache_workers": workers, "affinity_salt": SALT})


def ask(url: str, session: str, turns: int = 1, size: int = 100_000) -> None:
    """A conversation of ``turns`` turns over a system prompt of ``size`` characters (a long agent context)."""
    system = [{"type": "text", "text": f"{session} " + "context " * (size // 8),
               "cache_control": {"type": "ephemeral"}}]
    messages: list[dict] = [{"role": "user", "content": "go"}]
    with anthropic.Anthropic(base_url=url, api_key="sk-ant-test", max_retries=0,
                             default_headers={"X-Session-Id": session}) as client:
        for n in range(turns):
            reply = client.messages.create(model=MODEL, max_tokens=8, system=system, messages=messages)
            messages += [{"role": "assistant", "content": reply.content[0].text}, {"role": "user", "content": f"{n}"}]


def ready_pids(proxy: Mitmdump) -> list[int]:
    return [int(pid) for pid in READY.findall(proxy.output)]


def until_a_worker_reads(proxy: Mitmdump, known: int = 0) -> int:
    """Requests until a (new) worker answers: the first ones after a start are read in the proxy."""
    def ready() -> bool:
        ask(proxy.url, "warm-up", size=1_000)
        return len(ready_pids(proxy)) > known
    assert wait_until(ready, timeout=60, interval=0.1), proxy.output
    return ready_pids(proxy)[-1]


def report(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "report.json").read_text())


def turns_in(tmp_path: Path) -> int:
    return sum(session["requests"] + session["errors"] for session in report(tmp_path)["sessions"])


def events(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]


def test_every_turn_of_a_burst_is_reported(simulator, mitmdump, tmp_path: Path) -> None:
    proxy = audit(mitmdump, simulator, tmp_path, workers=1)
    until_a_worker_reads(proxy)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: ask(proxy.url, f"burst-{n}", turns=3), range(16)))
    assert proxy.stop() == 0, proxy.output
    assert turns_in(tmp_path) == served(tmp_path) == len(events(tmp_path))
    burst = [s for s in report(tmp_path)["sessions"] if s["session_id"].startswith("burst-")]
    assert len(burst) == 16
    assert all([t["verdict"] for t in s["turns"]] == ["cold", "hit", "hit"] for s in burst)
    assert "read in the proxy instead" not in proxy.output


@pytest.mark.parametrize("workers", [0, 1])
def test_a_proxy_stopped_with_reads_in_flight_reports_every_request(simulator, mitmdump, tmp_path: Path,
                                                                     workers: int) -> None:
    proxy = audit(mitmdump, simulator, tmp_path, workers=workers)
    if workers:
        until_a_worker_reads(proxy)
    else:
        ask(proxy.url, "warm-up", size=1_000)
    before = served(tmp_path)
    stopped = threading.Event()

    def client(n: int) -> None:
        try:
            ask(proxy.url, f"burst-{n}", turns=20, size=400_000)
        except (anthropic.APIConnectionError, anthropic.APIStatusError):
            assert stopped.is_set()  # only the shutdown may end it

    with ThreadPoolExecutor(8) as pool:
        for n in range(8):
            pool.submit(client, n)
        assert wait_until(lambda: served(tmp_path) >= before + 12, timeout=60)
        stopped.set()
        answered = served(tmp_path)
        assert proxy.stop() == 0, proxy.output
    # Every request upstream had answered before the stop is a turn (and those it had not, errors), in the report
    # as in the events; one that began after the reports were written is in neither.
    assert turns_in(tmp_path) >= answered
    assert turns_in(tmp_path) == len(events(tmp_path))


def test_a_worker_that_dies_loses_no_turn(simulator, mitmdump, tmp_path: Path) -> None:
    proxy = audit(mitmdump, simulator, tmp_path, workers=1)
    first = until_a_worker_reads(proxy)
    with ThreadPoolExecutor(8) as pool:
        burst = [pool.submit(ask, proxy.url, f"burst-{n}", 3, 400_000) for n in range(8)]
        assert wait_until(lambda: served(tmp_path) >= 6, timeout=60)
        os.kill(first, signal.SIGKILL)
        for done in burst:
            done.result()
    second = until_a_worker_reads(proxy, known=1)
    assert second != first
    assert proxy.stop() == 0, proxy.output
    assert "request reader process died" in proxy.output
    assert turns_in(tmp_path) == served(tmp_path) == len(events(tmp_path))
    burst_sessions = [s for s in report(tmp_path)["sessions"] if s["session_id"].startswith("burst-")]
    assert sorted(len(s["turns"]) for s in burst_sessions) == [3] * 8


def comparable(tmp_path: Path) -> list[dict]:
    """The report's sessions without what differs run to run (flow ids, times) or is the warm-up's."""
    volatile = {"flow_id", "started_at", "ttft_ms", "duration_ms"}
    return [{**session, "turns": [{k: v for k, v in turn.items() if k not in volatile} for turn in session["turns"]]}
            for session in report(tmp_path)["sessions"] if session["session_id"] != "warm-up"]


def test_a_worker_reports_what_the_proxy_reads_itself(simulator, mitmdump, tmp_path: Path) -> None:
    reports = []
    for workers in (0, 1):
        run = tmp_path / f"workers-{workers}"
        run.mkdir()
        with Simulator("--accounts", "3", "--min-tokens", "64") as round_robin:  # misses, with their reasons
            proxy = audit(mitmdump, round_robin, run, workers)
            if workers:
                until_a_worker_reads(proxy)
            claude_code_with_a_sub_agent(proxy.url)
            ask(proxy.url, "s-anthropic", turns=3, size=20_000)
            assert proxy.stop() == 0, proxy.output
        reports.append(comparable(run))
        assert bool(ready_pids(proxy)) == bool(workers)
    assert reports[0] == reports[1]
    assert {turn["verdict"] for session in reports[0] for turn in session["turns"]} >= {"cold", "hit"}


def test_a_killed_proxy_leaves_no_reader_behind(simulator, mitmdump, tmp_path: Path) -> None:
    """SIGKILL (the OOM killer, a hard stop) gives the proxy no chance to stop its reader: the reader sees that
    its parent is gone and ends, and with it the resource tracker that ``spawn`` started."""
    proxy = audit(mitmdump, simulator, tmp_path, workers=1)
    reader = until_a_worker_reads(proxy)
    children = [int(pid) for task in Path(f"/proc/{proxy.proc.pid}/task").iterdir()
                for pid in (task / "children").read_text().split()]
    assert reader in children and len(children) == 2  # the reader and the resource tracker
    proxy.proc.kill()
    proxy.proc.wait(10)
    assert wait_until(lambda: not any(map(alive, children)), timeout=15), children


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped (by whatever init this machine has)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
