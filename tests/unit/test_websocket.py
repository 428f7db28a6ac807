"""Responses over a WebSocket: which message starts a response, which ends it, read as the same SSE event is."""

from __future__ import annotations

import json
import tracemalloc
from dataclasses import replace

import pytest
from responses_ws import answer, codex_bodies, create, warm

from cachepin.request.dialects import Dialect, dialect_for, is_websocket_upgrade, websocket_dialect_for
from cachepin.response import websocket
from cachepin.response.extract import Extracted
from cachepin.response.readers import usage_from_body
from cachepin.response.websocket import CLOSED, CROWDED, MAX_IN_FLIGHT, ResponsesSocket, Socket, create_of
from cachepin_tools.wire import framing
from cachepin_tools.wire.tokens import Tokens

BODY = codex_bodies(["Fix the failing test."], [])[0]


def sse_reading(messages: list[bytes]) -> Extracted:
    """What the audit reads of the same events streamed over HTTP."""
    events = [(None, json.loads(message)) for message in messages]
    return usage_from_body(Dialect.OPENAI_RESPONSES, "text/event-stream", framing.stream(events))


def played(messages: list[bytes], socket: ResponsesSocket | None = None, start: float = 100.0):
    """Server messages one second apart; the responses they end."""
    socket = socket if socket is not None else ResponsesSocket()
    return [ended for n, m in enumerate(messages)
            if (ended := socket.server_message(m, True, start + n)) is not None]


# --- the handshake -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, upgrade, expected", [
    ("GET", "/v1/responses", "websocket", Dialect.OPENAI_RESPONSES),
    ("get", "/openai/v1/responses?api-version=1", "WebSocket", Dialect.OPENAI_RESPONSES),
    ("GET", "/backend-api/codex/responses", "h2c, websocket", Dialect.OPENAI_RESPONSES),
    ("GET", "/v1/responses", "", None),  # a GET that is no upgrade is no conversation
    ("GET", "/v1/responses/resp_1", "websocket", None),  # retrieving a response
    ("GET", "/v1/realtime", "websocket", None),
    ("GET", "/v1/messages", "websocket", None),  # no other dialect has a WebSocket mode
    ("POST", "/v1/responses", "websocket", None),
])
def test_the_handshake_is_a_case_of_its_own(method: str, path: str, upgrade: str, expected: Dialect | None) -> None:
    assert websocket_dialect_for(method, path, upgrade) is expected
    assert is_websocket_upgrade(method, upgrade) is (upgrade != "" and method.upper() == "GET")
    assert dialect_for(method, path) is (Dialect.OPENAI_RESPONSES if method == "POST" else None)  # POSTs as before


# --- client messages -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("lane", [None, "main"])
def test_a_create_is_the_body_a_post_would_carry(lane: str | None) -> None:
    found = create_of(create(BODY, lane), True)
    assert found is not None and found.lane == lane
    assert found.body() == BODY and found.warning == ""


@pytest.mark.parametrize("content", [
    json.dumps({"model": "gpt-5", "input": "hi", "type": "response.create"}).encode(),  # its type not first
    b'  {\n  "type" : "response.create", "input": "hi"}',
])
def test_a_create_is_found_wherever_its_type_is(content: bytes) -> None:
    found = create_of(content, True)
    assert found is not None and found.body() == {"input": "hi", **({"model": "gpt-5"} if b"model" in content else {})}


@pytest.mark.parametrize("content, is_text", [
    (b'{"type":"response.processed","response_id":"resp_1"}', True),
    (b'{"type":"response.append","input":[]}', True),  # Codex's retired first protocol: no response of its own
    (json.dumps({"type": "x", "input": 'say "response.create"'}).encode(), True),  # the mark inside text
    (create(BODY), False),  # a binary message: the protocol has none
    (b"[1, 2]", True),
    (b"\xff\xfe", True),
])
def test_other_messages_start_nothing(content: bytes, is_text: bool) -> None:
    assert create_of(content, is_text) is None


