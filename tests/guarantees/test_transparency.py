"""Guarantee 1, transparency: the addons read traffic, they never change it (but for the documented headers).

Property tests run both addons in mitmproxy's test harness the way the proxy
drives them (requestheaders, request, responseheaders, the stream callable per
chunk and once with b"", response) over generated requests and responses:
SSE streams of every dialect with random events, wrong-typed usage, junk lines
and invalid UTF-8, JSON and non-JSON bodies, every content-encoding, honest,
lying, truncated or garbled, cut into random chunks. A smaller end-to-end test
compares the bytes a real mitmdump delivers with the bytes sent, both ways.
"""

from __future__ import annotations

import gzip
import json
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import brotli
import pytest
from cache_audit import CacheAudit
from codings import raw_deflate, zstd
from flows import drive, harness, make_request, make_response, run_hook
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inject import Inject
from logs import captured_logs, connections_closed, level_log_addon, problems
from mitmproxy import http
from mitmproxy.test import tflow
from raw_client import exchange
from scripted_upstream import Close, ScriptedUpstream, Send

from cachepin.request.body import parse_json_object
from cachepin.request.body_edit import coding_round_trips, with_member, with_prompt_cache_key
from cachepin.request.dialects import Dialect, dialect_for
from cachepin.response.readers import usage_from_body
from cachepin_tools.harness.processes import wait_until
from cachepin_tools.wire import anthropic, framing
from cachepin_tools.wire.http1 import chunk, chunked_head, response_bytes
from cachepin_tools.wire.tokens import Tokens

SESSION_HEADERS = {b"x-session-id", b"x-session-affinity"}  # the documented headers inject may set

PATHS: dict[Dialect, str] = {
    Dialect.ANTHROPIC: "/v1/messages",
    Dialect.OPENAI_CHAT: "/v1/chat/completions",
    Dialect.OPENAI_RESPONSES: "/v1/responses",
    Dialect.GEMINI: "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
    Dialect.BEDROCK_CONVERSE: "/model/anthropic.claude-sonnet-4-6/converse-stream",
    Dialect.BEDROCK_INVOKE: "/model/anthropic.claude-sonnet-4-6/invoke-with-response-stream",
}
OTHER_PATHS = ["/v1/models", "/v1/embeddings", "/", "/v1/messages/count_tokens", "/healthz?x=1"]

# -- encodings ---------------------------------------------------------------------------------------



def _flushed_gzip(data: bytes) -> bytes:
    """Gzip as a streaming server writes it: a sync flush every 50 bytes."""
    return b"".join(framing.gzip_frames(data[i:i + 50] for i in range(0, len(data), 50)))


COMPRESSORS = {
    "gzip": gzip.compress,
    "gzip-flushed": _flushed_gzip,
    "deflate": zlib.compress,
    "deflate-raw": raw_deflate,
    "br": brotli.compress,
    "zstd": zstd.compress,
    "gzip-then-br": lambda data: brotli.compress(gzip.compress(data)),
}
HEADER_OF = {"gzip": "gzip", "gzip-flushed": "gzip", "deflate": "deflate", "deflate-raw": "deflate", "br": "br",
             "zstd": "zstd", "gzip-then-br": "gzip, br"}


@dataclass(frozen=True)
class Encoded:
    header: str  # the Content-Encoding value sent ("" for none)
    body: bytes  # the body as it travels
    honest: bool  # the header tells the truth and the body is intact


