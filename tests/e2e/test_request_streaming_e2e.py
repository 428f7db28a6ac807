"""A request whose headers name its session goes upstream while its body is still arriving, and the flow keeps
the body as if mitmproxy had buffered it: through a real mitmdump with both addons, a raw client and upstream."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest
from mitmproxy.io import FlowReader
from scripted_upstream import ScriptedUpstream, ok_json

from cachepin_tools.wire import anthropic
from cachepin_tools.wire.tokens import Tokens

pytestmark = pytest.mark.e2e

BODY = json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 8, "system": "Be brief. " * 200,
                   "messages": [{"role": "user", "content": "hi"}]}).encode()
ANSWER = json.dumps(anthropic.message(anthropic.usage(Tokens(12, read=0, creation=1538, output=3)), "",
                                      "claude-sonnet-4-6")).encode()
WAIT = 10.0  # s for the upstream to see the request's start: with the body buffered it never does


@pytest.mark.parametrize("session_header, streamed", [(True, True), (False, False)])
def test_a_named_request_leaves_before_its_body_ends(mitmdump, tmp_path: Path, session_header: bool,
                                                     streamed: bool) -> None:
    headers_seen = threading.Event()
    upstream = ScriptedUpstream(lambda request: ok_json(ANSWER), on_head=lambda request: headers_seen.set())
    flows = tmp_path / "flows.mitm"
    proxy = mitmdump(upstream.url, ["inject.py", "cache_audit.py"],
                     options={"cache_report": str(tmp_path / "report.json")}, extra=["-w", str(flows)])
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as client:
            named = b"x-session-id: s-stream\r\n" if session_header else b""
            client.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: api.example.com\r\ncontent-type: application/json"
                           b"\r\n" + named + b"content-length: " + str(len(BODY)).encode() + b"\r\n\r\n"
                           + BODY[:100])
            assert headers_seen.wait(WAIT if streamed else 1.0) is streamed
            client.sendall(BODY[100:])
            answer = b""
            while ANSWER not in answer:
                chunk = client.recv(65536)
                assert chunk, answer
                answer += chunk
        (received,) = upstream.requests
        assert received.body == BODY
    finally:
        assert proxy.stop() == 0, proxy.output
        upstream.close()
    with flows.open("rb") as file:
        (saved,) = list(FlowReader(file).stream())
    assert saved.request.raw_content == BODY  # as if buffered: -w saves it, mitmweb shows it
    (session,) = json.loads((tmp_path / "report.json").read_text())["sessions"]
    (turn,) = session["turns"]
    assert (turn["verdict"], turn["position"]) == ("cold", "start") and turn["thread"].startswith("ln_")
