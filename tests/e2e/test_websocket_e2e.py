"""End to end: Responses over a WebSocket, as Codex speaks it, through a real mitmdump with both addons.

A wsproto client (Codex's handshake headers, permessage-deflate, three turns
on one socket, the later ones chained with only their new input) talks to a
wsproto upstream that answers each ``response.create`` with the Responses
stream's events (``tests/support/responses_ws.py``).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from logs import connections_closed
from responses_ws import (
    CODEX_HEADERS,
    SESSION,
    ResponsesSocketClient,
    ResponsesSocketUpstream,
    answer,
    codex_bodies,
    create,
    warm,
)

from cachepin_tools.harness.processes import ADDONS, BIN, wait_until

pytestmark = pytest.mark.e2e

BODIES = codex_bodies(["Why does test_parse fail?", "Fix it.", "Run the tests again."],
                      ["Hé, done ✓", "Hé, done ✓", "Hé, done ✓"])
TRANSPORT = ("flow_id", "status", "started_at", "ttft_ms", "duration_ms")


@pytest.fixture
def ws_upstream() -> Iterator[ResponsesSocketUpstream]:
    with ResponsesSocketUpstream() as server:
        yield server


def replay(capture: Path, tmp_path: Path) -> dict:
    """``mitmdump -nr capture -s cache_audit.py``: its report."""
    report = tmp_path / "replay.json"
    done = subprocess.run(
        [str(BIN / "mitmdump"), "-n", "-r", str(capture), "-s", str(ADDONS / "cache_audit.py"),
         "--set", f"confdir={tmp_path / 'replay-confdir'}", "--set", "flow_detail=0",
         "--set", f"cache_report={report}", "--set", "cache_expect=warm"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and report.exists(), done.stdout + done.stderr
    return json.loads(report.read_text())


def test_a_codex_conversation_over_a_websocket_is_pinned_audited_and_untouched(
        ws_upstream: ResponsesSocketUpstream, mitmdump, tmp_path: Path) -> None:
    report, capture = tmp_path / "report.json", tmp_path / "flows.mitm"
    proxy = mitmdump(ws_upstream.url, ("inject.py", "cache_audit.py"),
                     options={"cache_report": str(report), "cache_expect": "warm"}, extra=["-w", str(capture)])
    client = ResponsesSocketClient(proxy.port, CODEX_HEADERS)
    assert client.deflate, "permessage-deflate, as Codex negotiates it, through mitmproxy"
    for body in BODIES:
        client.send(create(body))
        assert json.loads(client.response()[-1])["type"] == "response.completed"
    client.close()
    assert wait_until(lambda: connections_closed(proxy.output))
    assert proxy.stop() == 0, proxy.output  # warm held

    (upstream,) = ws_upstream.connections
    assert upstream.header("X-Session-Id") == upstream.header("x-session-affinity") == SESSION
    assert [(k, v) for k, v in upstream.headers if k.lower() in dict(CODEX_HEADERS)] == CODEX_HEADERS
    assert upstream.received == [create(body) for body in BODIES], "client messages reach upstream byte for byte"
    assert client.received == upstream.sent, "server messages reach the client byte for byte"

    live = json.loads(report.read_text())
    assert live["ok"] is True
    (session,) = live["sessions"]
    assert (session["session_id"], session["source"]) == (SESSION, "header:session-id")
    assert [(t["verdict"], t["cache_read_input_tokens"], t["input_tokens"], t["output_tokens"], t["thread"],
             t["position"], t["status"], t["model"]) for t in session["turns"]] == [
        ("cold", 0, 2100, 40, SESSION, "start", 101, "gpt-5.1-codex"),
        ("hit", 2048, 60, 40, SESSION, "continuation", 101, "gpt-5.1-codex"),
        ("hit", 2048, 120, 40, SESSION, "continuation", 101, "gpt-5.1-codex")]
    assert (session["requests"], session["cache_read_input_tokens"], session["judged_hit_ratio"]) == (
        3, 4096, round(4096 / (4096 + 180), 4))
    assert all(t["ttft_ms"] is not None and t["ttft_ms"] >= 0 for t in session["turns"])
    assert proxy.output.count("cachepin inject new session=") == 1
    assert proxy.output.count("cachepin session=") == 3
    for secret in ("sk-ws-secret", "test_parse", "Fix it."):
        assert secret not in proxy.output and secret not in report.read_text()

    (replayed,) = replay(capture, tmp_path)["sessions"]
    assert [{k: v for k, v in t.items() if k not in TRANSPORT} for t in replayed["turns"]] == [
        {k: v for k, v in t.items() if k not in TRANSPORT} for t in session["turns"]]


def test_an_upstream_that_hangs_up_mid_response_leaves_one_error_turn(ws_upstream: ResponsesSocketUpstream,
                                                                      mitmdump, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    proxy = mitmdump(ws_upstream.url, ("inject.py", "cache_audit.py"), options={"cache_report": str(report)})
    ws_upstream.script = lambda turn, message: None if turn == 1 else answer(warm(turn), f"resp_{turn}")
    client = ResponsesSocketClient(proxy.port, CODEX_HEADERS)
    client.send(create(BODIES[0]))
    client.response()
    client.send(create(BODIES[1]))
    assert wait_until(lambda: proxy.output.count("cachepin session=") == 2), proxy.output
    client.drop()
    assert wait_until(lambda: connections_closed(proxy.output))
    assert proxy.stop() == 0
    (session,) = json.loads(report.read_text())["sessions"]
    assert [(t["verdict"], t["position"]) for t in session["turns"]] == [("cold", "start"), ("error", "continuation")]
    assert (session["requests"], session["errors"]) == (1, 1)
    assert "Traceback" not in proxy.output and "Addon error" not in proxy.output