@st.composite
def encoded(draw: st.DrawFn, plain: bytes) -> Encoded:
    """``plain`` sent as-is, honestly compressed, or under a lying, truncated or garbled encoding."""
    mode = draw(st.sampled_from(["identity", "honest", "honest", "lying", "truncated", "garbled", "unknown"]))
    if mode == "identity":
        return Encoded(draw(st.sampled_from(["", "identity"])), plain, True)
    name = draw(st.sampled_from(sorted(COMPRESSORS)))
    body = COMPRESSORS[name](plain)
    if mode == "honest":
        return Encoded(HEADER_OF[name], body, True)
    if mode == "lying":
        claimed = draw(st.sampled_from(["gzip", "br", "zstd", "deflate", ""]).filter(lambda h: h != HEADER_OF[name]))
        return Encoded(claimed, draw(st.sampled_from([body, plain])), False)
    if mode == "unknown":
        return Encoded(draw(st.sampled_from(["compress", "x-custom", "gzip, snappy"])), body, False)
    if mode == "truncated":
        return Encoded(HEADER_OF[name], body[: draw(st.integers(0, max(0, len(body) - 1)))], False)
    position = draw(st.integers(0, len(body) - 1))
    garbled = body[:position] + bytes([body[position] ^ draw(st.integers(1, 255))]) + body[position + 1:]
    return Encoded(HEADER_OF[name], garbled, False)


def split(data: bytes, draw: st.DrawFn) -> list[bytes]:
    points = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=12))))
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in pairwise(edges) if b > a]


# -- generated bodies --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Token counts as hostile upstreams send them: right, negative, huge, fractional, or not numbers at all.
counts = st.one_of(st.integers(0, 10**7), st.integers(-(10**6), -1), st.just(2**70), st.floats(allow_nan=False),
                   st.text(max_size=4), st.booleans(), st.none(), st.just({}), st.just([1]))
text = st.text(max_size=40) | st.sampled_from(['"usage"', '_tokens"', '"error"', "data: {", "\n\n", "[DONE]"])


