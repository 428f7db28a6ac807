"""The AWS event-stream decoder and scanner: messages however the stream is cut, every CRC checked, bad streams a
warning and never an exception, and Bedrock's payloads read (Converse metadata, InvokeModel chunks, exceptions)."""

from __future__ import annotations

import base64
import json
import tracemalloc
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachepin.request.dialects import Dialect
from cachepin.response.eventstream import (
    MAX_HEADERS,
    MAX_MESSAGE,
    MAX_PAYLOAD,
    EventStreamScanner,
    FramingError,
    HeaderError,
    MessageDecoder,
    string_headers,
)
from cachepin.response.extract import UNTYPED_ERROR, Extracted, UsageAccumulator
from cachepin.response.usage import Usage
from cachepin_tools.wire import anthropic, bedrock, eventstream
from cachepin_tools.wire.tokens import Tokens

EVENT = {":event-type": "contentBlockDelta", ":content-type": "application/json", ":message-type": "event"}
MESSAGES = [
    eventstream.message(EVENT, b'{"contentBlockIndex":0,"delta":{"text":"Hel"},"p":"abcd"}'),
    eventstream.message({}, b""),  # no headers, no payload: the 16-byte minimum
    eventstream.message(EVENT, b'{"contentBlockIndex":0,"delta":{"text":"lo"},"p":"abcdefghijklmnopqrstuv"}'),
    eventstream.message({":message-type": "event", ":event-type": "metadata"}, b"x" * 300),
]
STREAM = b"".join(MESSAGES)
EXPECTED = [(string_headers(m[12:12 + int.from_bytes(m[4:8])]), m[12 + int.from_bytes(m[4:8]):-4]) for m in MESSAGES]


def decode(pieces: list[bytes]) -> list[tuple[dict[str, str], bytes]]:
    decoder = MessageDecoder()
    out = [(string_headers(block), payload) for piece in pieces for block, payload in decoder.feed(piece)]
    assert decoder.pending == 0
    return out


def cut(body: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted({p % (len(body) + 1) for p in points}), len(body)]
    return [body[a:b] for a, b in pairwise(bounds) if b > a]


# --- framing ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("headers, payload, documented", [
    ({}, b'{"foo": "bar"}', [0, 0, 0, 30, 0, 0, 0, 0, 186, 242, 246, 138, *b'{"foo": "bar"}', 174, 114, 88, 228]),
    ({"content-type": "application/json"}, b'{"foo": "bar"}',
     [0, 0, 0, 62, 0, 0, 0, 32, 64, 93, 249, 70, 12, *b"content-type", 7, 0, 16, *b"application/json",
      *b'{"foo": "bar"}', 111, 162, 191, 59]),
], ids=["no-headers", "one-string-header"])
def test_documented_messages_byte_for_byte(headers: dict, payload: bytes, documented: list[int]) -> None:
    """Test vectors documented with an independent encoder (hex.pm event_stream, docs/providers.md): the wire kit's
    CRCs are the format's, so a decoder that accepts its messages accepts AWS's."""
    assert eventstream.message(headers, payload) == bytes(documented)
    assert decode([bytes(documented)]) == [(headers, payload)]


def test_messages_split_in_two_at_every_byte() -> None:
    for i in range(len(STREAM) + 1):
        assert decode([STREAM[:i], STREAM[i:]]) == EXPECTED, f"cut at {i}"


def test_messages_fed_one_byte_at_a_time() -> None:
    assert decode([STREAM[i:i + 1] for i in range(len(STREAM))]) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(points=st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40))
def test_messages_cut_anywhere(points: list[int]) -> None:
    assert decode(cut(STREAM, points)) == EXPECTED


def test_a_message_is_read_as_soon_as_its_last_byte_arrives() -> None:
    decoder = MessageDecoder()
    first = MESSAGES[0]
    assert list(decoder.feed(first[:-1])) == [] and decoder.pending == len(first) - 1
    assert len(list(decoder.feed(first[-1:]))) == 1 and decoder.pending == 0


def test_every_single_byte_error_is_caught_by_a_crc() -> None:
    message = MESSAGES[0]
    for i in range(len(message)):
        damaged = bytearray(message)
        damaged[i] ^= 0x40
        with pytest.raises(FramingError, match="CRC mismatch at byte 0|impossible lengths"):
            list(MessageDecoder().feed(bytes(damaged) + MESSAGES[2]))