def test_a_create_that_is_not_json_has_no_body() -> None:
    found = create_of(b'{"type":"response.create","input":[', True)
    assert found is not None and found.body() is None and found.warning == "a response.create message is not JSON"


def test_a_create_over_the_cap_is_not_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    content = create(BODY)
    monkeypatch.setattr(websocket, "MAX_MESSAGE", len(content) - 1)
    found = create_of(content, True)
    assert found is not None and found.body() is None
    assert found.warning == f"a response.create message of {len(content)} bytes, over {len(content) - 1}, was not read"


# --- server messages -----------------------------------------------------------------------------------------

def test_the_ending_message_ends_the_response_with_what_sse_reads() -> None:
    socket: ResponsesSocket[str] = ResponsesSocket()
    socket.begin(None, "turn 1", 99.5)
    messages = answer(warm(1), "resp_1")
    (ended,) = played(messages, socket)
    assert ended.request == "turn 1" and socket.in_flight == 0
    assert (ended.started_at, ended.first_byte_at, ended.ended_at) == (99.5, 100.0, 100.0 + len(messages) - 1)
    assert ended.extracted == sse_reading(messages)
    assert ended.extracted.usage is not None and ended.extracted.usage.cache_read_input_tokens == 2048
    assert ended.extracted.final and ended.extracted.response_id == "resp_1"


def _ending(kind: str, messages: list[bytes]) -> list[bytes]:
    last = json.loads(messages[-1])
    last["type"] = kind
    last["response"]["status"] = kind.removeprefix("response.")
    if kind == "response.failed":
        last["response"]["error"] = {"code": "server_error", "message": "The model failed: sk-secret"}
    if kind == "response.incomplete":
        last["response"]["incomplete_details"] = {"reason": "max_output_tokens"}
    return [*messages[:-1], framing.dumps(last).encode()]


ERRORS = {  # the error events of the Responses stream and of the socket (Codex's codex-api reads both)
    "stream": {"type": "error", "code": "server_error", "message": "boom", "param": None, "sequence_number": 3},
    "status": {"type": "error", "status": 429, "error": {"type": "usage_limit_reached", "message": "limit"}},
    "nested": {"type": "error", "error": {"code": "previous_response_not_found", "message": "not found"}},
}


ERROR_TYPES = ["server_error", "usage_limit_reached", "previous_response_not_found"]


@pytest.mark.parametrize("messages, error", [
    (_ending("response.failed", answer(warm(1), "resp_1")), "server_error"),
    (_ending("response.incomplete", answer(warm(1), "resp_1")), None),
], ids=["failed", "incomplete"])
def test_every_ending_is_read_as_the_sse_event_is(messages: list[bytes], error: str | None) -> None:
    socket: ResponsesSocket[str] = ResponsesSocket()
    socket.begin(None, "turn", 0.0)
    (ended,) = played(messages, socket)
    assert ended.extracted == sse_reading(messages)
    assert ended.extracted.error == error and ended.extracted.usage is not None
    assert "sk-secret" not in repr(ended.extracted)


@pytest.mark.parametrize("event, error", list(zip(ERRORS.values(), ERROR_TYPES, strict=True)), ids=list(ERRORS))
@pytest.mark.parametrize("then", ["next-create", "close"])
def test_an_error_event_fails_the_response_which_ends_with_what_comes_next(event: dict, error: str,
                                                                           then: str) -> None:
    """No response event follows a refused create: the lane's next create, or the socket's end, ends it."""
    messages = [*answer(warm(1), "resp_1")[:3], framing.dumps(event).encode()]
    socket: ResponsesSocket[str] = ResponsesSocket()
    socket.begin(None, "failed", 0.0)
    assert played(messages, socket) == []
    (ended,) = socket.begin(None, "retry", 200.0) if then == "next-create" else socket.closed(CLOSED, 300.0)
    assert (ended.request, ended.first_byte_at, ended.ended_at) == ("failed", 100.0, 103.0)
    assert ended.extracted == sse_reading(messages) and ended.extracted.error == error
    assert socket.in_flight == (1 if then == "next-create" else 0)


