"""Responses over a WebSocket through both addons, driven as mitmproxy drives them: the handshake's hooks, then
``websocket_start``, one ``websocket_message`` per message, ``websocket_end``."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from cache_audit import MISS_MARK, SHUT_DOWN, CacheAudit
from flows import drive, harness, make_request, make_response, run_hook
from held_readers import HeldReaders, llm_flow
from inject import Inject
from logs import captured_logs
from mitmproxy import eventsequence, http
from mitmproxy import io as mitmio
from mitmproxy.test import tflow
from mitmproxy.websocket import WebSocketData, WebSocketMessage
from responses_ws import CODEX_HEADERS, SESSION, answer, codex_bodies, create, warm
from wsproto.frame_protocol import Opcode

from cachepin import handover
from cachepin.response.websocket import CLOSED
from cachepin.turns.turn import Turn
from cachepin.turns.verdicts import short_id
from cachepin.views.report import turn_dict
from cachepin_tools.wire import framing
from cachepin_tools.wire.tokens import Tokens

QUESTIONS = ["Why does test_parse fail?", "Fix it.", "Run the tests again."]
ANSWERS = ["The fixture is stale.", "Fixed the fixture.", "All green."]
BODIES = codex_bodies(QUESTIONS, ANSWERS)
T0 = 1_800_000_000.0


@pytest.fixture(autouse=True)
def _nothing_parked() -> Iterator[None]:
    yield
    handover._parked.clear()


class Socket:
    """One WebSocket through ``addons``: the upgrade's hooks at construction, then messages, then its end."""

    def __init__(self, *addons: object, headers: list[tuple[str, str]] = CODEX_HEADERS,
                 path: str = "/v1/responses", flow: http.HTTPFlow | None = None) -> None:
        self.addons = addons
        self.flow = flow or tflow.twebsocketflow()
        self.flow.request.path = path
        for name, value in headers:
            self.flow.request.headers[name] = value
        self.flow.websocket = None  # mitmproxy sets it when the 101 arrives, before the response hook
        for hook in ("requestheaders", "request", "responseheaders"):
            run_hook(hook, self.flow, *addons)
        self.flow.websocket = WebSocketData()
        for hook in ("response", "websocket_start"):
            run_hook(hook, self.flow, *addons)

    def send(self, content: bytes, at: float, from_client: bool = True, binary: bool = False) -> WebSocketMessage:
        assert self.flow.websocket is not None
        message = WebSocketMessage(Opcode.BINARY if binary else Opcode.TEXT, from_client, content, at)
        self.flow.websocket.messages.append(message)
        run_hook("websocket_message", self.flow, *self.addons)
        return message

    def turn(self, body: dict, messages: list[bytes], at: float) -> None:
        """A create at ``at``, its answer's messages a tenth of a second apart from half a second on."""
        self.send(create(body), at)
        for n, message in enumerate(messages):
            self.send(message, at + 0.5 + n / 10, from_client=False)

    def end(self, at: float, code: int = 1000) -> None:
        assert self.flow.websocket is not None
        self.flow.websocket.close_code, self.flow.websocket.timestamp_end = code, at
        self.flow.websocket.closed_by_client = True
        run_hook("websocket_end", self.flow, *self.addons)
        self.flow.live = False


def conversation(socket: Socket, tokens: list[Tokens] | None = None) -> None:
    for n, body in enumerate(BODIES):
        socket.turn(body, answer((tokens or [warm(k) for k in range(3)])[n], f"resp_{n}", ANSWERS[n]), T0 + 10 * n)


def turns(audit: CacheAudit) -> list[Turn]:
    return [turn for session in audit.ledger.sessions for turn in session.turns]


def comparable(turn: Turn) -> dict:
    """What a turn says of the conversation, not of its transport (status, flow, timings)."""
    return {k: v for k, v in turn_dict(turn).items() if k not in ("flow_id", "status", "ttft_ms", "duration_ms")}


# --- a whole conversation -------------------------------------------------------------------------------------