@st.composite
def usage_event(draw: st.DrawFn, dialect: Dialect) -> object:
    def c() -> object:
        return draw(counts)

    match dialect:
        case Dialect.ANTHROPIC | Dialect.BEDROCK_INVOKE:
            return draw(st.sampled_from([
                {"type": "message_start", "message": {"model": "claude-sonnet-4-6", "usage": {
                    "input_tokens": c(), "cache_creation_input_tokens": c(), "cache_read_input_tokens": c(),
                    "output_tokens": c()}}},
                {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": c()}},
                {"type": "content_block_delta", "delta": {"type": "text_delta", "text": draw(text)}},
                {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            ]))
        case Dialect.OPENAI_CHAT:
            return draw(st.sampled_from([
                {"object": "chat.completion.chunk", "model": "gpt-5", "choices": [], "usage": {
                    "prompt_tokens": c(), "completion_tokens": c(), "prompt_tokens_details": {"cached_tokens": c()}}},
                {"object": "chat.completion.chunk", "model": "gpt-5", "usage": None,
                 "choices": [{"index": 0, "delta": {"content": draw(text)}}]},
            ]))
        case Dialect.OPENAI_RESPONSES:
            return {"type": "response.completed", "response": {"model": "gpt-5", "usage": {
                "input_tokens": c(), "output_tokens": c(), "input_tokens_details": {"cached_tokens": c()}}}}
        case Dialect.GEMINI:
            return {"usageMetadata": {"promptTokenCount": c(), "cachedContentTokenCount": c(),
                                      "candidatesTokenCount": c()}, "modelVersion": "gemini-2.5-pro"}
        case _:
            return {"usage": {"inputTokens": c(), "outputTokens": c(), "cacheReadInputTokens": c()}}


@st.composite
def sse_stream(draw: st.DrawFn, dialect: Dialect) -> bytes:
    """Events of the dialect with random figures, arbitrary JSON events, and everything that is not an event."""
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    parts: list[bytes] = []
    for _ in range(draw(st.integers(0, 10))):
        kind = draw(st.sampled_from(["usage", "usage", "json", "done", "comment", "event-only", "garbage",
                                     "invalid-utf8", "blank", "no-space"]))
        if kind == "usage":
            parts.append(b"event: x" + newline + b"data: " + json.dumps(draw(usage_event(dialect))).encode())
        elif kind == "json":
            parts.append(b"data: " + json.dumps(draw(json_values)).encode())
        elif kind == "done":
            parts.append(b"data: [DONE]")
        elif kind == "comment":
            parts.append(b": keep-alive")
        elif kind == "event-only":
            parts.append(b"event: ping")
        elif kind == "garbage":
            parts.append(draw(st.binary(max_size=60)))
        elif kind == "invalid-utf8":
            parts.append(b'data: {"usage": "\xff\xfe\xc3(", "_tokens": 1, "x": "\xed\xa0\x80"}')
        elif kind == "no-space":
            parts.append(b'data:{"type":"ping"}')
        else:
            parts.append(b"")
        parts.append(newline)  # the blank line that ends an event
    body = newline.join(parts)
    return body[: draw(st.integers(0, len(body)))] if draw(st.booleans()) and body else body


# -- driving the addons as mitmproxy does ------------------------------------------------------------


def header_fields(message: http.Message, *, without: set[bytes]) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in message.headers.fields if k.lower() not in without]


def turns(audit: CacheAudit) -> int:
    return sum(len(session.turns) for session in audit.ledger.sessions)


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- responses ---------------------------------------------------------------------------------------


@FAST
@given(data=st.data())
@pytest.mark.parametrize("dialect", list(PATHS), ids=str)
def test_sse_streams_pass_through_byte_for_byte(dialect: Dialect, data: st.DataObject) -> None:
    plain = data.draw(sse_stream(dialect), "stream")
    enc = data.draw(encoded(plain), "encoding")
    chunks = split(enc.body, data.draw)
    headers = [("content-type", data.draw(st.sampled_from(["text/event-stream", "text/event-stream; charset=utf-8",
                                                          "Text/Event-Stream"])))]
    if enc.header:
        headers.append(("content-encoding", enc.header))
    response = make_response(200, headers)
    before = (response.status_code, response.reason, list(response.headers.fields))
    inject, audit = Inject(), CacheAudit()
    flow = tflow.tflow(req=make_request("POST", PATHS[dialect], [("content-type", "application/json")],
                                        b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'))
    with harness(inject, audit), captured_logs() as records:
        delivered = drive(inject, audit, flow, response, chunks)

    assert delivered is not None and b"".join(delivered) == enc.body
    assert (response.status_code, response.reason, list(response.headers.fields)) == before
    assert turns(audit) == 1
    assert len(problems(records)) <= 1, problems(records)
    if enc.honest:  # the live tap and an offline read of the same bytes agree
        turn = audit.ledger.sessions[0].turns[0]
        offline = usage_from_body(dialect, headers[0][1], plain)
        assert turn.error == offline.error
        expected = offline.usage
        assert (turn.input_tokens, turn.cache_read_input_tokens, turn.output_tokens) == (
            (expected.input_tokens, expected.cache_read_input_tokens, expected.output_tokens)
            if expected else (None, None, None))


@FAST
@given(data=st.data())
@pytest.mark.parametrize("dialect", [Dialect.ANTHROPIC, Dialect.OPENAI_CHAT, Dialect.GEMINI], ids=str)
def test_buffered_responses_are_left_as_they_came(dialect: Dialect, data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(["usage", "json", "bytes", "empty", "invalid-utf8"]))
    if kind == "usage":
        plain = json.dumps(data.draw(usage_event(dialect))).encode()
    elif kind == "json":
        plain = json.dumps(data.draw(json_values)).encode()
    elif kind == "bytes":
        plain = data.draw(st.binary(max_size=200))
    elif kind == "invalid-utf8":
        plain = b'{"usage": {"input_tokens": 1}, "text": "\xff\xc3("}'
    else:
        plain = b""
    enc = data.draw(encoded(plain)) if plain else Encoded("", b"", True)
    status = data.draw(st.sampled_from([200, 200, 204, 400, 429, 500, 529]))
    content_type = data.draw(st.sampled_from(["application/json", "text/plain", "", "application/octet-stream"]))
    headers = [("content-type", content_type)] if content_type else []
    if enc.header:
        headers.append(("content-encoding", enc.header))
    response = make_response(status, headers)
    before = (response.status_code, list(response.headers.fields))
    inject, audit = Inject(), CacheAudit()
    flow = tflow.tflow(req=make_request("POST", PATHS[dialect], [], b'{"model":"m"}'))
    with harness(inject, audit), captured_logs() as records:
        assert drive(inject, audit, flow, response, [enc.body]) is None
    assert response.raw_content == enc.body
    assert (response.status_code, list(response.headers.fields)) == before
    assert turns(audit) == 1
    assert len(problems(records)) <= 1, problems(records)


@pytest.mark.parametrize("encoding_name", ["", "gzip"])
def test_a_huge_line_passes_through_and_costs_one_warning(encoding_name: str) -> None:
    start = b'data: {"type":"message_start","message":{"usage":{"input_tokens":4,"cache_read_input_tokens":9}}}\n\n'
    huge = b'data: {"type":"content_block_delta","_tokens":"' + b"z" * (9 * 1024 * 1024) + b'"}\n\n'
    end = b'data: {"type":"message_delta","usage":{"output_tokens":3}}\n\n'
    plain = start + huge + end
    body = COMPRESSORS[encoding_name](plain) if encoding_name else plain
    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)]
    headers = [("content-type", "text/event-stream")] + ([("content-encoding", encoding_name)] if encoding_name else [])
    inject, audit = Inject(), CacheAudit()
    flow = tflow.tflow(req=make_request("POST", "/v1/messages", [], b'{"model":"claude-sonnet-4-6"}'))
    with harness(inject, audit), captured_logs() as records:
        delivered = drive(inject, audit, flow, make_response(200, headers), chunks)
    assert delivered is not None and b"".join(delivered) == body
    # carried over many chunks the line is dropped with a warning; gzip may decode it whole in one piece
    warned = problems(records)
    assert len(warned) == (0 if encoding_name else 1) and all("longer than" in w for w in warned)
    turn = audit.ledger.sessions[0].turns[0]
    assert (turn.input_tokens, turn.cache_read_input_tokens, turn.output_tokens) == (4, 9, 3)


# -- requests ----------------------------------------------------------------------------------------

client_ids = st.sampled_from(["", "ok-session-1", "has space", "x" * 300, "caf\u00e9", "tab\tin", "fp_abc"])


@st.composite
def request_body(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["conversation", "conversation", "json", "bytes", "empty", "invalid-utf8"]))
    if kind == "conversation":
        body = {"model": draw(st.sampled_from(["claude-sonnet-4-6", "gpt-5"]) | json_values),
                "system": draw(json_values), "instructions": draw(st.text(max_size=20)),
                "messages": draw(st.lists(st.fixed_dictionaries(
                    {"role": st.sampled_from(["user", "assistant", "system", 3]), "content": json_values}),
                    max_size=3) | json_values),
                "input": draw(json_values)}
        for key, value in draw(st.dictionaries(st.sampled_from(["metadata", "prompt_cache_key", "session_id",
                                                                "stream", "contents", "diagnostics"]),
                                               json_values)).items():
            body[key] = value
        spaced = draw(st.booleans())
        return (b"  " if spaced else b"") + json.dumps(body, indent=2 if spaced else None).encode()
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=120))
    if kind == "invalid-utf8":
        return b'{"model": "gpt-5", "messages": [{"role": "user", "content": "\xff\xfe"}]}'
    return b""


