"""The stream tap and the body reader: chunks pass untouched, usage comes out right however a stream is cut or
encoded, and a body is read by its content type."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from itertools import pairwise

import brotli
import pytest
from codings import raw_deflate, zstd
from hypothesis import given, settings
from hypothesis import strategies as st

from cachepin.request.dialects import Dialect
from cachepin.response.eventstream import EventStreamScanner
from cachepin.response.extract import Extracted, UsageAccumulator
from cachepin.response.readers import (
    ScannerFactory,
    StreamTap,
    interrupted,
    is_bedrock_event_stream,
    is_event_stream,
    scanner_for,
    usage_from_body,
)
from cachepin.response.sse import SseScanner
from cachepin.response.usage import Usage
from cachepin_tools.wire import anthropic, bedrock, eventstream, framing, gemini
from cachepin_tools.wire.tokens import Tokens

ANTHROPIC = b"".join([
    framing.frame({"type": "message_start", "message": {"model": "claude-opus-4-6", "usage": anthropic.usage(
        Tokens(12, read=9000, creation=640, output=1, creation_5m=640, creation_1h=0))}}, "message_start"),
    b": keep-alive comment\n\n",
    framing.frame({"type": "content_block_delta", "index": 0, "delta": {
        "type": "text_delta", "text": 'the "usage" and "error" _tokens" words'}}, "content_block_delta"),
    framing.frame({"type": "content_block_start", "content_block": {"type": "tool_use", "input": {"max_tokens": 5}}},
                  "content_block_start"),
    framing.frame({"type": "ping"}, "ping", framing.SPACED),
    framing.frame({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 85}},
                  "message_delta"),
    framing.frame({"type": "message_stop"}, "message_stop"),
])
ANTHROPIC_USAGE = Usage("anthropic", "claude-opus-4-6", 12, 640, 9000, 85, 640, 0)

# id-less chunks (an id would be read too), whose text holds the marks the scanner looks for, in no usage field
OPENAI = framing.stream([
    *((None, {"object": "chat.completion.chunk", "model": "gpt-4o", "usage": None,
              "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]})
      for w in ("Hello", " usage", ' "error"')),
    (None, {"object": "chat.completion.chunk", "model": "gpt-4o", "choices": [], "usage": {
        "prompt_tokens": 4300, "completion_tokens": 52, "prompt_tokens_details": {"cached_tokens": 4096}}}),
    framing.DONE,
])
OPENAI_USAGE = Usage("openai", "gpt-4o", 204, None, 4096, 52)

GEMINI = framing.stream([(None, gemini.response(gemini.usage_metadata(
    Tokens(1928, read=3072, creation=None, output=n + 25, reasoning=25)), f"part {n}", "gemini-2.5-pro",
    "STOP" if n == 40 else None)) for n in (3, 17, 40)], framing.GEMINI)
GEMINI_USAGE = Usage("gemini", "gemini-2.5-pro", 1928, None, 3072, 65)

RESPONSES = framing.stream([
    ("response.created", {"type": "response.created", "response": {"model": "gpt-5", "error": None, "usage": None,
                                                                   "max_output_tokens": None}}),
    ("response.output_text.delta", {"type": "response.output_text.delta", "delta": "Hi"}),
    ("response.completed", {"type": "response.completed", "response": {"model": "gpt-5", "error": None, "usage": {
        "input_tokens": 7200, "input_tokens_details": {"cached_tokens": 6912}, "output_tokens": 140}}}),
])
RESPONSES_USAGE = Usage("openai", "gpt-5", 288, None, 6912, 140)

STREAMS = [
    pytest.param(Dialect.ANTHROPIC, ANTHROPIC, ANTHROPIC_USAGE, id="anthropic"),
    pytest.param(Dialect.ANTHROPIC, ANTHROPIC.replace(b"\n", b"\r\n"), ANTHROPIC_USAGE, id="anthropic-crlf"),
    pytest.param(Dialect.ANTHROPIC, ANTHROPIC.replace(b"\n", b"\r"), ANTHROPIC_USAGE, id="anthropic-cr"),
    # each event's JSON over several data lines (the SSE rules join them with LF)
    pytest.param(Dialect.GEMINI, GEMINI.replace(b", ", b",\r\ndata: "), GEMINI_USAGE, id="gemini-multiline"),
    pytest.param(Dialect.OPENAI_CHAT, OPENAI, OPENAI_USAGE, id="openai-chat"),
    pytest.param(Dialect.GEMINI, GEMINI, GEMINI_USAGE, id="gemini"),
    pytest.param(Dialect.OPENAI_RESPONSES, RESPONSES, RESPONSES_USAGE, id="responses"),
]


def run_tap(dialect: Dialect, chunks: list[bytes], encoding: str = "",
            scanner: ScannerFactory = SseScanner) -> StreamTap:
    """Feeds the chunks and the final b"", checking that each comes back as the very same object."""
    tap = StreamTap(dialect, encoding, scanner=scanner)
    for chunk in [*chunks, b""]:
        assert tap(chunk) is chunk
    return tap


def cut(body: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted({p % (len(body) + 1) for p in points}), len(body)]
    return [body[a:b] for a, b in pairwise(bounds) if b > a]


@pytest.mark.parametrize("dialect, body, expected", STREAMS)
def test_whole_stream(dialect: Dialect, body: bytes, expected: Usage) -> None:
    assert run_tap(dialect, [body]).result == Extracted(expected, final=True)


@pytest.mark.parametrize("dialect, body, expected", STREAMS)
def test_split_in_two_at_every_byte(dialect: Dialect, body: bytes, expected: Usage) -> None:
    for i in range(len(body) + 1):
        assert run_tap(dialect, [body[:i], body[i:]]).result == Extracted(expected, final=True), f"cut at {i}"


@pytest.mark.parametrize("dialect, body, expected", STREAMS)
def test_one_byte_at_a_time(dialect: Dialect, body: bytes, expected: Usage) -> None:
    assert run_tap(dialect, [body[i : i + 1] for i in range(len(body))]).result == Extracted(expected, final=True)


@pytest.mark.parametrize("dialect, body, expected", STREAMS)
@settings(max_examples=60, deadline=None)
@given(points=st.lists(st.integers(min_value=0, max_value=4096), max_size=30))
def test_random_cuts(dialect: Dialect, body: bytes, expected: Usage, points: list[int]) -> None:
    assert run_tap(dialect, cut(body, points)).result == Extracted(expected, final=True)


@pytest.mark.parametrize("dialect, body, expected", STREAMS)
def test_replayed_body_reads_the_same(dialect: Dialect, body: bytes, expected: Usage) -> None:
    assert usage_from_body(dialect, "text/event-stream", body) == Extracted(expected, final=True)



def _flushed_gzip(body: bytes) -> bytes:
    """gzip the way a streaming server writes it: a sync flush after every event."""
    return b"".join(framing.gzip_frames(event + b"\n\n" for event in body.split(b"\n\n") if event))


ENCODINGS = [
    pytest.param("gzip", gzip.compress, id="gzip"),
    pytest.param("gzip", _flushed_gzip, id="gzip-flushed"),
    pytest.param("", gzip.compress, id="gzip-without-header"),
    pytest.param("deflate", zlib.compress, id="deflate"),
    pytest.param("deflate", raw_deflate, id="deflate-raw"),
    pytest.param("br", brotli.compress, id="br"),
    pytest.param("zstd", zstd.compress, id="zstd"),
]


@pytest.mark.parametrize("encoding, compress", ENCODINGS)
@pytest.mark.parametrize("dialect, body, expected", STREAMS)
@settings(max_examples=25, deadline=None)
@given(points=st.lists(st.integers(min_value=0, max_value=2048), max_size=20))
def test_compressed_streams_with_random_cuts(encoding, compress, dialect, body, expected, points) -> None:
    chunks = cut(compress(body), points)
    assert run_tap(dialect, chunks, encoding).result == Extracted(expected, final=True)


@pytest.mark.parametrize("encoding, compress", ENCODINGS)
def test_compressed_stream_split_in_two_at_every_byte(encoding, compress) -> None:
    wire = compress(ANTHROPIC)
    for i in range(len(wire) + 1):
        result = run_tap(Dialect.ANTHROPIC, [wire[:i], wire[i:]], encoding).result
        assert result == Extracted(ANTHROPIC_USAGE, final=True)


@pytest.mark.parametrize(
    "encoding, compress, all_events_arrived",
    [
        ("gzip", _flushed_gzip, True),  # flushed per event: only the trailer is missing
        ("", _flushed_gzip, True),
        ("deflate", zlib.compress, False),
        ("br", brotli.compress, False),
        ("zstd", zstd.compress, False),
    ],
    ids=["gzip", "gzip-without-header", "deflate", "br", "zstd"],
)
def test_truncated_compressed_stream_is_a_warning_and_keeps_what_was_read(
    encoding, compress, all_events_arrived
) -> None:
    wire = compress(ANTHROPIC)
    result = run_tap(Dialect.ANTHROPIC, [wire[: len(wire) - 6]], encoding).result
    assert result.warning is not None and "truncated" in result.warning
    assert result.error is None
    if all_events_arrived:
        assert result.usage == ANTHROPIC_USAGE


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_garbled_compressed_stream_is_a_warning_and_chunks_still_pass(encoding: str) -> None:
    garbage = [b"\x00\xff not compressed \x13\x37" * 20, b"more garbage", ANTHROPIC]
    result = run_tap(Dialect.ANTHROPIC, garbage, encoding).result
    assert result.usage is None
    assert result.warning is not None and encoding in result.warning


def test_a_stream_corrupted_midway_keeps_the_usage_before_the_damage() -> None:
    wire = bytearray(_flushed_gzip(ANTHROPIC))
    damage = len(wire) - 40
    wire[damage : damage + 8] = b"\xff" * 8
    result = run_tap(Dialect.ANTHROPIC, [bytes(wire[:damage]), bytes(wire[damage:])], "gzip").result
    assert result.warning is not None and "gzip" in result.warning
    assert result.usage is not None and result.usage.cache_read_input_tokens == 9000


def test_unknown_content_encoding_is_a_warning_and_chunks_still_pass() -> None:
    result = run_tap(Dialect.ANTHROPIC, [ANTHROPIC], "compress").result
    assert result == Extracted(warning="unsupported content encoding 'compress'")


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(st.binary(max_size=300), max_size=12), encoding=st.sampled_from(["", "gzip", "br", "zstd"]))
def test_binary_garbage_never_raises(chunks: list[bytes], encoding: str) -> None:
    run_tap(Dialect.ANTHROPIC, chunks, encoding)


@pytest.mark.parametrize(
    "line",
    [
        b'data: {"type":"message_delta","usage":{"output_tokens":\xff\xfe}}',
        b'data: {"type":"message_delta","usage":{"output_tokens":8',
        b"data: " + b"[" * 100_000 + b'"_tokens"',
    ],
    ids=["invalid utf-8", "cut json", "deeply nested"],
)
def test_a_broken_usage_line_is_a_warning(line: bytes) -> None:
    result = run_tap(Dialect.ANTHROPIC, [ANTHROPIC, line + b"\n\n"]).result
    assert result.usage == ANTHROPIC_USAGE
    assert result.warning == "an SSE data line holding usage or an error is not valid JSON"


def test_error_event_mid_stream() -> None:
    start, rest = ANTHROPIC.split(b"event: content_block_delta", 1)
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    result = run_tap(Dialect.ANTHROPIC, [start + error]).result
    assert result.error == "overloaded_error"
    assert result.usage == Usage("anthropic", "claude-opus-4-6", 12, 640, 9000, 1, 640, 0)


def test_openai_error_chunk_mid_stream() -> None:
    chunks = OPENAI.split(b"\n\n")[:2]
    error = framing.frame({"error": {"type": "server_error", "message": "The model crashed"}})
    result = run_tap(Dialect.OPENAI_CHAT, [b"\n\n".join(chunks) + b"\n\n", error]).result
    assert result == Extracted(error="server_error")


@pytest.mark.parametrize("first", [True, False], ids=["error before usage", "error after usage"])
def test_latest_only_keeps_stream_order_around_errors(first: bool) -> None:
    """Gemini usage lines are held back unparsed; an error line must not reorder them."""
    events = GEMINI.split(b"\r\n\r\n")[:-1]
    error = b'data: {"error": {"code": 500, "message": "Internal", "status": "INTERNAL"}}'
    lines = [error, *events] if first else [*events, error]
    result = run_tap(Dialect.GEMINI, [b"\n\n".join(lines) + b"\n\n"]).result
    assert result.error == "INTERNAL"
    assert result.usage == GEMINI_USAGE


def test_an_error_line_that_also_carries_usage_wins_over_older_usage() -> None:
    older = framing.frame({"usageMetadata": {"promptTokenCount": 1}})
    both = framing.frame({"usageMetadata": {"promptTokenCount": 7}, "error": {"status": "X", "message": "m"}})
    result = run_tap(Dialect.GEMINI, [older + both]).result
    assert result.usage is not None and result.usage.input_tokens == 7


def test_result_can_be_read_while_streaming() -> None:
    tap = StreamTap(Dialect.GEMINI)
    events = [e + b"\r\n\r\n" for e in GEMINI.split(b"\r\n\r\n")[:-1]]
    tap(events[0])
    first = tap.result.usage
    assert first is not None and first.output_tokens == 28
    tap(events[1])
    second = tap.result.usage
    assert second is not None and second.output_tokens == 42 and not tap.result.final
    tap(events[2])
    tap(b"")
    assert tap.result == Extracted(GEMINI_USAGE, final=True)


def test_first_byte_is_timed_once() -> None:
    times = iter([10.0, 99.0])
    tap = StreamTap(Dialect.ANTHROPIC, clock=lambda: next(times))
    assert tap.first_byte_at is None
    tap(b"event: ping\n")
    tap(b"data: {}\n\n")
    tap(b"")
    assert tap.first_byte_at == 10.0


def test_an_internal_error_is_one_warning_and_stops_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def broken_feed(self: UsageAccumulator, event: object) -> None:
        calls.append(event)
        raise KeyError("boom")

    monkeypatch.setattr(UsageAccumulator, "feed", broken_feed)
    chunks = [ANTHROPIC, ANTHROPIC, ANTHROPIC]
    result = run_tap(Dialect.ANTHROPIC, chunks).result
    assert len(calls) == 1
    assert result.warning == "usage tap stopped by an internal error (KeyError)"


def test_the_same_chunk_object_comes_back_even_for_unusual_inputs() -> None:
    tap = StreamTap(Dialect.ANTHROPIC, "gzip")
    for chunk in (b"\x1f\x8b", bytearray(b"\x08\x00"), b"\x00" * 10):
        assert tap(chunk) is chunk  # type: ignore[arg-type]


@pytest.mark.parametrize("size_mib", [9, 24])
def test_a_huge_line_is_dropped_with_bounded_memory(size_mib: int) -> None:
    huge = b'data: {"type":"message_delta","usage":{"output_tokens":1},"pad":"' + b"p" * (size_mib << 20) + b'"}\n\n'
    wire = ANTHROPIC + huge + framing.frame({"type": "message_delta", "usage": {"output_tokens": 99}})
    chunks = [wire[i : i + 16384] for i in range(0, len(wire), 16384)]
    tap = StreamTap(Dialect.ANTHROPIC)
    tracemalloc.start()
    try:
        for chunk in chunks:
            tap(chunk)
        tap(b"")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    result = tap.result
    assert result.warning == "an SSE line longer than 8388608 bytes was skipped"
    assert result.usage is not None and result.usage.output_tokens == 99
    assert peak < 10 << 20  # the 8 MiB cap and a little, however long the line


@pytest.mark.parametrize(
    "content_type, body, expected",
    [
        ("application/json", b"", Extracted()),
        ("application/json", b"  \n", Extracted()),
        ("text/html", b"<html>Bad gateway</html>", Extracted(warning="response body is not JSON (text/html)")),
        ("", b"\xff\xfe\x00garbage", Extracted(warning="response body is not JSON (no content type)")),
        ("application/json", b"[" * 100_000, Extracted(warning="response body is not JSON (application/json)")),
        ("application/json", b'{"usage": null}', Extracted()),
        ("TEXT/EVENT-STREAM", b"data: [DONE]\n\n", Extracted()),
    ],
)
def test_usage_from_body_edge_cases(content_type: str, body: bytes, expected: Extracted) -> None:
    assert usage_from_body(Dialect.OPENAI_CHAT, content_type, body) == expected


@pytest.mark.parametrize(
    "content_type, expected",
    [
        ("text/event-stream", True),
        ("text/event-stream; charset=utf-8", True),
        ("TEXT/Event-Stream;charset=UTF-8", True),
        ("  text/event-stream  ; charset=utf-8", True),
        ("text/event-stream-extended", False),  # a prefix of the media type is not the media type
        ("text/plain; note=text/event-stream", False),
        ("application/json", False),
        ("", False),
    ],
)
def test_is_event_stream(content_type: str, expected: bool) -> None:
    assert is_event_stream(content_type) is expected


@pytest.mark.parametrize("read, expected_error", [
    (Extracted(ANTHROPIC_USAGE, final=True), None),  # the client hung up at the last event: complete
    (Extracted(ANTHROPIC_USAGE), "Client disconnected."),  # cut before the final usage
    (Extracted(ANTHROPIC_USAGE, error="overloaded_error", final=True), "overloaded_error"),  # the provider's own
    (Extracted(), "Client disconnected."),
])
def test_a_response_that_did_not_end_is_an_error_unless_its_final_usage_was_read(read: Extracted,
                                                                                  expected_error: str | None) -> None:
    settled = interrupted(read, "Client disconnected.")
    assert settled.error == expected_error and settled.usage == read.usage


# --- Bedrock's AWS event streams: the same tap, the event-stream scanner ----------------------------------------

EVENT_STREAM = "application/vnd.amazon.eventstream"
BEDROCK_TOKENS = Tokens(30, read=8800, creation=1200, output=95)
CONVERSE = b"".join(bedrock.converse_stream(bedrock.converse_usage(BEDROCK_TOKENS), ["Hel", "lo", ' "usage" ']))
INVOKE = b"".join(bedrock.invoke_stream(
    anthropic.events(anthropic.usage(BEDROCK_TOKENS), ["Hel", "lo", ' _tokens" '], "claude-sonnet-4-6"),
    bedrock.invocation_metrics(BEDROCK_TOKENS)))
EVENT_STREAMS = [
    pytest.param(Dialect.BEDROCK_CONVERSE, CONVERSE,
                 Extracted(Usage("bedrock", None, 30, 1200, 8800, 95), final=True), id="converse-stream"),
    pytest.param(Dialect.BEDROCK_INVOKE, INVOKE,
                 Extracted(Usage("bedrock", "claude-sonnet-4-6", 30, 1200, 8800, 95), response_id="msg_wire",
                           final=True), id="invoke-with-response-stream"),
]


def run_event_tap(dialect: Dialect, chunks: list[bytes], encoding: str = "") -> StreamTap:
    return run_tap(dialect, chunks, encoding, scanner=EventStreamScanner)


@pytest.mark.parametrize("dialect, body, expected", EVENT_STREAMS)
def test_event_stream_split_in_two_at_every_byte(dialect: Dialect, body: bytes, expected: Extracted) -> None:
    for i in range(len(body) + 1):
        assert run_event_tap(dialect, [body[:i], body[i:]]).result == expected, f"cut at {i}"


@pytest.mark.parametrize("dialect, body, expected", EVENT_STREAMS)
def test_event_stream_one_byte_at_a_time(dialect: Dialect, body: bytes, expected: Extracted) -> None:
    assert run_event_tap(dialect, [body[i : i + 1] for i in range(len(body))]).result == expected


@pytest.mark.parametrize("dialect, body, expected", EVENT_STREAMS)
@settings(max_examples=60, deadline=None)
@given(points=st.lists(st.integers(min_value=0, max_value=4096), max_size=30),
       encoding=st.sampled_from(["", "gzip-flushed", "gzip"]))
def test_event_stream_random_cuts_and_encodings(dialect, body, expected, points, encoding) -> None:
    wire = {"": body, "gzip": gzip.compress(body), "gzip-flushed": b"".join(framing.gzip_frames(cut(body, points)))}
    assert run_event_tap(dialect, cut(wire[encoding], points), encoding.split("-")[0]).result == expected


@pytest.mark.parametrize("dialect, body, expected", EVENT_STREAMS)
def test_event_stream_body_reads_the_same_as_the_tap(dialect: Dialect, body: bytes, expected: Extracted) -> None:
    """A body kept by store_streamed_bodies, or replayed, is read by the same scanner."""
    assert usage_from_body(dialect, EVENT_STREAM, body) == expected
    assert usage_from_body(dialect, f"{EVENT_STREAM}; charset=binary", body) == expected


def test_a_corrupt_event_stream_passes_every_chunk_and_keeps_the_usage_before_the_damage() -> None:
    frames = bedrock.invoke_stream(anthropic.events(anthropic.usage(BEDROCK_TOKENS), ["a", "b"], "claude-sonnet-4-6"),
                                   bedrock.invocation_metrics(BEDROCK_TOKENS))
    damaged = bytearray(frames[3])
    damaged[20] ^= 1
    chunks = [frames[0], frames[1] + frames[2][:10], frames[2][10:] + bytes(damaged), *frames[4:]]
    result = run_event_tap(Dialect.BEDROCK_INVOKE, chunks).result  # every chunk came back as it was (run_tap)
    assert result.usage == Usage("bedrock", "claude-sonnet-4-6", 30, 1200, 8800, 1)  # message_start's figures
    assert not result.final and result.warning is not None and "corrupt" in result.warning


def test_an_exception_mid_stream_is_an_error_turn() -> None:
    frames = bedrock.converse_stream(bedrock.converse_usage(BEDROCK_TOKENS), ["a"])
    tap = run_event_tap(Dialect.BEDROCK_CONVERSE, [*frames[:2], bedrock.exception("throttlingException", "Slow")])
    assert tap.result == Extracted(error="throttlingException")


def test_an_event_stream_tap_publishes_its_reading_as_it_goes() -> None:
    """What a capture saves, even of a stream cut after its metadata event."""
    frames = bedrock.converse_stream(bedrock.converse_usage(BEDROCK_TOKENS), ["a"])
    tap = StreamTap(Dialect.BEDROCK_CONVERSE, scanner=EventStreamScanner)
    for frame in frames:
        tap(frame)
    assert tap.reading["final"] is True and tap.reading["usage"]["cache_read_input_tokens"] == 8800
    assert tap.interrupted == Extracted(Usage("bedrock", None, 30, 1200, 8800, 95), final=True)


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(st.binary(max_size=300) | st.sampled_from([CONVERSE[:100], INVOKE[37:400],
                                                                   eventstream.message({}, b"{}")]), max_size=12),
       encoding=st.sampled_from(["", "gzip", "br"]))
def test_event_stream_garbage_never_raises(chunks: list[bytes], encoding: str) -> None:
    run_event_tap(Dialect.BEDROCK_INVOKE, chunks, encoding)


@pytest.mark.parametrize("content_type, sse, bedrock_stream", [
    ("text/event-stream; charset=utf-8", True, False),
    ("application/vnd.amazon.eventstream", False, True),
    ("Application/VND.Amazon.EventStream ; x=y", False, True),
    ("application/vnd.amazon.eventstream-v2", False, False),  # a prefix of the media type is not the media type
    ("application/json", False, False),
    ("", False, False),
])
def test_scanner_for_the_framing(content_type: str, sse: bool, bedrock_stream: bool) -> None:
    assert (is_event_stream(content_type), is_bedrock_event_stream(content_type)) == (sse, bedrock_stream)
    expected = SseScanner if sse else EventStreamScanner if bedrock_stream else None
    assert scanner_for(content_type) is expected