def test_the_offset_of_a_bad_message_is_its_place_in_the_stream() -> None:
    damaged = bytearray(MESSAGES[2])
    damaged[-1] ^= 1
    decoder = MessageDecoder()
    assert len(list(decoder.feed(MESSAGES[0] + MESSAGES[1][:5]))) == 1
    with pytest.raises(FramingError, match=f"message CRC mismatch at byte {len(MESSAGES[0]) + len(MESSAGES[1])}"):
        list(decoder.feed(MESSAGES[1][5:] + bytes(damaged)))


@pytest.mark.parametrize("total, headers_length", [
    (2**32 - 1, 0),  # 4 GiB: far beyond any message
    (MAX_MESSAGE + 1, 0),
    (15, 0),  # shorter than the prelude and the message CRC
    (100, 85),  # headers that do not fit the message
    (16 + MAX_HEADERS + 1, MAX_HEADERS + 1),
    (16 + MAX_PAYLOAD + 1, 0),
], ids=["4GiB", "over-max", "under-16", "headers-overflow", "headers-over-128KiB", "payload-over-16MiB"])
def test_impossible_lengths_are_refused_from_the_prelude_alone(total: int, headers_length: int) -> None:
    """Nothing is held for a message no encoder writes: 12 bytes tell, whatever the rest would be."""
    with pytest.raises(FramingError, match="impossible lengths at byte 0"):
        list(MessageDecoder().feed(eventstream.prelude(total, headers_length)))


def test_the_longest_message_passes_and_memory_stays_within_one_message() -> None:
    big = eventstream.message(EVENT, b"z" * (4 << 20))
    stream = big + MESSAGES[0]
    decoder = MessageDecoder()
    tracemalloc.start()
    try:
        read = [m for i in range(0, len(stream), 16384) for m in decoder.feed(stream[i:i + 16384])]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [len(payload) for _, payload in read] == [4 << 20, len(EXPECTED[0][1])]
    assert peak < 3 * len(big)  # the carried message, its one copy and the slices handed on


# --- headers ---------------------------------------------------------------------------------------------------


def test_headers_of_every_type_are_skipped_by_their_size() -> None:
    block = b"".join([
        eventstream.header("t", eventstream.BOOL_TRUE),
        eventstream.header("f", eventstream.BOOL_FALSE),
        eventstream.header(":event-type", eventstream.STRING, b"chunk"),
        eventstream.header("b", eventstream.BYTE, b"\x07"),
        eventstream.header("s", eventstream.INT16, b"\x00\x07"),
        eventstream.header("i", eventstream.INT32, b"\x00\x00\x00\x07"),
        eventstream.header("l", eventstream.INT64, bytes(8)),
        eventstream.header("raw", eventstream.BYTES, b"\x00\x07\x07"),
        eventstream.header("ts", eventstream.TIMESTAMP, bytes(8)),
        eventstream.header("id", eventstream.UUID, bytes(16)),
        eventstream.header(":message-type", eventstream.STRING, "évent".encode()),
    ])
    assert string_headers(block) == {":event-type": "chunk", ":message-type": "évent"}


@pytest.mark.parametrize("block, problem", [
    (eventstream.header("x", 10, b"\x00\x00"), "unknown header value type 10"),
    (eventstream.header("x", 255), "unknown header value type 255"),
    (eventstream.header("name", eventstream.STRING, b"value")[:-1], "cut short"),
    (eventstream.header("name", eventstream.INT64, bytes(8))[:-3], "cut short"),
    (b"\x09short", "cut short"),
    (b"\x01x\x07\x00", "cut short"),
], ids=["type-10", "type-255", "string-cut", "int64-cut", "name-cut", "length-cut"])
def test_headers_that_cannot_be_read_are_an_error(block: bytes, problem: str) -> None:
    with pytest.raises(HeaderError, match=problem):
        string_headers(block)


# --- the scanner: Bedrock's payloads into the accumulator ------------------------------------------------------

TOKENS = Tokens(30, read=8800, creation=1200, output=95)
CONVERSE = bedrock.converse_stream(bedrock.converse_usage(TOKENS), ["Hel", "lo"])
CONVERSE_USAGE = Usage("bedrock", None, 30, 1200, 8800, 95)
INVOKE = bedrock.invoke_stream(anthropic.events(anthropic.usage(TOKENS), ["Hel", "lo"], "claude-sonnet-4-6"),
                               bedrock.invocation_metrics(TOKENS))