def _decoded(header: str, raw: bytes) -> bytes:
    from mitmproxy.net import encoding

    return encoding.decode(raw, header) if header else raw


def exactly_decoded(enc: Encoded) -> bytes | None:
    """The body as the client meant it, when a coding that re-encodes it alike says how; else None."""
    try:
        plain = _decoded(enc.header, enc.body)
    except ValueError:
        return None
    return plain if coding_round_trips(enc.header, enc.body) else None


def asks_for_diagnostics(method: str, path: str, enc: Encoded) -> bool:
    """cache_diagnostics' one edit of a first turn, as docs/providers.md words the rule: an Anthropic Messages
    request to the Claude API's path, for a claude- model, that does not ask itself, opts in."""
    plain = exactly_decoded(enc)
    body = parse_json_object(plain) if plain is not None else None
    model = body.get("model") if body is not None else None
    return (method == "POST" and path == PATHS[Dialect.ANTHROPIC] and isinstance(model, str)
            and model.lower().startswith("claude-") and "diagnostics" not in body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_requests_change_only_by_the_documented_headers(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from([*PATHS.values(), *OTHER_PATHS]))
    method = data.draw(st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]))
    plain = data.draw(request_body())
    enc = data.draw(encoded(plain)) if plain else Encoded("", b"", True)
    headers = [("content-type", "application/json"), ("authorization", "Bearer sk-planted"),
               ("X-Custom", "a"), ("x-custom", "b")]
    for name in data.draw(st.lists(st.sampled_from(["x-session-id", "X-Session-Id", "x-session-affinity",
                                                    "x-claude-code-session-id", "session_id"]), max_size=3)):
        headers.append((name, data.draw(client_ids)))
    if enc.header:
        headers.append(("content-encoding", enc.header))
    prompt_cache_key = data.draw(st.booleans())
    cache_diagnostics = data.draw(st.booleans())
    request = make_request(method, path, headers, enc.body)
    before = request.copy()
    inject, audit = Inject(), CacheAudit()
    flow = tflow.tflow(req=request)
    with harness(inject, audit) as tctx, captured_logs() as records:
        tctx.configure(inject, affinity_prompt_cache_key=prompt_cache_key)
        tctx.configure(audit, cache_diagnostics=cache_diagnostics)
        run_hook("requestheaders", flow, inject, audit)
        run_hook("request", flow, inject, audit)

    pinned = flow.metadata.get("cachepin")
    keyed = bool(pinned and pinned.get("prompt_cache_key"))
    diagnosed = cache_diagnostics and asks_for_diagnostics(method, path, enc)
    edited = keyed or diagnosed
    ignore = SESSION_HEADERS | ({b"content-length"} if edited else set())
    assert header_fields(request, without=ignore) == header_fields(before, without=ignore)
    assert (request.method, request.url, request.http_version) == (before.method, before.url, before.http_version)
    if dialect_for(method, path) is None:
        assert pinned is None and request.headers.fields == before.headers.fields
    for name in SESSION_HEADERS:
        values = request.headers.get_all(name.decode())
        old = before.headers.get_all(name.decode())
        assert values == old or (pinned and values == [pinned["session_id"]]), (name, old, values)
    if not edited:
        assert request.raw_content == enc.body
    else:  # only the documented members, spliced in as text, in the encoding the client chose
        assert (prompt_cache_key or cache_diagnostics) and exactly_decoded(enc) is not None
        assert request.headers.get("content-encoding") == before.headers.get("content-encoding")
        assert request.headers["content-length"] == str(len(request.raw_content))
        expected = _decoded(enc.header, enc.body)
        if keyed:
            expected = with_prompt_cache_key(expected, pinned["session_id"])
        if diagnosed:  # a first turn: it opts in (no earlier response to compare with)
            expected = with_member(expected, "diagnostics", {"previous_message_id": None})
        assert _decoded(enc.header, request.raw_content) == expected
    assert len(problems(records)) <= 1, problems(records)
    assert all("sk-planted" not in r.getMessage() for r in records)