def test_an_error_then_an_ending_is_one_error_turn_with_the_figures() -> None:
    """Codex waits on after an error without a status; the same events over SSE read the same."""
    done = answer(warm(1), "resp_1")
    messages = [*done[:3], framing.dumps(ERRORS["stream"]).encode(), *done[3:]]
    socket: ResponsesSocket[str] = ResponsesSocket()
    socket.begin(None, "turn", 0.0)
    (ended,) = played(messages, socket)
    assert ended.request == "turn" and ended.extracted == sse_reading(messages)
    assert ended.extracted.error == "server_error" and ended.extracted.usage is not None
    assert socket.in_flight == 0 and socket.closed(CLOSED, 1.0) == []


def test_an_error_while_nothing_is_in_flight_ends_nothing() -> None:
    """The 60-minute limit of an idle connection, an error answering a response.processed."""
    socket: ResponsesSocket[str] = ResponsesSocket()
    limit = {"type": "error", "error": {"code": "websocket_connection_limit_reached", "message": "60 minutes"}}
    assert socket.server_message(framing.dumps(limit).encode(), True, 1.0) is None


def test_a_response_whose_create_was_not_seen_still_ends() -> None:
    (ended,) = played(answer(warm(1), "resp_1"))
    assert ended.request is None and ended.first_byte_at is None and ended.extracted.usage is not None


@pytest.mark.parametrize("content", [
    json.dumps({"sequence_number": 1, "type": "response.output_text.delta", "delta": 'x "response.completed" y'}),
    json.dumps({"type": "response.output_text.delta", "delta": '{"type":"response.completed"}'}),
    json.dumps({"type": "response.created", "response": {"status": "in_progress", "error": None}}),
    '{"type":"response.completed"',  # cut: not JSON, and its type says it ends nothing it can read
])
def test_text_that_looks_like_an_ending_is_none(content: str) -> None:
    socket: ResponsesSocket[str] = ResponsesSocket()
    socket.begin(None, "turn", 0.0)
    ended = socket.server_message(content.encode(), True, 1.0)
    if content.startswith('{"type":"response.completed"'):  # an ending all the same, whose figures are unread
        assert ended is not None and ended.extracted == Extracted(warning="a response.completed message is not JSON")
    else:
        assert ended is None and socket.in_flight == 1


def test_an_ending_over_the_cap_keeps_its_type(monkeypatch: pytest.MonkeyPatch) -> None:
    messages = _ending("response.failed", answer(warm(1), "resp_1"))
    monkeypatch.setattr(websocket, "MAX_MESSAGE", len(messages[-1]) - 1)
    socket: ResponsesSocket[str] = ResponsesSocket()
    socket.begin(None, "turn", 0.0)
    (ended,) = played(messages, socket)
    assert ended.extracted.error == "response.failed" and ended.extracted.usage is None
    assert ended.extracted.warning == (f"a response.failed message of {len(messages[-1])} bytes, over "
                                       f"{len(messages[-1]) - 1}, was not read")


def test_binary_messages_are_not_read() -> None:
    socket: ResponsesSocket[str] = ResponsesSocket()
    socket.begin(None, "turn", 0.0)
    assert socket.server_message(answer(warm(1), "resp_1")[-1], False, 1.0) is None and socket.in_flight == 1


# --- lanes, refusals, closing ----------------------------------------------------------------------------------

def test_lanes_end_their_own_responses() -> None:
    socket: ResponsesSocket[str] = ResponsesSocket()
    socket.begin("a", "first on a", 0.0)
    socket.begin("b", "first on b", 0.5)
    on_a, on_b = answer(warm(0), "resp_a", lane="a"), answer(warm(1), "resp_b", lane="b")
    interleaved = [m for pair in zip(on_b, on_a, strict=True) for m in pair]
    ended = played(interleaved, socket)
    assert [e.request for e in ended] == ["first on b", "first on a"]
    assert [e.extracted.response_id for e in ended] == ["resp_b", "resp_a"]
    assert [e.first_byte_at for e in ended] == [100.0, 101.0]


