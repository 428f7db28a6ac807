"""Guarantee 3, faults: error answers, broken and abandoned streams, a hung upstream, HTTP/2 on both sides and
websockets, through a real mitmdump with both addons. Each LLM flow becomes exactly one turn (an error turn
when it failed, counted in no total), other flows none, and the report, the event lines and the log agree.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from case_proxy import CaseProxy, case_proxy
from flows import run_hook
from h2_upstream import H2Answer, H2Request, H2Upstream
from logs import connections_closed, level_log_addon
from pki import TestPKI, client_context
from raw_client import exchange
from scripted_upstream import Action, Close, Hang, Pause, Reset, Send

from cachepin_tools.harness.processes import Mitmdump, wait_until
from cachepin_tools.wire import anthropic, framing
from cachepin_tools.wire.http1 import chunk, chunked_head, response_bytes
from cachepin_tools.wire.tokens import Tokens

pytestmark = pytest.mark.e2e

JSON = [("content-type", "application/json")]
SSE = [("content-type", "text/event-stream")]
USAGE = anthropic.usage(Tokens(10, read=4000, creation=0, output=12))  # message_start says 1 output token
REQUEST = json.dumps({"model": "claude-sonnet-4-6", "stream": True, "system": "Be brief.",
                      "messages": [{"role": "user", "content": "hi"}]}).encode()


START = framing.stream(anthropic.opening(USAGE, "claude-sonnet-4-6")[:1])
DELTA = framing.stream([anthropic.text_delta("Hi")])
END = framing.stream(anthropic.closing(USAGE))
OVERLOADED = anthropic.error("overloaded_error", "Overloaded")


def error_json(status: int, body: dict, extra: list[tuple[str, str]] | None = None) -> list[Action]:
    return [Send(response_bytes(status, [*JSON, *(extra or [])], json.dumps(body).encode()))]


@dataclass(frozen=True)
class Fault:
    actions: list[Action]
    verdict: str  # the turn's verdict
    status: int  # the turn's status (0: no response)
    error: str | None = None  # a substring of the turn's error ("" for any error)
    client_reads: int | None = None  # read only this many bytes of the body, then leave


FAULTS: dict[str, Fault] = {
    "ok-stream": Fault([Send(chunked_head(200, SSE) + chunk(START) + chunk(DELTA) + chunk(END) + chunk(b""))],
                       "hit", 200),
    "ok-json": Fault(error_json(200, {"type": "message", "model": "claude-sonnet-4-6", "usage": USAGE}), "hit", 200),
    "status-400": Fault(error_json(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                                      "message": "max_tokens: field required"}}),
                        "error", 400, "invalid_request_error"),
    "status-401-openai": Fault(error_json(401, {"error": {"message": "Incorrect API key provided", "code":
                                                          "invalid_api_key", "type": "invalid_request_error"}}),
                               "error", 401, "invalid_request_error"),
    "status-429": Fault(error_json(429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}},
                                   [("retry-after", "3")]), "error", 429, "rate_limit_error"),
    "status-500": Fault(error_json(500, {"type": "error", "error": {"type": "api_error", "message": "boom"}}),
                        "error", 500, "api_error"),
    "status-503-html": Fault([Send(response_bytes(503, [("content-type", "text/html")], b"<h1>down</h1>"))],
                             "error", 503),
    "status-529": Fault(error_json(529, OVERLOADED), "error", 529, "overloaded_error"),
    "sse-error-event": Fault([Send(chunked_head(200, SSE) + chunk(START) + chunk(framing.frame(OVERLOADED, "error"))
                                   + chunk(b""))], "error", 200, "overloaded_error"),
    "reset-mid-stream": Fault([Send(chunked_head(200, SSE) + chunk(START) + chunk(DELTA)), Pause(0.2), Reset()],
                              "error", 200, ""),
    "closed-mid-stream": Fault([Send(chunked_head(200, SSE) + chunk(START)), Pause(0.2), Close()], "error", 200, ""),
    "reset-before-answer": Fault([Reset()], "error", 0, ""),
    "client-leaves-mid-stream": Fault([Send(chunked_head(200, SSE) + chunk(START)), Pause(1.0),
                                       Send(chunk(DELTA) + chunk(END) + chunk(b""))], "error", 200, "",
                                      client_reads=len(START)),
    "upstream-hangs-mid-stream": Fault([Send(chunked_head(200, SSE) + chunk(START)), Hang(20)], "error", 200, ""),
}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaseProxy]:
    with case_proxy(tmp_path_factory.mktemp("faults"), lambda case: FAULTS[case].actions, events=True,
                    tcp_timeout=2) as proxy:
        yield proxy
    assert not proxy.upstream.errors


def _leave_early(port: int, path: str, read: int) -> None:
    """Send the request, read the head and ``read`` body bytes, then close the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"POST %s HTTP/1.1\r\nHost: h\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                     % (path.encode(), len(REQUEST), REQUEST))
        received = b""
        while b"\r\n\r\n" not in received or len(received.partition(b"\r\n\r\n")[2]) < read:
            data = conn.recv(4096)
            assert data, "the proxy closed before the first event"
            received += data
    assert b'"message_start"' in received