@pytest.mark.parametrize("header, body", [
    ("gzip", b'{"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}'),
    ("x-snappy", b'{"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}'),
    ("br", gzip.compress(b'{"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}')),
    ("gzip", zlib.compress(b'{"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}')),
], ids=["gzip-header-plain-body", "unknown-coding", "br-header-gzip-body", "gzip-header-zlib-body"])
def test_prompt_cache_key_is_not_added_to_a_body_that_does_not_decode(header: str, body: bytes) -> None:
    """Re-encoding would change the body's bytes (or drop the Content-Encoding header) beyond the key."""
    inject = Inject()
    request = make_request("POST", "/v1/chat/completions", [("content-encoding", header)], body)
    flow = tflow.tflow(req=request)
    with harness(inject) as tctx:
        tctx.configure(inject, affinity_prompt_cache_key=True)
        run_hook("requestheaders", flow, inject)
        run_hook("request", flow, inject)
    assert request.raw_content == body
    assert request.headers["content-encoding"] == header
    assert "prompt_cache_key" not in flow.metadata.get("cachepin", {})


CLAUDE_REQUEST = b'{"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}'


@pytest.mark.parametrize("name", sorted(set(COMPRESSORS) - {"gzip-then-br"}))
def test_cache_diagnostics_adds_its_member_and_nothing_else(name: str) -> None:
    """In every coding mitmproxy encodes again: the member spliced in as text, re-encoded alike, Content-Length
    right."""
    audit = CacheAudit()
    request = make_request("POST", "/v1/messages", [("content-type", "application/json"), ("x-session-id", "s1"),
                                                    ("content-encoding", HEADER_OF[name])],
                           COMPRESSORS[name](CLAUDE_REQUEST))
    before = request.copy()
    flow = tflow.tflow(req=request)
    with harness(audit) as tctx:
        tctx.configure(audit, cache_diagnostics=True)
        run_hook("requestheaders", flow, audit)
        run_hook("request", flow, audit)
    assert header_fields(request, without={b"content-length"}) == header_fields(before, without={b"content-length"})
    assert request.headers["content-length"] == str(len(request.raw_content))
    assert _decoded(HEADER_OF[name], request.raw_content) == (b'{"diagnostics":{"previous_message_id":null},'
                                                              + CLAUDE_REQUEST[1:])


