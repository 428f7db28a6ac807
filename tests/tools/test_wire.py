"""The wire kit: exact framing per style, usage objects that say what the counts say, bodies and streams that
cachepin's readers read back to the counts they were rendered from, and HTTP/1.1 framing."""

from __future__ import annotations

import json
import zlib

import pytest

from cachepin.request.dialects import Dialect
from cachepin.response.readers import usage_from_body
from cachepin_tools.wire import anthropic, bedrock, framing, gemini, http1, openai
from cachepin_tools.wire.tokens import Tokens

# A record with every figure distinct, so a figure in the wrong place shows.
TOKENS = Tokens(12, read=9000, creation=640, output=85, creation_5m=40, creation_1h=600, reasoning=5)


# --- framing ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("style", "expected"), [
    (framing.COMPACT, b'event: x\ndata: {"a":[1,"\\u00e9"]}\n\n'),
    (framing.SPACED, b'event: x\ndata: {"a": [1, "\\u00e9"]}\n\n'),
    (framing.RAW_UTF8, 'event: x\ndata: {"a":[1,"\u00e9"]}\n\n'.encode()),
    (framing.GEMINI, b'event: x\r\ndata: {"a": [1, "\\u00e9"]}\r\n\r\n'),
], ids=["compact", "spaced", "raw-utf8", "gemini"])
def test_a_frame_in_each_style(style: framing.Style, expected: bytes) -> None:
    assert framing.frame({"a": [1, "\u00e9"]}, "x", style) == expected


def test_a_string_is_sent_as_it_is_and_an_unnamed_event_has_no_event_line() -> None:
    assert framing.stream([framing.DONE]) == b"data: [DONE]\n\n"
    assert framing.frames([(None, {"a": 1}), ("n", {})]) == [b'data: {"a":1}\n\n', b"event: n\ndata: {}\n\n"]


def test_gzip_frames_join_to_one_gzip_body_of_every_chunk() -> None:
    chunks = [b"one ", b"", b"two " * 100, b"three"]
    assert zlib.decompress(b"".join(framing.gzip_frames(chunks)), wbits=47) == b"".join(chunks)
    assert zlib.decompress(b"".join(framing.gzip_frames([])), wbits=47) == b""


@pytest.mark.parametrize("enabled", [True, False])
def test_sse_gzip_makes_every_event_decodable_on_arrival(enabled: bool) -> None:
    encoder, decoder = framing.FlushedGzip(enabled), zlib.decompressobj(wbits=47)
    frames = [b'event: ping\ndata: {"type":"ping"}\n\n', b"data: " + b"x" * 5000 + b"\n\n", b"data: [DONE]\n\n"]
    for frame in frames:
        encoded = encoder.encode(frame)
        assert (decoder.decompress(encoded) if enabled else encoded) == frame
    tail = encoder.close()
    if enabled:
        assert decoder.decompress(tail) == b"" and decoder.eof
    else:
        assert tail == b""


# --- usage objects ---------------------------------------------------------------------------------------------


def test_anthropic_usage_is_additive_with_the_split_when_known() -> None:
    assert anthropic.usage(TOKENS, service_tier="standard") == {
        "input_tokens": 12, "cache_creation_input_tokens": 640, "cache_read_input_tokens": 9000,
        "cache_creation": {"ephemeral_5m_input_tokens": 40, "ephemeral_1h_input_tokens": 600}, "output_tokens": 85,
        "service_tier": "standard"}
    assert anthropic.usage(Tokens(12, read=None, creation=None, output=85)) == {"input_tokens": 12,
                                                                                "output_tokens": 85}