def test_a_codex_conversation_over_a_websocket_is_pinned_and_audited(caplog: pytest.LogCaptureFixture) -> None:
    inject, audit = Inject(), CacheAudit()
    with harness(inject, audit), caplog.at_level(logging.INFO):
        socket = Socket(inject, audit)
        assert socket.flow.request.headers["X-Session-Id"] == socket.flow.request.headers["x-session-affinity"] \
            == SESSION
        assert socket.flow.metadata["cachepin"]["source"] == "header:session-id"
        conversation(socket)
        sent = [(m.from_client, m.content) for m in socket.flow.websocket.messages]
        socket.end(T0 + 60)
    (session,) = audit.ledger.sessions
    assert (session.session_id, session.source) == (SESSION, "header:session-id")
    assert [(t.verdict.value, t.cache_read_input_tokens, t.input_tokens, t.output_tokens) for t in session.turns] == [
        ("cold", 0, 2100, 40), ("hit", 2048, 60, 40), ("hit", 2048, 120, 40)]
    assert [(t.thread, t.position, t.requested_model, t.status, t.stream) for t in session.turns] == [
        (SESSION, position, "gpt-5.1-codex", 101, True) for position in ("start", "continuation", "continuation")]
    assert [(t.started_at, t.ttft_ms, t.duration_ms) for t in session.turns] == [
        (T0 + 10 * n, pytest.approx(500), pytest.approx(500 + 100 * (len(answer(warm(n), "r")) - 1)))
        for n in range(3)]
    assert [t.flow_id for t in session.turns] == [socket.flow.id] * 3
    expected: list[tuple[bool, bytes]] = []
    for n in range(3):
        expected += [(True, create(BODIES[n])), *((False, a) for a in answer(warm(n), f"resp_{n}", ANSWERS[n]))]
    assert sent == expected
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("cachepin session=")]
    assert len(lines) == 3 and "verdict=cold" in lines[0] and "verdict=hit" in lines[2]
    short = short_id(SESSION)
    assert socket.flow.comment == (f"hit · read 2,048 · wrote n/a · uncached 120 · turn 3 · thread {short} · "
                                   f"session {short} (header:session-id)")  # the latest turn only, the note replaced
    assert not socket.flow.marked


def test_the_messages_pass_as_they_came() -> None:
    inject, audit = Inject(), CacheAudit()
    with harness(inject, audit):
        socket = Socket(inject, audit)
        conversation(socket)
        assert all(not m.dropped and not m.injected for m in socket.flow.websocket.messages)
        expected = [create(body) for body in BODIES]
        assert [m.content for m in socket.flow.websocket.messages if m.from_client] == expected


@pytest.mark.parametrize("tokens", [
    [warm(0), warm(1), warm(2)],
    [warm(0), Tokens(60, read=0, creation=None, output=40), warm(2)],  # a miss, and its reason
    [Tokens(2100, read=None, creation=None, output=40)] * 3,  # no cache figures
], ids=["warm", "miss", "none"])
@pytest.mark.parametrize("with_inject", [True, False], ids=["both", "audit-alone"])
def test_turns_over_a_websocket_are_the_turns_over_http(tokens: list[Tokens], with_inject: bool) -> None:
    """The same requests and events, POSTed and streamed as SSE: the same sessions, figures, verdicts, threads,
    positions and reasons."""
    addons: list[object] = [Inject(), CacheAudit()] if with_inject else [CacheAudit()]
    with harness(*addons):
        socket = Socket(*addons)
        conversation(socket, tokens)
    over_http: list[object] = [Inject(), CacheAudit()] if with_inject else [CacheAudit()]
    with harness(*over_http):
        for n, body in enumerate(BODIES):
            request = make_request("POST", "/v1/responses", [*CODEX_HEADERS, ("content-type", "application/json")],
                                   json.dumps(body).encode())
            request.timestamp_start = T0 + 10 * n
            flow = tflow.tflow(req=request)
            chunks = [framing.frame(json.loads(m)) for m in answer(tokens[n], f"resp_{n}", ANSWERS[n])]
            inject = over_http[0] if with_inject else None
            drive(inject, over_http[-1], flow, make_response(200, [("content-type", "text/event-stream")]), chunks)
    ws, posted = addons[-1], over_http[-1]
    assert isinstance(ws, CacheAudit) and isinstance(posted, CacheAudit)
    assert [(s.session_id, s.source) for s in ws.ledger.sessions] == [(s.session_id, s.source)
                                                                     for s in posted.ledger.sessions]
    assert [comparable(t) for t in turns(ws)] == [comparable(t) for t in turns(posted)]
    assert len(turns(ws)) == 3
    if tokens[1].read == 0:
        assert turns(ws)[1].verdict.value == "miss" and turns(ws)[1].miss is not None
        assert socket.flow.marked == MISS_MARK


def test_without_inject_a_socket_without_headers_is_grouped_by_its_bodies() -> None:
    """Nothing pins such a socket, but the audit still finds one session: the first create's fingerprint, then
    the responses the later ones chain to."""
    audit = CacheAudit()
    with harness(audit):
        socket = Socket(audit, headers=[])
        for n, body in enumerate(BODIES):
            unkeyed = {k: v for k, v in body.items() if k != "prompt_cache_key"}
            socket.turn(unkeyed, answer(warm(n), f"resp_{n}", ANSWERS[n]), T0 + 10 * n)
    (session,) = audit.ledger.sessions
    assert session.session_id.startswith("fp_") and session.source == "fingerprint"
    assert [t.verdict.value for t in session.turns] == ["cold", "hit", "hit"]


