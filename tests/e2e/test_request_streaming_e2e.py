"""A request whose headers name its session goes upstream while its body is still arriving, and the flow keeps
the body as if mitmproxy had buffered it: through a real mitmdump with both addons, a raw client and upstream."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest
from mitmproxy.io import FlowReader

pytestmark = pytest.mark.e2e

BODY = json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 8, "system": "Be brief. " * 200,
                   "messages": [{"role": "user", "content": "hi"}]}).encode()
ANSWER = json.dumps({"type": "message", "model": "claude-sonnet-4-6", "content": [], "stop_reason": "end_turn",
                     "usage": {"input_tokens": 12, "output_tokens": 3, "cache_creation_input_tokens": 1538,
                               "cache_read_input_tokens": 0}}).encode()
WAIT = 10.0  # s for the upstream to see the request's start: with the body buffered it never does


class Upstream:
    """One HTTP/1.1 exchange: says when the request's headers arrived, then reads the body and answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.headers_seen = threading.Event()
        self.received = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            self.headers_seen.set()
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            while len(body) < length:
                body += conn.recv(65536)
            self.received = body
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                         + str(len(ANSWER)).encode() + b"\r\n\r\n" + ANSWER)

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("session_header, streamed", [(True, True), (False, False)])
def test_a_named_request_leaves_before_its_body_ends(mitmdump, tmp_path: Path, session_header: bool,
                                                     streamed: bool) -> None:
    upstream = Upstream()
    flows = tmp_path / "flows.mitm"
    proxy = mitmdump(upstream.url, ["inject.py", "cache_audit.py"],
                     options={"cache_report": str(tmp_path / "report.json")}, extra=["-w", str(flows)])
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as client:
            named = b"x-session-id: s-stream\r\n" if session_header else b""
            client.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: api.example.com\r\ncontent-type: application/json"
                           b"\r\n" + named + b"content-length: " + str(len(BODY)).encode() + b"\r\n\r\n"
                           + BODY[:100])
            assert upstream.headers_seen.wait(WAIT if streamed else 1.0) is streamed
            client.sendall(BODY[100:])
            answer = b""
            while ANSWER not in answer:
                chunk = client.recv(65536)
                assert chunk, answer
                answer += chunk
        assert upstream.received == BODY
    finally:
        assert proxy.stop() == 0, proxy.output
        upstream.close()
    with flows.open("rb") as file:
        (saved,) = list(FlowReader(file).stream())
    assert saved.request.raw_content == BODY  # as if buffered: -w saves it, mitmweb shows it
    (session,) = json.loads((tmp_path / "report.json").read_text())["sessions"]
    (turn,) = session["turns"]
    assert (turn["verdict"], turn["position"]) == ("cold", "start") and turn["thread"].startswith("ln_")