def test_openai_usage_counts_the_cached_part_in_the_prompt() -> None:
    assert openai.chat_usage(TOKENS) == {
        "prompt_tokens": 9652, "completion_tokens": 85, "total_tokens": 9737,
        "prompt_tokens_details": {"cached_tokens": 9000, "audio_tokens": 0, "cache_write_tokens": 640},
        "completion_tokens_details": {"reasoning_tokens": 5, "audio_tokens": 0}}
    assert openai.responses_usage(Tokens(288, read=6912, output=140)) == {
        "input_tokens": 7200, "input_tokens_details": {"cached_tokens": 6912}, "output_tokens": 140,
        "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 7340}


def test_gemini_leaves_zero_counters_out_and_bedrock_is_additive() -> None:
    assert gemini.usage_metadata(TOKENS) == {"promptTokenCount": 9652, "cachedContentTokenCount": 9000,
                                             "candidatesTokenCount": 80, "thoughtsTokenCount": 5,
                                             "totalTokenCount": 9737}
    assert gemini.usage_metadata(Tokens(900, output=20)) == {"promptTokenCount": 900, "candidatesTokenCount": 20,
                                                             "totalTokenCount": 920}
    assert bedrock.converse_usage(TOKENS) == {"inputTokens": 12, "outputTokens": 85, "totalTokens": 9737,
                                              "cacheReadInputTokens": 9000, "cacheWriteInputTokens": 640}


# --- bodies and streams read back ------------------------------------------------------------------------------

PIECES = ["Hello ", "from ", "the kit."]
OPENAI_TOKENS = Tokens(204, read=4096, output=52)  # no writes: OpenAI-style providers report none by default

RENDERED = [
    pytest.param(Dialect.ANTHROPIC, "application/json",
                 json.dumps(anthropic.message(anthropic.usage(TOKENS), "x", "claude-sonnet-4-6")).encode(), TOKENS,
                 id="anthropic-json"),
    pytest.param(Dialect.ANTHROPIC, "text/event-stream",
                 framing.stream(anthropic.events(anthropic.usage(TOKENS), PIECES, "claude-sonnet-4-6")), TOKENS,
                 id="anthropic-sse"),
    pytest.param(Dialect.OPENAI_CHAT, "application/json",
                 json.dumps(openai.completion(openai.chat_usage(OPENAI_TOKENS), "x", "gpt-5")).encode(), OPENAI_TOKENS,
                 id="chat-json"),
    pytest.param(Dialect.OPENAI_CHAT, "text/event-stream",
                 framing.stream(openai.chat_events(openai.chat_usage(OPENAI_TOKENS), PIECES, "gpt-5")), OPENAI_TOKENS,
                 id="chat-sse"),
    pytest.param(Dialect.OPENAI_RESPONSES, "text/event-stream",
                 framing.stream(openai.responses_events(openai.responses_usage(OPENAI_TOKENS), PIECES, "gpt-5")),
                 OPENAI_TOKENS, id="responses-sse"),
    pytest.param(Dialect.GEMINI, "text/event-stream",
                 framing.stream([(None, gemini.response(gemini.usage_metadata(OPENAI_TOKENS), "x", "gemini-2.5-pro"))],
                                framing.GEMINI), OPENAI_TOKENS, id="gemini-sse"),
    pytest.param(Dialect.BEDROCK_CONVERSE, "application/json",
                 json.dumps(bedrock.converse(bedrock.converse_usage(TOKENS), "x")).encode(), TOKENS, id="converse"),
]


@pytest.mark.parametrize(("dialect", "content_type", "body", "tokens"), RENDERED)
def test_cachepin_reads_back_the_counts_a_body_was_rendered_from(dialect: Dialect, content_type: str, body: bytes,
                                                                 tokens: Tokens) -> None:
    result = usage_from_body(dialect, content_type, body)
    assert result.warning is None and result.error is None and result.usage is not None
    used = result.usage
    assert (used.input_tokens, used.cache_read_input_tokens, used.output_tokens) == (
        tokens.input, tokens.read, tokens.output)
    assert (used.cache_creation_input_tokens or 0) == (tokens.creation or 0)


def test_a_chat_stream_carries_usage_only_when_asked() -> None:
    without = openai.chat_events(None, PIECES, "gpt-5", role_chunk=False)
    assert [data for _, data in without if isinstance(data, dict) and "usage" in data] == []
    first = without[0][1]
    assert isinstance(first, dict) and first["choices"][0]["delta"] == {"role": "assistant", "content": "Hello "}
    assert without[-1] == framing.DONE


def test_a_responses_stream_numbers_its_events_and_completes_last() -> None:
    events = openai.responses_events(openai.responses_usage(OPENAI_TOKENS), PIECES, "gpt-5", "resp_1")
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))  # type: ignore[index]
    assert events[-1][0] == "response.completed" and events[0][0] == "response.created"
    assert events[-1][1]["response"]["output"][0]["id"] == "msg_1"  # type: ignore[index]


# --- HTTP/1.1 ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("framing_name", "expected"), [
    ("length", b"HTTP/1.1 529 Overloaded\r\nx: 1\r\ncontent-length: 2\r\n\r\nhi"),
    ("chunked", b"HTTP/1.1 529 Overloaded\r\nx: 1\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"),
    ("none", b"HTTP/1.1 529 Overloaded\r\nx: 1\r\n\r\nhi"),
])
def test_response_bytes(framing_name: str, expected: bytes) -> None:
    assert http1.response_bytes(529, [("x", "1")], b"hi", framing=framing_name) == expected
    assert http1.head(299, []) == b"HTTP/1.1 299 Status\r\n\r\n"
