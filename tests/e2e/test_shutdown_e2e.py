"""End to end: however mitmdump is told to stop, every turn is in every output and the exit status says why."""

from __future__ import annotations

import http.client
import json
import signal
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from llm_upstream import FakeUpstream

from cachepin_tools.harness.processes import Mitmdump, wait_until

pytestmark = pytest.mark.e2e

STREAMS = 20
# CPython 3.12.0 and 3.12.1 log a CancelledError traceback for each client connection still open when asyncio.run
# tears the loop down (gh-113538, fixed in 3.12.2), with or without cachepin: only later versions can show none.
CLEAN_ASYNCIO_SHUTDOWN = sys.version_info >= (3, 12, 2)


def outputs(tmp_path: Path) -> dict[str, str]:
    return {"cache_report": str(tmp_path / "report.json"), "cache_events": str(tmp_path / "events.jsonl"),
            "cache_junit": str(tmp_path / "junit.xml")}


def ask(proxy: Mitmdump, session: str, stream: bool) -> None:
    """One Anthropic request; a stream the proxy drops midway ends quietly."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    body = {"model": "claude-sonnet-4-6", "max_tokens": 64, "stream": stream,
            "messages": [{"role": "user", "content": f"hello from {session}"}]}
    try:
        conn.request("POST", "/v1/messages", json.dumps(body),
                     {"content-type": "application/json", "x-session-id": session})
        response = conn.getresponse()
        response.read()
    except (http.client.HTTPException, OSError):
        pass
    finally:
        conn.close()


def stop_with(proxy: Mitmdump, signum: signal.Signals) -> int:
    proxy.proc.send_signal(signum)
    return proxy.stop(timeout=20)


def junit_cases(path: str) -> dict[str, int]:
    """Test case name -> number of failures."""
    root = ET.parse(path).getroot()
    return {case.get("name", ""): len(case.findall("failure")) for case in root.iter("testcase")}


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_every_stopping_signal_writes_the_reports_and_exits_3_on_failed_expectations(
        upstream: FakeUpstream, mitmdump, tmp_path: Path, signum: signal.Signals) -> None:
    files = outputs(tmp_path)
    proxy = mitmdump(upstream.url, ("inject.py", "cache_audit.py"), options={**files, "cache_expect": "warm"})
    upstream.behaviour.status = 529  # nothing succeeds: no evidence is no pass
    ask(proxy, "outage", stream=False)
    assert stop_with(proxy, signum) == 3, proxy.output
    report = json.loads(Path(files["cache_report"]).read_text())
    assert report["ok"] is False and report["totals"]["errors"] == 1
    assert sum(junit_cases(files["cache_junit"]).values()) >= 1
    assert "exiting with status 3" in proxy.output
    if CLEAN_ASYNCIO_SHUTDOWN:
        assert "Traceback" not in proxy.output


def test_a_hangup_ignored_by_nohup_stays_ignored(upstream: FakeUpstream, tmp_path: Path) -> None:
    """nohup sets SIGHUP to be ignored before mitmdump starts: the user wants the proxy to outlive the terminal."""
    files = outputs(tmp_path)
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # inherited by the child, as nohup does it
    try:
        proxy = Mitmdump(upstream.url, ("inject.py", "cache_audit.py"), options=files)
    finally:
        signal.signal(signal.SIGHUP, previous)
    try:
        proxy.proc.send_signal(signal.SIGHUP)
        ask(proxy, "still-here", stream=False)  # answered: the proxy is still running
        assert proxy.proc.poll() is None
    finally:
        assert proxy.stop() == 0
    assert json.loads(Path(files["cache_report"]).read_text())["totals"]["requests"] == 1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_streams_in_flight_at_shutdown_are_error_turns_in_every_output(upstream: FakeUpstream, mitmdump,
                                                                       tmp_path: Path, signum: signal.Signals) -> None:
    files = outputs(tmp_path)
    proxy = mitmdump(upstream.url, ("inject.py", "cache_audit.py"), options=files)
    ask(proxy, "finished", stream=True)
    upstream.behaviour.event_delay = 2.0  # the next streams are still running when the signal comes
    clients = [threading.Thread(target=ask, args=(proxy, f"in-flight-{n}", True)) for n in range(STREAMS)]
    for client in clients:
        client.start()
    assert wait_until(lambda: len(upstream.sent) == STREAMS + 1, timeout=20)  # every request reached the upstream
    time.sleep(0.5)  # and its stream has sent its first event
    assert stop_with(proxy, signum) == 0, proxy.output
    for client in clients:
        client.join(10)

    report = json.loads(Path(files["cache_report"]).read_text())
    turns = {s["session_id"]: [t["verdict"] for t in s["turns"]] for s in report["sessions"]}
    assert turns == {"finished": ["cold"], **{f"in-flight-{n}": ["error"] for n in range(STREAMS)}}
    assert report["totals"]["errors"] == STREAMS
    events = [json.loads(line) for line in Path(files["cache_events"]).read_text().splitlines()]
    assert sorted((e["session_id"], e["turn"]["verdict"]) for e in events) == sorted(
        (sid, verdicts[0]) for sid, verdicts in turns.items())
    assert set(junit_cases(files["cache_junit"])) >= set(turns)
    logged = [line for line in proxy.lines if "cachepin session=" in line and "verdict=" in line]
    assert len(logged) == STREAMS + 1
    assert sum("verdict=error" in line for line in logged) == STREAMS