def test_a_refused_create_is_the_one_the_error_fails() -> None:
    """``response_already_in_flight``: the server refuses the newer create and goes on with the older one."""
    socket: ResponsesSocket[str] = ResponsesSocket()
    socket.begin(None, "running", 0.0)
    socket.begin(None, "refused", 1.0)
    refused = {"type": "error", "error": {"code": "response_already_in_flight", "message": "one at a time"}}
    ended = played([framing.dumps(refused).encode(), *answer(warm(1), "resp_1")], socket)
    assert [(e.request, e.extracted.error) for e in ended] == [("running", None)]
    assert [(e.request, e.extracted.error) for e in socket.begin(None, "next", 200.0)] == [
        ("refused", "response_already_in_flight")]


def test_one_create_too_many_makes_the_oldest_an_error() -> None:
    socket: ResponsesSocket[int] = ResponsesSocket()
    assert all(socket.begin(f"lane{n % 3}", n, float(n)) == [] for n in range(MAX_IN_FLIGHT))
    (crowded,) = socket.begin("lane0", MAX_IN_FLIGHT, 99.0)
    assert crowded.request == 0 and crowded.extracted == Extracted(error=CROWDED)
    assert socket.in_flight == MAX_IN_FLIGHT


def test_closing_ends_every_response_in_flight_as_an_error() -> None:
    socket: ResponsesSocket[str] = ResponsesSocket()
    socket.begin(None, "a", 0.0)
    socket.begin("x", "b", 1.0)
    socket.server_message(answer(warm(0), "resp_a")[0], True, 2.0)
    ended = socket.closed(CLOSED, 9.0)
    assert [(e.request, e.first_byte_at, e.ended_at, e.extracted) for e in ended] == [
        ("a", 2.0, 9.0, Extracted(error=CLOSED)), ("b", None, 9.0, Extracted(error=CLOSED))]
    assert socket.in_flight == 0 and socket.closed(CLOSED, 10.0) == []


def test_each_socket_holds_its_own_flow_comment_and_responses() -> None:
    first: Socket[str, str] = Socket("flow-1", "a note")
    second: Socket[str, str] = Socket("flow-2", "")
    first.responses.begin(None, "turn", 0.0)
    assert (first.flow, first.comment, first.responses.in_flight) == ("flow-1", "a note", 1)
    assert (second.flow, second.comment, second.responses.in_flight) == ("flow-2", "", 0)
    assert not hasattr(first, "__dict__")  # slots: the adapter may hold thousands of sockets


# --- memory -------------------------------------------------------------------------------------------------------

def _retained(messages: int) -> int:
    """Bytes a socket still holds after ``messages`` deltas of a response that never ends."""
    delta = answer(Tokens(1), "resp_0")[4]
    socket: ResponsesSocket[str] = ResponsesSocket()
    socket.begin(None, "turn", 0.0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(messages):
            socket.server_message(delta, True, float(n))
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_a_socket_that_never_ends_a_response_does_not_grow() -> None:
    assert json.loads(answer(Tokens(1), "resp_0")[4])["type"] == "response.output_text.delta"
    assert _retained(20_000) < 4096 and _retained(200) < 4096


def test_a_lane_client_parses_its_deltas_but_keeps_none() -> None:
    delta = answer(Tokens(1), "resp_0", lane="main")[4]
    socket: ResponsesSocket[str] = ResponsesSocket()
    socket.begin("main", "turn", 0.0)
    for n in range(1000):
        assert socket.server_message(delta, True, float(n)) is None
    assert socket.in_flight == 1 and replace(socket.closed(CLOSED, 1.0)[0], ended_at=0).first_byte_at == 0.0