@pytest.mark.parametrize("header, body", [
    ("gzip", CLAUDE_REQUEST),
    ("x-snappy", CLAUDE_REQUEST),
    ("br", gzip.compress(CLAUDE_REQUEST)),
    ("gzip", zlib.compress(CLAUDE_REQUEST)),
    ("gzip, br", COMPRESSORS["gzip-then-br"](CLAUDE_REQUEST)),  # honest, but mitmproxy decodes one coding only
], ids=["gzip-header-plain-body", "unknown-coding", "br-header-gzip-body", "gzip-header-zlib-body", "gzip-then-br"])
def test_cache_diagnostics_are_not_asked_in_a_body_that_does_not_decode(header: str, body: bytes) -> None:
    audit = CacheAudit()
    request = make_request("POST", "/v1/messages", [("content-encoding", header), ("x-session-id", "s1")], body)
    flow = tflow.tflow(req=request)
    with harness(audit) as tctx, captured_logs() as records:
        tctx.configure(audit, cache_diagnostics=True)
        run_hook("requestheaders", flow, audit)
        run_hook("request", flow, audit)
    assert request.raw_content == body and request.headers["content-encoding"] == header
    assert problems(records) == []


def test_a_gzip_labelled_zlib_body_is_left_as_sent_with_one_warning() -> None:
    """mitmproxy decodes zlib under a gzip label, but the edit would go upstream as real gzip: decided, no key."""
    inject = Inject()
    body = zlib.compress(b'{"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}')
    request = make_request("POST", "/v1/chat/completions", [("content-encoding", "gzip"), ("x-session-id", "s1")], body)
    flow = tflow.tflow(req=request)
    with harness(inject) as tctx, captured_logs() as records:
        tctx.configure(inject, affinity_prompt_cache_key=True)
        run_hook("requestheaders", flow, inject)
        run_hook("request", flow, inject)
    assert request.raw_content == body and "prompt_cache_key" not in flow.metadata["cachepin"]
    assert problems(records) == ["cachepin inject: prompt_cache_key not added: the body is labelled 'gzip' but is not "
                                 "in that format, and re-encoding it would change more than the key"]