@pytest.mark.parametrize("name", list(FAULTS))
def test_each_fault_is_one_turn(proxy: CaseProxy, name: str) -> None:
    fault = FAULTS[name]
    before = proxy.turn_lines()
    path = f"/v1/messages?case={name}"
    if fault.client_reads is not None:
        _leave_early(proxy.mitmdump.port, path, fault.client_reads)
    else:
        try:
            got = exchange(proxy.mitmdump.port, "POST", path, [("Host", "h"), ("content-type", "application/json"),
                                                               ("content-length", str(len(REQUEST)))], REQUEST)
        except Exception as error:  # a broken stream breaks the client's read: that is the fault
            got = error
        if fault.verdict != "error":
            assert not isinstance(got, Exception) and got.status == 200
        elif fault.status >= 400:  # the error answer reaches the client unchanged
            assert not isinstance(got, Exception) and got.status == fault.status
    assert wait_until(lambda: proxy.turn_lines() > before, timeout=10), f"no turn logged for {name}"
    lines = proxy.log.read_text(errors="replace").splitlines()
    assert not [line for line in lines if line.startswith(("ERROR", "CRITICAL"))]


def test_the_ledger_is_consistent_after_every_fault(proxy: CaseProxy) -> None:
    """Runs after the faults above (module order): one turn per flow, the right verdicts, totals from ok turns."""
    ws = _websocket_round_trip(proxy.mitmdump.port)
    assert ws == "echo:hello through the proxy"
    assert proxy.upstream.websocket_messages == ["hello through the proxy"]
    assert exchange(proxy.mitmdump.port, "GET", "/v1/models?case=ok-json", [("Host", "h")]).status == 200
    assert wait_until(lambda: connections_closed(proxy.mitmdump.output))
    proxy.mitmdump.stop()
    output = proxy.mitmdump.output
    assert "Traceback" not in output and "Addon error" not in output and "has crashed" not in output

    report = json.loads(proxy.report.read_text())
    events = [json.loads(line) for line in proxy.events.read_text().splitlines()]
    (session,) = report["sessions"]  # every case sent the same conversation
    turns = session["turns"]
    assert [t["index"] for t in turns] == list(range(1, len(turns) + 1))
    assert [e["turn"] for e in events] == turns, "the event lines are the report's turns, once each"
    ran = [name for name in FAULTS if any(r.target.endswith(f"case={name}") and r.method == "POST"
                                          for r in proxy.upstream.requests)]
    assert len(turns) == len(ran) == len(FAULTS)
    for name, turn in zip(ran, turns, strict=True):
        fault = FAULTS[name]
        assert (turn["verdict"], turn["status"]) == (fault.verdict, fault.status), (name, turn)
    ok = [t for t in turns if t["verdict"] != "error"]
    assert report["totals"]["requests"] == session["requests"] == len(ok) == 2
    assert report["totals"]["cache_read_input_tokens"] == sum(t["cache_read_input_tokens"] for t in ok)
    assert report["totals"]["output_tokens"] == sum(t["output_tokens"] for t in ok)


def _websocket_round_trip(port: int) -> str:
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

    ws = WSConnection(ConnectionType.CLIENT)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(ws.send(Request(host="h", target="/v1/realtime?case=ok-json")))
        reply: str | None = None
        while reply is None:
            data = conn.recv(65536)
            assert data, "the websocket closed early"
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    conn.sendall(ws.send(TextMessage(data="hello through the proxy")))
                elif isinstance(event, TextMessage):
                    reply = event.data
        conn.sendall(ws.send(CloseConnection(code=1000)))
        for _ in range(10):
            data = conn.recv(65536)
            if not data:
                break
            ws.receive_data(data)
            if any(isinstance(e, CloseConnection) for e in ws.events()):
                break
    return reply


# -- HTTP/2 on both sides ----------------------------------------------------------------------------


@pytest.fixture
def pki(tmp_path: Path) -> TestPKI:
    return TestPKI(tmp_path / "pki")


