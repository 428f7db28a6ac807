"""End to end: an output file that cannot be written fails the run, loudly, and keeps no other output from being
written.

A real mitmdump in front of the fake upstream: each file that fails is one ERROR line naming its option, its path
and the OS error, the other files are written all the same, and mitmdump exits with status 4 (over 3: a verdict
whose files are stale or short of lines backs nothing). A path that cannot be an output file stops mitmdump at
startup instead.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from llm_upstream import FakeUpstream

from cachepin_tools.harness.processes import ADDONS, BIN, Mitmdump

pytestmark = pytest.mark.e2e

DEV_FULL = Path("/dev/full")  # every write fails with ENOSPC, as on a full disk


def converse(proxy: Mitmdump, turns: int = 2) -> None:
    """One conversation of session ``s1``; the fake upstream never reports a read, so each turn after the first
    misses."""
    messages: list[dict[str, str]] = []
    for n in range(turns):
        messages.append({"role": "user", "content": f"question {n}"})
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
        try:
            conn.request("POST", "/v1/messages", json.dumps({
                "model": "claude-sonnet-4-6", "max_tokens": 64, "system": "Be brief.", "messages": messages}),
                {"content-type": "application/json", "x-session-id": "s1"})
            response = conn.getresponse()
            assert response.status == 200
            messages.append({"role": "assistant", "content": json.loads(response.read())["content"][0]["text"]})
        finally:
            conn.close()


def cannot_write(proxy: Mitmdump) -> list[str]:
    return [line.split("] ", 1)[-1] for line in proxy.lines if "cachepin audit: cannot write" in line]


@pytest.mark.parametrize(("expect", "why"), [
    ("off", "could not write cache_report; exiting with status 4"),
    ("warm", "could not write cache_report; cache expectations failed; exiting with status 4"),
])
def test_a_report_that_cannot_be_written_leaves_the_others_written_and_exits_4(
        upstream: FakeUpstream, mitmdump, tmp_path: Path, expect: str, why: str) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    report, junit, events = folder / "report.json", tmp_path / "junit.xml", tmp_path / "events.jsonl"
    proxy = mitmdump(upstream.url, ("inject.py", "cache_audit.py"), options={
        "cache_report": str(report), "cache_junit": str(junit), "cache_events": str(events), "cache_expect": expect})
    converse(proxy)  # its second turn fails warm
    folder.rmdir()  # after the startup check, before shutdown: the report has nowhere to go
    assert proxy.stop() == 4, proxy.output
    (line,) = cannot_write(proxy)
    assert line.startswith(f"cachepin audit: cannot write cache_report {report}: [Errno 2] No such file"), line
    assert why in proxy.output
    (case,) = ET.parse(junit).getroot().iter("testcase")
    assert (case.get("name"), len(case.findall("failure"))) == ("s1", int(expect == "warm"))
    assert [json.loads(line)["turn"]["index"] for line in events.read_text().splitlines()] == [1, 2]


@pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full")
def test_event_lines_that_cannot_be_written_fail_the_run_and_the_reports_are_written(
        upstream: FakeUpstream, mitmdump, tmp_path: Path) -> None:
    report, junit = tmp_path / "report.json", tmp_path / "junit.xml"
    proxy = mitmdump(upstream.url, ("inject.py", "cache_audit.py"), options={
        "cache_events": str(DEV_FULL), "cache_report": str(report), "cache_junit": str(junit)})
    converse(proxy)
    assert proxy.stop() == 4, proxy.output
    assert cannot_write(proxy) == [
        f"cachepin audit: cannot write cache_events {DEV_FULL}: [Errno 28] No space left on device"] * 2
    assert "could not write cache_events; exiting with status 4" in proxy.output
    assert [t["index"] for t in json.loads(report.read_text())["sessions"][0]["turns"]] == [1, 2]
    assert ET.parse(junit).getroot().get("tests") == "1"


def run_mitmdump(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """mitmdump with the audit addon, run to its end."""
    return subprocess.run([str(BIN / "mitmdump"), "--set", f"confdir={tmp_path / 'confdir'}",
                           "-s", str(ADDONS / "cache_audit.py"), *args],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full")
def test_a_replay_that_cannot_write_its_event_lines_exits_4_too(upstream: FakeUpstream, mitmdump,
                                                                tmp_path: Path) -> None:
    """A replay reads its flows at startup, where an ERROR makes mitmdump exit 1 at once: there the line is a
    WARNING, and the run ends as a live one does."""
    flows, report = tmp_path / "flows.mitm", tmp_path / "replay.json"
    proxy = mitmdump(upstream.url, ("inject.py", "cache_audit.py"), extra=["-w", str(flows)])
    converse(proxy)
    assert proxy.stop() == 0
    run = run_mitmdump(tmp_path, "-n", "-r", str(flows), "--set", f"cache_events={DEV_FULL}",
                       "--set", f"cache_report={report}")
    assert run.returncode == 4, run.stdout + run.stderr
    assert run.stdout.count(f"cachepin audit: cannot write cache_events {DEV_FULL}: [Errno 28]") == 2
    assert [t["index"] for t in json.loads(report.read_text())["sessions"][0]["turns"]] == [1, 2]


@pytest.mark.parametrize(("setting", "message"), [
    ("cache_junit={tmp}", "cachepin: cache_junit: '{tmp}' is a folder; name a file in it"),
    ("cache_report={tmp}/new/", "cachepin: cache_report: '{tmp}/new/' is a folder; name a file in it"),
    ("cache_report=/dev/null", "cachepin: cache_report: '/dev/null' is not a regular file, and the report replaces "
                               "it whole; name a file"),
    ("cache_events={tmp}/missing/events.jsonl", "cachepin: cache_events: cannot write '{tmp}/missing/events.jsonl': "
                                                "folder '{tmp}/missing' missing or read-only"),
], ids=["junit folder", "report folder to be", "report device", "events missing folder"])
def test_a_path_that_cannot_be_an_output_file_stops_mitmdump_at_startup(tmp_path: Path, setting: str,
                                                                          message: str) -> None:
    """Rather than at shutdown, when the run is over and its report lost (``/dev/null`` would be replaced)."""
    run = run_mitmdump(tmp_path, "-p", "0", "--listen-host", "127.0.0.1", "--set", setting.format(tmp=tmp_path))
    assert run.returncode == 1, run.stdout + run.stderr
    lines = [line.split("] ", 1)[-1] for line in (run.stdout + run.stderr).splitlines() if "cachepin" in line]
    assert lines == [message.format(tmp=tmp_path)], run.stdout + run.stderr


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write any file")
def test_a_read_only_events_file_stops_mitmdump_at_startup(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("")
    events.chmod(0o444)
    run = run_mitmdump(tmp_path, "-p", "0", "--listen-host", "127.0.0.1", "--set", f"cache_events={events}")
    assert run.returncode == 1
    assert f"cachepin: cache_events: cannot append to '{events}': the file is read-only" in run.stdout + run.stderr
