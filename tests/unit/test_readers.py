"""The SSE tap: chunks pass untouched, usage comes out right however the stream is cut or encoded."""

from __future__ import annotations

import gzip
import json
import sys
import tracemalloc
import zlib
from itertools import pairwise

import brotli
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachepin.request.dialects import Dialect
from cachepin.response.extract import Extracted, UsageAccumulator
from cachepin.response.readers import StreamTap, usage_from_body
from cachepin.response.sse import SseScanner
from cachepin.response.usage import Usage

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd


def data(event: object) -> bytes:
    return b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n"


ANTHROPIC = (
    b"event: message_start\n"
    + data({"type": "message_start", "message": {"model": "claude-opus-4-6", "usage": {
        "input_tokens": 12, "cache_creation_input_tokens": 640, "cache_read_input_tokens": 9000,
        "cache_creation": {"ephemeral_5m_input_tokens": 640, "ephemeral_1h_input_tokens": 0}, "output_tokens": 1}}})
    + b": keep-alive comment\n\n"
    + b"event: content_block_delta\n"
    + data({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta",
                                                                 "text": 'the "usage" and "error" _tokens" words'}})
    + b"event: content_block_start\n"
    + data({"type": "content_block_start", "content_block": {"type": "tool_use", "input": {"max_tokens": 5}}})
    + b"event: ping\ndata: {\"type\": \"ping\"}\n\n"
    + b"event: message_delta\n"
    + data({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 85}})
    + b"event: message_stop\n" + data({"type": "message_stop"})
)
ANTHROPIC_USAGE = Usage("anthropic", "claude-opus-4-6", 12, 640, 9000, 85, 640, 0)