# --- endings, closes, faults -------------------------------------------------------------------------------------

def _last_as(kind: str, messages: list[bytes]) -> list[bytes]:
    last = json.loads(messages[-1])
    last["type"], last["response"]["status"] = kind, kind.removeprefix("response.")
    if kind == "response.failed":
        last["response"]["error"] = {"code": "rate_limit_exceeded", "message": "slow down, sk-secret"}
    return [*messages[:-1], framing.dumps(last).encode()]


@pytest.mark.parametrize("messages, verdict, error", [
    (_last_as("response.failed", answer(warm(0), "resp_0")), "error", "rate_limit_exceeded"),
    (_last_as("response.incomplete", answer(warm(0), "resp_0")), "cold", None),
    ([*answer(warm(0), "resp_0")[:4], b'{"type":"error","status":400,"error":{"type":"invalid_request_error"}}'],
     "error", "invalid_request_error"),
], ids=["failed", "incomplete", "error-event"])
def test_each_ending_is_one_turn(messages: list[bytes], verdict: str, error: str | None) -> None:
    audit = CacheAudit()
    with harness(audit):
        socket = Socket(audit)
        socket.turn(BODIES[0], messages, T0)
        socket.end(T0 + 5)
    (turn,) = turns(audit)
    assert (turn.verdict.value, turn.error, turn.status) == (verdict, error, 101)


def test_a_refused_continuation_is_an_error_turn_once_its_retry_is_sent() -> None:
    """Codex on ``previous_response_not_found``: the same turn again, with its whole input and no chain."""
    audit = CacheAudit()
    refused = b'{"type":"error","error":{"code":"previous_response_not_found","message":"resp_0 not found"}}'
    with harness(audit):
        socket = Socket(audit)
        socket.turn(BODIES[0], answer(warm(0), "resp_0"), T0)
        socket.turn(BODIES[1], [refused], T0 + 10)
        assert len(turns(audit)) == 1  # no response event follows, but the server does not say so
        retry = {**BODIES[1], "input": [*BODIES[0]["input"], *BODIES[1]["input"]]}
        del retry["previous_response_id"]
        socket.turn(retry, answer(warm(1), "resp_1"), T0 + 20)
        assert [(t.verdict.value, t.error, t.duration_ms) for t in turns(audit)][1] == (
            "error", "previous_response_not_found", pytest.approx(500))
        socket.end(T0 + 30)
    assert [(t.verdict.value, t.position) for t in turns(audit)] == [
        ("cold", "start"), ("error", "continuation"), ("hit", "continuation")]


@pytest.mark.parametrize("code", [1000, 1006])
def test_a_socket_closed_mid_response_is_an_error_turn_and_an_idle_close_none(code: int) -> None:
    audit = CacheAudit()
    with harness(audit):
        socket = Socket(audit)
        socket.turn(BODIES[0], answer(warm(0), "resp_0"), T0)
        socket.turn(BODIES[1], answer(warm(1), "resp_1")[:5], T0 + 10)  # cut before response.completed
        socket.end(T0 + 20, code)
        assert not audit.sockets
    answered = 500 + 100 * (len(answer(warm(0), "resp_0")) - 1)
    assert [(t.verdict.value, t.error, t.duration_ms) for t in turns(audit)] == [
        ("cold", None, pytest.approx(answered)), ("error", CLOSED, pytest.approx(10_000))]


def test_an_error_on_an_idle_socket_is_no_turn() -> None:
    audit = CacheAudit()
    with harness(audit):
        socket = Socket(audit)
        socket.turn(BODIES[0], answer(warm(0), "resp_0"), T0)
        limit = b'{"type":"error","error":{"code":"websocket_connection_limit_reached","message":"60 minutes"}}'
        socket.send(limit, T0 + 3600, from_client=False)
        socket.end(T0 + 3601)
    assert [t.verdict.value for t in turns(audit)] == ["cold"]


def test_lanes_of_one_socket_are_turns_of_their_own() -> None:
    audit = CacheAudit()
    with harness(audit):
        socket = Socket(audit)
        socket.send(create(BODIES[0], "main"), T0)
        socket.send(create({**BODIES[0], "model": "gpt-5-mini"}, "side"), T0 + 1)
        main, side = answer(warm(0), "resp_main", lane="main"), answer(warm(1), "resp_side", lane="side")
        for n, (a, b) in enumerate(zip(side, main, strict=True)):
            socket.send(a, T0 + 2 + n, from_client=False)
            socket.send(b, T0 + 2.5 + n, from_client=False)
    assert [(t.requested_model, t.cache_read_input_tokens) for t in turns(audit)] == [("gpt-5-mini", 2048),
                                                                                      ("gpt-5.1-codex", 0)]