def test_http2_client_and_upstream(pki: TestPKI, tmp_path: Path) -> None:
    """h2 from the client to mitmproxy and from mitmproxy to the upstream: streams tee'd per DATA frame,
    session headers sent upstream, a RST_STREAM mid-stream an error turn, the connection still usable."""
    frames = [START[:7], START[7:], DELTA, END]

    def answer(request: H2Request) -> H2Answer:
        if request.header(":path").endswith("reset"):
            return H2Answer(200, SSE, frames, reset_after=2)
        return H2Answer(200, SSE, frames)

    with H2Upstream(pki.server_context(), answer) as upstream:
        script, log = level_log_addon(tmp_path)
        proxy = Mitmdump(upstream.url, ("inject.py", "cache_audit.py", str(script)), confdir=str(tmp_path / "conf"),
                         options={"ssl_verify_upstream_trusted_ca": str(pki.ca_pem),
                                  "cache_report": str(tmp_path / "report.json")})
        try:
            verify = client_context(Path(proxy.confdir) / "mitmproxy-ca-cert.pem")
            with httpx2.Client(http2=True, verify=verify, timeout=10) as client:
                url = f"https://127.0.0.1:{proxy.port}/v1/messages"
                first = client.post(url, content=REQUEST, headers={"content-type": "application/json"})
                with pytest.raises(httpx2.HTTPError):
                    client.post(url + "?reset", content=REQUEST, headers={"content-type": "application/json"})
                third = client.post(url, content=REQUEST, headers={"content-type": "application/json"})
            assert first.http_version == third.http_version == "HTTP/2"
            assert first.content == third.content == b"".join(frames)
            assert wait_until(lambda: log.read_text().count("cachepin session=") == 3)
            assert wait_until(lambda: connections_closed(proxy.output))
        finally:
            proxy.stop()
    assert upstream.alpn and set(upstream.alpn) == {"h2"}
    assert len(upstream.requests) == 3
    session_ids = {r.header("x-session-id") for r in upstream.requests}
    assert len(session_ids) == 1 and None not in session_ids
    assert all(r.header("x-session-affinity") == r.header("x-session-id") for r in upstream.requests)
    report = json.loads((tmp_path / "report.json").read_text())
    verdicts = [t["verdict"] for s in report["sessions"] for t in s["turns"]]
    assert verdicts == ["hit", "error", "hit"]
    assert report["totals"]["requests"] == 2 and report["totals"]["output_tokens"] == 24
    assert "Traceback" not in proxy.output and "Addon error" not in proxy.output
    assert not upstream.errors


# -- the error text each fault leaves in the ledger (the report renders status and verdict only) -----------


@pytest.mark.parametrize("name", [name for name, fault in FAULTS.items() if fault.error])
async def test_the_ledger_keeps_the_providers_error(name: str) -> None:
    from cache_audit import CacheAudit
    from mitmproxy import http
    from mitmproxy.test import taddons, tflow

    fault = FAULTS[name]
    raw = b"".join(action.data for action in fault.actions if isinstance(action, Send))
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    headers = [tuple(line.split(b": ", 1)) for line in head.split(b"\r\n")[1:]]
    audit = CacheAudit()
    flow = tflow.tflow(req=http.Request.make("POST", "https://h/v1/messages", REQUEST))
    with taddons.context(audit):
        run_hook("request", flow, audit)
        flow.response = http.Response.make(status)
        flow.response.headers = http.Headers(headers)
        audit.responseheaders(flow)
        if callable(flow.response.stream):
            while body:
                size, _, body = body.partition(b"\r\n")
                piece, body = body[: int(size, 16)], body[int(size, 16) + 2:]
                assert flow.response.stream(piece) is piece
        else:
            flow.response.raw_content = body
        audit.response(flow)
    (turn,) = audit.ledger.sessions[0].turns
    assert turn.verdict.value == "error" and turn.status == fault.status
    assert turn.error is not None and fault.error in turn.error


async def test_a_flow_error_keeps_mitmproxys_message() -> None:
    from cache_audit import CacheAudit
    from mitmproxy import flow as mflow
    from mitmproxy import http
    from mitmproxy.test import taddons, tflow

    audit = CacheAudit()
    broken = tflow.tflow(req=http.Request.make("POST", "https://h/v1/messages", REQUEST))
    broken.response = http.Response.make(200, b"", {"content-type": "text/event-stream"})
    with taddons.context(audit):
        run_hook("request", broken, audit)
        audit.responseheaders(broken)
        broken.response.stream(START)
        broken.error = mflow.Error("peer closed connection")
        audit.error(broken)
        audit.response(broken)  # mitmproxy may still fire response for the same flow: no second turn
    (turn,) = audit.ledger.sessions[0].turns
    assert turn.error == "peer closed connection" and turn.cache_read_input_tokens == 4000
    assert audit.ledger.totals.requests == 0