OPENAI = (
    b"".join(data({"object": "chat.completion.chunk", "model": "gpt-4o", "usage": None,
                   "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]})
             for w in ("Hello", " usage", ' "error"'))
    + data({"object": "chat.completion.chunk", "model": "gpt-4o", "choices": [], "usage": {
        "prompt_tokens": 4300, "completion_tokens": 52, "prompt_tokens_details": {"cached_tokens": 4096}}})
    + b"data: [DONE]\n\n"
)
OPENAI_USAGE = Usage("openai", "gpt-4o", 204, 0, 4096, 52)

GEMINI = b"".join(
    b'data: {"candidates": [{"content": {"parts": [{"text": "part %d"}]}}], "usageMetadata": '
    b'{"promptTokenCount": 5000, "cachedContentTokenCount": 3072, "candidatesTokenCount": %d, '
    b'"thoughtsTokenCount": 25}, "modelVersion": "gemini-2.5-pro"}\r\n\r\n' % (n, n)
    for n in (3, 17, 40)
)
GEMINI_USAGE = Usage("gemini", "gemini-2.5-pro", 1928, None, 3072, 65)

RESPONSES = (
    b"event: response.created\n"
    + data({"type": "response.created", "response": {"model": "gpt-5", "error": None, "usage": None,
                                                     "max_output_tokens": None}})
    + b"event: response.output_text.delta\n" + data({"type": "response.output_text.delta", "delta": "Hi"})
    + b"event: response.completed\n"
    + data({"type": "response.completed", "response": {"model": "gpt-5", "error": None, "usage": {
        "input_tokens": 7200, "input_tokens_details": {"cached_tokens": 6912}, "output_tokens": 140}}})
)
RESPONSES_USAGE = Usage("openai", "gpt-5", 288, None, 6912, 140)

STREAMS = [
    pytest.param(Dialect.ANTHROPIC, ANTHROPIC, ANTHROPIC_USAGE, id="anthropic"),
    pytest.param(Dialect.ANTHROPIC, ANTHROPIC.replace(b"\n", b"\r\n"), ANTHROPIC_USAGE, id="anthropic-crlf"),
    pytest.param(Dialect.OPENAI_CHAT, OPENAI, OPENAI_USAGE, id="openai-chat"),
    pytest.param(Dialect.GEMINI, GEMINI, GEMINI_USAGE, id="gemini"),
    pytest.param(Dialect.OPENAI_RESPONSES, RESPONSES, RESPONSES_USAGE, id="responses"),
]


def run_tap(dialect: Dialect, chunks: list[bytes], encoding: str = "") -> StreamTap:
    """Feeds the chunks and the final b"", checking that each comes back as the very same object."""
    tap = StreamTap(dialect, encoding)
    for chunk in [*chunks, b""]:
        assert tap(chunk) is chunk
    return tap


def cut(body: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted({p % (len(body) + 1) for p in points}), len(body)]
    return [body[a:b] for a, b in pairwise(bounds) if b > a]


@pytest.mark.parametrize("dialect, body, expected", STREAMS)
def test_whole_stream(dialect: Dialect, body: bytes, expected: Usage) -> None:
    assert run_tap(dialect, [body]).result == Extracted(expected)


@pytest.mark.parametrize("dialect, body, expected", STREAMS)
def test_split_in_two_at_every_byte(dialect: Dialect, body: bytes, expected: Usage) -> None:
    for i in range(len(body) + 1):
        assert run_tap(dialect, [body[:i], body[i:]]).result == Extracted(expected), f"cut at {i}"


@pytest.mark.parametrize("dialect, body, expected", STREAMS)
def test_one_byte_at_a_time(dialect: Dialect, body: bytes, expected: Usage) -> None:
    assert run_tap(dialect, [body[i : i + 1] for i in range(len(body))]).result == Extracted(expected)


@pytest.mark.parametrize("dialect, body, expected", STREAMS)
@settings(max_examples=60, deadline=None)
@given(points=st.lists(st.integers(min_value=0, max_value=4096), max_size=30))
def test_random_cuts(dialect: Dialect, body: bytes, expected: Usage, points: list[int]) -> None:
    assert run_tap(dialect, cut(body, points)).result == Extracted(expected)


@pytest.mark.parametrize("dialect, body, expected", STREAMS)
def test_replayed_body_reads_the_same(dialect: Dialect, body: bytes, expected: Usage) -> None:
    assert usage_from_body(dialect, "text/event-stream", body) == Extracted(expected)


def _raw_deflate(body: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(body) + compressor.flush()


def _flushed_gzip(body: bytes) -> bytes:
    """gzip the way a streaming server writes it: a sync flush after every event."""
    compressor = zlib.compressobj(wbits=31)
    parts = [compressor.compress(event + b"\n\n") + compressor.flush(zlib.Z_SYNC_FLUSH)
             for event in body.split(b"\n\n") if event]
    return b"".join(parts) + compressor.flush()


ENCODINGS = [
    pytest.param("gzip", gzip.compress, id="gzip"),
    pytest.param("gzip", _flushed_gzip, id="gzip-flushed"),
    pytest.param("", gzip.compress, id="gzip-without-header"),
    pytest.param("deflate", zlib.compress, id="deflate"),
    pytest.param("deflate", _raw_deflate, id="deflate-raw"),
    pytest.param("br", brotli.compress, id="br"),
    pytest.param("zstd", zstd.compress, id="zstd"),
]


@pytest.mark.parametrize("encoding, compress", ENCODINGS)
@pytest.mark.parametrize("dialect, body, expected", STREAMS)
@settings(max_examples=25, deadline=None)
@given(points=st.lists(st.integers(min_value=0, max_value=2048), max_size=20))
def test_compressed_streams_with_random_cuts(encoding, compress, dialect, body, expected, points) -> None:
    chunks = cut(compress(body), points)
    assert run_tap(dialect, chunks, encoding).result == Extracted(expected)


@pytest.mark.parametrize("encoding, compress", ENCODINGS)
def test_compressed_stream_split_in_two_at_every_byte(encoding, compress) -> None:
    wire = compress(ANTHROPIC)
    for i in range(len(wire) + 1):
        assert run_tap(Dialect.ANTHROPIC, [wire[:i], wire[i:]], encoding).result == Extracted(ANTHROPIC_USAGE)


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
    assert result.error == "overloaded_error: Overloaded"
    assert result.usage == Usage("anthropic", "claude-opus-4-6", 12, 640, 9000, 1, 640, 0)


def test_openai_error_chunk_mid_stream() -> None:
    chunks = OPENAI.split(b"\n\n")[:2]
    error = data({"error": {"type": "server_error", "message": "The model crashed"}})
    result = run_tap(Dialect.OPENAI_CHAT, [b"\n\n".join(chunks) + b"\n\n", error]).result
    assert result == Extracted(error="server_error: The model crashed")


@pytest.mark.parametrize("first", [True, False], ids=["error before usage", "error after usage"])
def test_latest_only_keeps_stream_order_around_errors(first: bool) -> None:
    """Gemini usage lines are held back unparsed; an error line must not reorder them."""
    events = GEMINI.split(b"\r\n\r\n")[:-1]
    error = b'data: {"error": {"code": 500, "message": "Internal", "status": "INTERNAL"}}'
    lines = [error, *events] if first else [*events, error]
    result = run_tap(Dialect.GEMINI, [b"\n\n".join(lines) + b"\n\n"]).result
    assert result.error == "INTERNAL: Internal"
    assert result.usage == GEMINI_USAGE


def test_an_error_line_that_also_carries_usage_wins_over_older_usage() -> None:
    older = data({"usageMetadata": {"promptTokenCount": 1}})
    both = data({"usageMetadata": {"promptTokenCount": 7}, "error": {"status": "X", "message": "m"}})
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
    assert second is not None and second.output_tokens == 42
    tap(events[2])
    tap(b"")
    assert tap.result == Extracted(GEMINI_USAGE)


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


class Recorder:
    """An EventSink that records what the scanner hands over."""

    usage_mark = b'_tokens"'
    error_mark = b'"error"'

    def __init__(self, latest_only: bool = False) -> None:
        self.latest_only = latest_only
        self.events: list[object] = []
        self.warnings: list[str] = []

    def feed(self, event: object) -> None:
        self.events.append(event)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


@pytest.mark.parametrize(
    "body, events",
    [
        (b'data: {"a_tokens":1}\n', [{"a_tokens": 1}]),
        (b'data:{"a_tokens":1}\r\n', [{"a_tokens": 1}]),
        (b'data: {"a_tokens":1}', [{"a_tokens": 1}]),  # no newline at the very end
        (b'data: {"text":"no mark"}\n', []),
        (b': comment with "error" and _tokens"\n', []),
        (b'event: x_tokens"\nid: "error"\n', []),
        (b'data: [DONE]\ndata: {"error":"e"}\ndata: [DONE]\n', [{"error": "e"}]),
        (b'data: {"x_tokens":1,"error":2}\n', [{"x_tokens": 1, "error": 2}]),  # both marks: parsed once
        (b'data: {"b_tokens":1}\n\ndata: {"error":1}\n\ndata: {"c_tokens":2}\n', [{"b_tokens": 1}, {"error": 1},
                                                                               {"c_tokens": 2}]),
    ],
)
def test_scanner_lines(body: bytes, events: list[object]) -> None:
    sink = Recorder()
    scanner = SseScanner(sink)
    scanner.feed(body)
    scanner.close()
    assert sink.events == events and sink.warnings == []


def test_latest_only_parses_only_the_last_usage_line() -> None:
    sink = Recorder(latest_only=True)
    scanner = SseScanner(sink)
    for i in range(100):
        scanner.feed(b'data: {"n_tokens":%d}\n\n' % i)
    scanner.feed(b'data: {"n_tokens":')  # the last line is still arriving
    assert sink.events == []
    scanner.flush()
    assert sink.events == [{"n_tokens": 99}]
    scanner.feed(b"100}\n")
    scanner.close()
    assert sink.events == [{"n_tokens": 99}, {"n_tokens": 100}]


@pytest.mark.parametrize("extra, kept", [(0, True), (1, False)], ids=["at the cap", "over the cap"])
def test_line_cap(extra: int, kept: bool) -> None:
    sink = Recorder()
    scanner = SseScanner(sink, max_line=64)
    prefix, suffix = b'data: {"x_tokens":"', b'"}'
    line = prefix + b"a" * (64 - len(prefix) - len(suffix) + extra) + suffix
    assert len(line) == 64 + extra
    for i in range(0, len(line), 10):
        scanner.feed(line[i : i + 10])
    scanner.feed(b'\ndata: {"after_tokens":1}\n')
    scanner.close()
    after = {"after_tokens": 1}
    assert sink.events == ([json.loads(line[6:]), after] if kept else [after])
    assert sink.warnings == ([] if kept else ["an SSE line longer than 64 bytes was skipped"])


@pytest.mark.parametrize("size_mib", [9, 24])
def test_a_huge_line_is_dropped_with_bounded_memory(size_mib: int) -> None:
    huge = b'data: {"type":"message_delta","usage":{"output_tokens":1},"pad":"' + b"p" * (size_mib << 20) + b'"}\n\n'
    wire = ANTHROPIC + huge + data({"type": "message_delta", "usage": {"output_tokens": 99}})
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