def test_other_messages_and_sockets_are_no_turns() -> None:
    audit = CacheAudit()
    with harness(audit):
        realtime = Socket(audit, path="/v1/realtime")
        realtime.turn(BODIES[0], answer(warm(0), "resp_0"), T0)
        socket = Socket(audit)
        socket.send(b'{"type":"response.processed","response_id":"resp_0"}', T0)
        socket.send(create(BODIES[0]), T0 + 1, binary=True)
        dropped = WebSocketMessage(Opcode.TEXT, True, create(BODIES[0]), T0 + 2)
        dropped.drop()  # another addon kept it from the server
        assert socket.flow.websocket is not None
        socket.flow.websocket.messages.append(dropped)
        run_hook("websocket_message", socket.flow, audit)
        socket.end(T0 + 3)
    assert not turns(audit) and not audit.sockets


def test_websocket_turns_reach_the_event_lines(tmp_path: Path) -> None:
    audit, events = CacheAudit(), tmp_path / "events.jsonl"
    with harness(audit) as tctx:
        tctx.configure(audit, cache_events=str(events))
        conversation(Socket(audit))
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(e["session_id"], e["turn"]["verdict"], e["turn"]["status"]) for e in lines] == [
        (SESSION, verdict, 101) for verdict in ("cold", "hit", "hit")]
    assert "sk-ws-secret" not in events.read_text() and "test_parse" not in events.read_text()


# --- shutdown, reload, replay ----------------------------------------------------------------------------------

@pytest.mark.parametrize("reload_first", [False, True], ids=["no-reload", "across-a-reload"])
def test_responses_in_flight_at_shutdown_are_settled_before_the_reports(tmp_path: Path, reload_first: bool) -> None:
    report, audit = tmp_path / "report.json", CacheAudit()
    with harness(audit) as tctx:
        tctx.configure(audit, cache_report=str(report))
        socket = Socket(audit)
        socket.turn(BODIES[0], answer(warm(0), "resp_0"), T0)
        socket.turn(BODIES[1], answer(warm(1), "resp_1")[:3], T0 + 10)
        stopping = audit
        if reload_first:
            tctx.master.addons.remove(audit)  # done() of a reload: hands the socket over
            stopping = CacheAudit()
            tctx.master.addons.add(stopping)
            socket.addons = (stopping,)
        tctx.master.should_exit.set()
        stopping.done()
        socket.end(T0 + 30, 1006)  # mitmproxy tears the connection down after every done(): no second turn
    (session,) = json.loads(report.read_text())["sessions"]
    assert [(t["verdict"], t["status"], t["position"]) for t in session["turns"]] == [
        ("cold", 101, "start"), ("error", 101, "continuation")]
    assert turns(stopping)[-1].error == SHUT_DOWN and not stopping.sockets


def test_a_response_begun_before_a_hot_reload_is_recorded_after_it() -> None:
    audit = CacheAudit()
    with harness(audit) as tctx:
        socket = Socket(audit)
        socket.turn(BODIES[0], answer(warm(0), "resp_0"), T0)
        socket.send(create(BODIES[1]), T0 + 10)
        tctx.master.addons.remove(audit)
        reloaded = CacheAudit()
        tctx.master.addons.add(reloaded)
        socket.addons = (reloaded,)
        for n, message in enumerate(answer(warm(1), "resp_1")):
            socket.send(message, T0 + 11 + n, from_client=False)
    assert [(t.index, t.verdict.value, t.position, t.ttft_ms) for t in turns(reloaded)] == [
        (1, "cold", "start", pytest.approx(500)), (2, "hit", "continuation", pytest.approx(1000))]