INVOKE_USAGE = Usage("bedrock", "claude-sonnet-4-6", 30, 1200, 8800, 95)


def scan(dialect: Dialect, pieces: list[bytes]) -> Extracted:
    accumulator = UsageAccumulator(dialect)
    scanner = EventStreamScanner(accumulator)
    for piece in pieces:
        scanner.feed(piece)
    scanner.close()
    return accumulator.result


@pytest.mark.parametrize("dialect, frames, expected, response_id", [
    (Dialect.BEDROCK_CONVERSE, CONVERSE, CONVERSE_USAGE, None),
    (Dialect.BEDROCK_INVOKE, INVOKE, INVOKE_USAGE, "msg_wire"),
], ids=["converse-stream", "invoke-with-response-stream"])
def test_bedrock_streams(dialect: Dialect, frames: list[bytes], expected: Usage, response_id: str | None) -> None:
    assert scan(dialect, frames) == Extracted(expected, response_id=response_id, final=True)


def test_the_converse_ttl_split_is_read_from_the_metadata_event() -> None:
    usage = {**bedrock.converse_usage(TOKENS), "cacheDetails": [{"ttl": "1h", "inputTokens": 1000},
                                                                {"ttl": "5m", "inputTokens": 200}]}
    result = scan(Dialect.BEDROCK_CONVERSE, bedrock.converse_stream(usage, ["Hi"]))
    assert result.usage == Usage("bedrock", None, 30, 1200, 8800, 95, 200, 1000)


def test_the_metadata_event_is_the_converse_streams_final_word() -> None:
    assert scan(Dialect.BEDROCK_CONVERSE, CONVERSE[:-1]) == Extracted()  # cut before it: nothing was reported
    assert scan(Dialect.BEDROCK_CONVERSE, CONVERSE[-1:]).final


def test_an_invoke_stream_is_final_at_anthropics_message_delta() -> None:
    names = [json.loads(base64.b64decode(json.loads(frame[frame.index(b'{"bytes"'):-4])["bytes"]))["type"]
             for frame in INVOKE]
    delta = names.index("message_delta")
    before, after = scan(Dialect.BEDROCK_INVOKE, INVOKE[:delta]), scan(Dialect.BEDROCK_INVOKE, INVOKE[:delta + 1])
    assert before.usage is not None and before.usage.output_tokens == 1 and not before.final  # message_start's
    assert after == Extracted(INVOKE_USAGE, response_id="msg_wire", final=True)


@pytest.mark.parametrize("message, expected", [
    (bedrock.exception("throttlingException", "Too many tokens, please wait. sk-PLANTED"), "throttlingException"),
    (bedrock.exception("modelStreamErrorException", "The model stream failed"), "modelStreamErrorException"),
    (eventstream.message({":message-type": "exception", ":content-type": "application/json"}, b'{"message":"x"}'),
     UNTYPED_ERROR),
    (eventstream.message({":message-type": "exception", ":exception-type": "sk-PLANTED: no"}, b"{}"), UNTYPED_ERROR),
    (eventstream.message({":message-type": "error", ":error-code": "InternalFailure",
                          ":error-message": "sk-PLANTED"}, b""), "InternalFailure"),
], ids=["throttling", "model-stream-error", "no-type", "type-not-an-identifier", "error-message-type"])
def test_exceptions_are_errors_named_by_their_type_header_only(message: bytes, expected: str) -> None:
    result = scan(Dialect.BEDROCK_CONVERSE, [*CONVERSE[:2], message])
    assert result == Extracted(error=expected)


def test_an_exception_after_the_usage_keeps_the_usage() -> None:
    result = scan(Dialect.BEDROCK_INVOKE, [*INVOKE, bedrock.exception("internalServerException", "boom")])
    assert (result.usage, result.error) == (INVOKE_USAGE, "internalServerException")


def test_text_that_looks_like_usage_is_not_usage() -> None:
    delta = bedrock.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {
        "text": 'the "usage": {"inputTokens": 5} and "error" _tokens" words'}})
    chunk = bedrock.chunk({"type": "content_block_delta", "index": 0, "delta": {
        "type": "text_delta", "text": '"usage": {"output_tokens": 5}, "error"'}})
    assert scan(Dialect.BEDROCK_CONVERSE, [*CONVERSE[:2], delta, *CONVERSE[2:]]).usage == CONVERSE_USAGE
    assert scan(Dialect.BEDROCK_INVOKE, [*INVOKE[:3], chunk, *INVOKE[3:]]).usage == INVOKE_USAGE