def test_non_llm_flows_are_not_touched_at_all() -> None:
    """GETs, other paths, websocket upgrades: no header, no metadata, no comment, no turn."""
    inject, audit = Inject(), CacheAudit()
    flows = [tflow.tflow(req=make_request("GET", "/v1/models", [("x-api-key", "k")], b"")),
             tflow.tflow(req=make_request("POST", "/v1/embeddings", [], b'{"input": "x"}')),
             tflow.tflow(req=make_request("GET", "/v1/messages", [], b"")),
             tflow.tflow(ws=True)]
    with harness(inject, audit) as tctx:
        tctx.configure(inject, affinity_prompt_cache_key=True)
        for flow in flows:
            request = flow.request.copy()
            response = http.Response.make(200, b"{}", {"content-type": "text/event-stream"})
            drive(inject, audit, flow, response, [b"data: {\"usage\": {\"input_tokens\": 1}}\n\n"])
            assert flow.request.get_state() == request.get_state()
            assert response.stream is False
            assert not flow.metadata and not flow.comment and not flow.marked
    assert audit.ledger.totals.requests == 0 and not audit.ledger.sessions


# -- through a real mitmdump -------------------------------------------------------------------------

_SSE = framing.stream([
    ("message_start", {"type": "message_start", "message": {
        "model": "claude-sonnet-4-6", "usage": anthropic.usage(Tokens(5, read=2048, creation=0, output=1))}}),
    ("content_block_delta", {"type": "content_block_delta", "delta": {"text": "h\u00e9"}}),  # raw UTF-8 on the wire
    ("message_delta", {"type": "message_delta", "usage": {"output_tokens": 9}}),
], framing.RAW_UTF8)


def _pieces(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), min(6, len(data) - 1))) if len(data) > 1 else []
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(edges)]


def _streamed(headers: list[tuple[str, str]], body: bytes, seed: int) -> bytes:
    return chunked_head(200, headers) + b"".join(chunk(p) for p in _pieces(body, seed)) + chunk(b"")