def test_a_replay_records_the_socket_as_the_live_run_did() -> None:
    """``mitmdump -nr`` of a capture: the saved flow's messages go through websocket_message again."""
    inject, audit = Inject(), CacheAudit()
    with harness(inject, audit):
        socket = Socket(inject, audit)
        conversation(socket)
        socket.turn(BODIES[0], answer(warm(0), "resp_x")[:3], T0 + 40)  # in flight when the capture ends
        socket.end(T0 + 50, 1006)
    buffer = io.BytesIO()
    mitmio.FlowWriter(buffer).add(socket.flow)
    buffer.seek(0)
    (saved,) = mitmio.FlowReader(buffer).stream()
    again = CacheAudit()
    assert isinstance(saved, http.HTTPFlow) and not saved.live
    with harness(again), captured_logs() as records:  # the audit alone, as -nr -s cache_audit.py runs it
        for hook in eventsequence.iterate(saved):
            run_hook(hook.name, saved, again)
    assert [comparable(t) for t in turns(again)] == [comparable(t) for t in turns(audit)]
    assert [t.verdict.value for t in turns(again)] == ["cold", "hit", "hit", "error"]
    assert not [r for r in records if r.levelno >= logging.WARNING]


# --- the inject addon on the handshake ---------------------------------------------------------------------------

def test_a_handshake_without_a_session_id_is_left_unpinned_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    inject = Inject()
    with harness(inject), caplog.at_level(logging.INFO):
        socket = Socket(inject, headers=[("authorization", "Bearer sk-ws-secret")])
    assert "x-session-id" not in socket.flow.request.headers and not socket.flow.metadata
    lines = [r.getMessage() for r in caplog.records if r.name == "inject"]
    assert lines == ["cachepin inject: WebSocket /v1/responses carries no session id in its headers; not pinned (its "
                     "turns share one connection; send X-Session-Id or set affinity_session to pin reconnects too)"]


@pytest.mark.parametrize("options, headers, expected, source", [
    ({"affinity_session": "ci-run-7"}, CODEX_HEADERS, "ci-run-7", "option"),
    ({}, [("x-session-id", "oc-1")], "oc-1", "header:x-session-id"),
    ({}, [("session-id", "bad id"), ("thread-id", "t-1")], "t-1", "header:thread-id"),
    ({"affinity_scope": "~u /ws$"}, CODEX_HEADERS, SESSION, "header:session-id"),
], ids=["option", "opencode-header", "invalid-then-next", "custom-scope"])
def test_the_handshake_is_pinned_from_its_headers(options: dict, headers: list, expected: str, source: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    inject = Inject()
    with harness(inject) as tctx, caplog.at_level(logging.WARNING):
        tctx.configure(inject, **options)
        socket = Socket(inject, headers=headers, path="/ws" if "affinity_scope" in options else "/v1/responses")
    assert socket.flow.request.headers["X-Session-Id"] == socket.flow.request.headers["x-session-affinity"] == expected
    assert socket.flow.metadata["cachepin"]["source"] == source
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == (["cachepin inject: ignored the session id in header:session-id: not 1-256 printable ASCII "
                         "characters without spaces"] if "bad id" in str(headers) else [])


@pytest.mark.parametrize("options, path", [
    ({}, "/v1/realtime"),  # not Responses
    ({"affinity_exclude": "~d example.com"}, "/v1/responses"),
    ({"affinity_scope": "~u /other"}, "/v1/responses"),
])
def test_handshakes_out_of_scope_are_not_touched(options: dict, path: str) -> None:
    inject = Inject()
    with harness(inject) as tctx:
        tctx.configure(inject, **options)
        socket = Socket(inject, path=path)
    assert "X-Session-Id" not in socket.flow.request.headers and not socket.flow.metadata and not socket.flow.comment


async def test_a_socket_turn_behind_a_read_in_flight_still_finds_its_chain() -> None:
    """Without inject or headers, a create's session comes from the response it continues: learned when the turn
    before it is recorded, which may wait behind another flow's read in a reader process. The create is read
    when its own turn comes, not before."""
    audit = CacheAudit()
    with harness(audit) as tctx:
        readers = HeldReaders()
        tctx.configure(audit)
        audit.readers = audit.turns.readers = readers
        audit.is_running = True
        other = llm_flow(3, session="another-client")
        audit.request(other)
        audit.response(other)  # its turn waits for its read: the socket's turns queue behind it
        socket = Socket(audit, headers=[])
        for n, body in enumerate(BODIES):
            socket.send(create({k: v for k, v in body.items() if k != "prompt_cache_key"}), T0 + 10 * n)
            await asyncio.sleep(0.05)  # longer than the audit's usual wait before it reads a request
            for k, message in enumerate(answer(warm(n), f"resp_{n}", ANSWERS[n])):
                socket.send(message, T0 + 10 * n + 0.5 + k / 10, from_client=False)
        readers.answer(readers.readings[0])
        for _ in range(5):
            await asyncio.sleep(0)
    sessions = [s for s in audit.ledger.sessions if s.session_id != "another-client"]
    assert [(s.source, [t.verdict.value for t in s.turns]) for s in sessions] == [
        ("fingerprint", ["cold", "hit", "hit"])]