@pytest.mark.parametrize("payload", [
    lambda data: json.dumps({"bytes": data, "p": "abc"}, indent=1).encode(),  # spaced JSON
    lambda data: json.dumps({"p": "abc", "bytes": data}).replace("/", "\\/").encode(),  # escaped solidus
], ids=["spaced", "escaped-solidus"])
def test_chunks_in_any_json_spelling_are_read(payload) -> None:
    inner = base64.b64encode(json.dumps({"type": "message_delta", "delta": {}, "usage": {
        "output_tokens": 95, "input_tokens": 30, "cache_read_input_tokens": 8800, "x": "??>>??>>"}}).encode()).decode()
    assert "/" in inner or "+" in inner
    headers = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    result = scan(Dialect.BEDROCK_INVOKE, [eventstream.message(headers, payload(inner))])
    assert result.usage is not None and result.usage.output_tokens == 95 and result.warning is None


@pytest.mark.parametrize("payload, warning", [
    (b'{"bytes":"not base64!","p":"ab"}', "an AWS event-stream chunk's bytes are not base64"),
    (b'{"bytes":"' + base64.b64encode(b'{"usage": {"output_tokens": 9') + b'"}',
     "an event holding usage or an error of the AWS event stream is not valid JSON"),
    (b'{"bytes": "eyJ1c2FnZSI6', "a chunk of the AWS event stream is not valid JSON"),
], ids=["not-base64", "inner-json-cut", "outer-json-cut"])
def test_a_bad_chunk_is_a_warning_and_the_stream_is_read_on(payload: bytes, warning: str) -> None:
    headers = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    result = scan(Dialect.BEDROCK_INVOKE, [eventstream.message(headers, payload), *INVOKE])
    assert result.usage == INVOKE_USAGE and result.warning == warning


def test_a_message_with_unreadable_headers_is_skipped_and_the_next_ones_read() -> None:
    odd = eventstream.message([eventstream.header(":event-type", 12, b"??")], b'{"usage": {"inputTokens": 1}}')
    result = scan(Dialect.BEDROCK_CONVERSE, [*CONVERSE[:-1], odd, CONVERSE[-1]])
    assert result.usage == CONVERSE_USAGE
    assert result.warning == "an AWS event-stream message was skipped: unknown header value type 12"


@pytest.mark.parametrize("damage", ["prelude", "payload", "length"])
def test_a_corrupt_stream_stops_the_reading_with_one_warning_and_keeps_what_came_before(damage: str) -> None:
    good = b"".join(INVOKE[:2])  # message_start: the prompt figures
    bad = bytearray(b"".join(INVOKE[2:]))
    if damage == "length":
        bad[:12] = eventstream.prelude(2**31, 0)
    else:
        bad[1 if damage == "prelude" else 40] ^= 0xFF
    result = scan(Dialect.BEDROCK_INVOKE, cut(good + bytes(bad), [7, 300, 301, 1000]))
    assert result.usage is not None and result.usage.cache_read_input_tokens == 8800 and not result.final
    assert result.warning is not None and result.warning.startswith("the AWS event stream is corrupt (")
    assert result.warning.endswith("): the rest of it was not read") and "; " not in result.warning


def test_a_stream_that_ends_inside_a_message_says_so() -> None:
    body = b"".join(CONVERSE)
    result = scan(Dialect.BEDROCK_CONVERSE, [body[:-10]])
    assert result.usage is None
    unread = len(CONVERSE[-1]) - 10
    assert result.warning == f"the AWS event stream ended inside a message ({unread} bytes of it unread)"


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.binary(max_size=200) | st.sampled_from([*CONVERSE, *INVOKE, MESSAGES[1]]), max_size=12),
       dialect=st.sampled_from([Dialect.BEDROCK_CONVERSE, Dialect.BEDROCK_INVOKE]))
def test_garbage_never_raises(pieces: list[bytes], dialect: Dialect) -> None:
    result = scan(dialect, pieces)
    assert result.warning is None or len(result.warning.split("; ")) <= 8