WIRE_CASES = {
    "sse": _streamed([("content-type", "text/event-stream")], _SSE, 1),
    "sse-gzip": _streamed([("content-type", "text/event-stream"), ("content-encoding", "gzip")],
                          _flushed_gzip(_SSE), 2),
    "sse-br": _streamed([("content-type", "text/event-stream"), ("content-encoding", "br")], brotli.compress(_SSE), 3),
    "sse-zstd": _streamed([("content-type", "text/event-stream"), ("content-encoding", "zstd")],
                          zstd.compress(_SSE), 4),
    "sse-truncated-gzip": _streamed([("content-type", "text/event-stream"), ("content-encoding", "gzip")],
                                    gzip.compress(_SSE)[:-30], 5),
    "sse-garbage": _streamed([("content-type", "text/event-stream")],
                             bytes(random.Random(6).randrange(256) for _ in range(5000)) + b"\n\ndata: \xff\n\n", 6),
    "sse-lying-zstd": _streamed([("content-type", "text/event-stream"), ("content-encoding", "zstd")], _SSE, 7),
    "sse-empty": _streamed([("content-type", "text/event-stream")], b"", 8),
    "json-lying-gzip": response_bytes(200, [("content-type", "application/json"), ("content-encoding", "gzip")],
                                      b'{"usage": {"input_tokens": 3}}'),
    "json-invalid-utf8": response_bytes(200, [("content-type", "application/json")], b'{"a": "\xff\xfe"}'),
    "json-not-object": response_bytes(200, [("content-type", "application/json")], b"[1, 2, null]"),
    "empty-200": response_bytes(200, [("content-type", "application/json")], b""),
    "error-529": response_bytes(529, [("content-type", "application/json"), ("x-should-retry", "true")],
                                b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'),
    "binary-close-delimited": response_bytes(200, [("content-type", "application/octet-stream"),
                                                   ("connection", "close")],
                                             bytes(range(256)) * 4, framing="none"),
}


@pytest.fixture
def wire_upstream() -> Iterator[ScriptedUpstream]:
    def script(request):
        return [Send(WIRE_CASES[request.target.rsplit("case=", 1)[1]]), Close()]

    with ScriptedUpstream(script) as server:
        yield server


def _decode_chunked(raw: bytes) -> bytes:
    out, rest = bytearray(), raw
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return bytes(out)
        out += rest[:size]
        rest = rest[size + 2:]


def _expected(case: str) -> tuple[int, list[tuple[str, str]], bytes]:
    raw = WIRE_CASES[case]
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [(k, v.strip()) for k, _, v in (line.partition(":") for line in lines)]
    if any(k == "transfer-encoding" for k, _ in headers):
        body = _decode_chunked(body)
    return int(status_line.split()[1]), headers, body


@pytest.mark.e2e
def test_a_real_mitmdump_delivers_the_upstream_bytes(wire_upstream: ScriptedUpstream, mitmdump,
                                                     tmp_path: Path) -> None:
    script, log = level_log_addon(tmp_path)
    proxy = mitmdump(wire_upstream.url, ("inject.py", "cache_audit.py", str(script)),
                     options={"keep_host_header": True})
    for case in WIRE_CASES:
        for dialect in (Dialect.ANTHROPIC, None):
            path = (PATHS[dialect] if dialect else "/v1/files") + f"?case={case}"
            got = exchange(proxy.port, "POST", path, [("Host", "api.example.com"), ("content-type", "application/json"),
                                                       ("connection", "close")],
                           b'{"model":"claude-sonnet-4-6","messages":[{"role":"user","content":"hi"}]}')
            status, headers, body = _expected(case)
            assert (got.status, got.body) == (status, body), (case, dialect)
            assert got.headers == headers, (case, dialect)
    assert wait_until(lambda: connections_closed(proxy.output))
    proxy.stop()
    assert "Traceback" not in proxy.output and "Addon error" not in proxy.output
    assert not [line for line in log.read_text().splitlines() if line.startswith(("ERROR", "CRITICAL"))]


@pytest.mark.e2e
@pytest.mark.parametrize("encoding_name", ["", "gzip", "zstd", "br", "lying-gzip"])
def test_a_real_mitmdump_forwards_the_client_bytes(mitmdump, encoding_name: str) -> None:
    body = json.dumps({"model": "gpt-5", "messages": [{"role": "user", "content": "h\u00e9llo"}]}).encode()
    if encoding_name in COMPRESSORS:
        body = COMPRESSORS[encoding_name](body)
    sent = [("Host", "api.example.com"), ("Content-Type", "application/json"), ("X-Api-Key", "k"),
            ("x-dup", "1"), ("X-Dup", "2"), ("Content-Length", str(len(body)))]
    if encoding_name:
        sent.append(("Content-Encoding", encoding_name.removeprefix("lying-")))
    with ScriptedUpstream() as upstream:
        proxy = mitmdump(upstream.url, ("inject.py", "cache_audit.py"), options={"keep_host_header": True})
        for path in ("/v1/chat/completions", "/v1/embeddings"):
            assert exchange(proxy.port, "POST", path, sent, body).status == 200
        proxy.stop()
    llm, other = upstream.requests
    assert other.headers == sent and other.body == body
    assert llm.body == body
    assert [h for h in llm.headers if h[0].lower() not in ("x-session-id", "x-session-affinity")] == sent
    assert llm.header("x-session-id") == llm.header("x-session-affinity") != None  # noqa: E711
