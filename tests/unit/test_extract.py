"""Usage normalisation: docs/providers.md, "Usage figures", provider by provider, JSON and SSE."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachepin.request.dialects import Dialect
from cachepin.response.extract import ERROR_TYPE, UNTYPED_ERROR, Extracted, UsageAccumulator, usage_from_json
from cachepin.response.readers import usage_from_body
from cachepin.response.usage import Usage
from cachepin_tools.wire import framing


def sse(*events: object, event_names: bool = False) -> bytes:
    """An SSE body, one ``data:`` line per event (``event:`` lines from each ``type`` if asked)."""
    def name(event: object) -> str | None:
        return str(event["type"]) if event_names and isinstance(event, dict) and "type" in event else None

    return framing.stream((name(event), event) for event in events)


def figures(usage: Usage | None) -> tuple:
    assert usage is not None
    return (
        usage.provider,
        usage.model,
        usage.input_tokens,
        usage.cache_read_input_tokens,
        usage.cache_creation_input_tokens,
        usage.output_tokens,
        usage.cache_creation_5m,
        usage.cache_creation_1h,
    )


ANTHROPIC_BODY = {
    "type": "message",
    "model": "claude-sonnet-4-6",
    "usage": {
        "input_tokens": 12,
        "cache_creation_input_tokens": 640,
        "cache_read_input_tokens": 9000,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 640},
        "output_tokens": 85,
    },
}

# (dialect, whole JSON body, expected figures); fields as docs/providers.md, "Usage figures", maps them
JSON_CASES = [
    pytest.param(
        Dialect.ANTHROPIC, ANTHROPIC_BODY,
        ("anthropic", "claude-sonnet-4-6", 12, 9000, 640, 85, 0, 640), id="anthropic",
    ),
    pytest.param(
        Dialect.ANTHROPIC, {"model": "claude-3-haiku", "usage": {"input_tokens": 30, "output_tokens": 4}},
        ("anthropic", "claude-3-haiku", 30, None, None, 4, None, None), id="anthropic-no-cache-fields",
    ),
    pytest.param(
        Dialect.BEDROCK_INVOKE, ANTHROPIC_BODY,
        ("bedrock", "claude-sonnet-4-6", 12, 9000, 640, 85, 0, 640), id="bedrock-invoke",
    ),
    pytest.param(
        Dialect.OPENAI_CHAT,
        {"model": "grok-4", "usage": {"prompt_tokens": 2100, "completion_tokens": 9,
                                      "prompt_tokens_details": {"cached_tokens": 1920}}},
        ("openai", "grok-4", 180, 1920, None, 9, None, None), id="openai-chat-writes-not-reported",
    ),
    pytest.param(
        Dialect.OPENAI_CHAT,
        {"model": "gpt-5.6", "usage": {"prompt_tokens": 5000, "completion_tokens": 10,
                                       "prompt_tokens_details": {"cached_tokens": 3840, "cache_write_tokens": 1000}}},
        ("openai", "gpt-5.6", 160, 3840, 1000, 10, None, None), id="openai-chat-with-writes",
    ),
    pytest.param(
        Dialect.OPENAI_CHAT, {"model": "local", "usage": {"prompt_tokens": 50, "completion_tokens": 5}},
        ("openai", "local", 50, None, None, 5, None, None), id="openai-chat-no-cache-fields",
    ),
    pytest.param(
        Dialect.OPENAI_CHAT,
        {"usage": {"prompt_tokens": 9100, "completion_tokens": 60, "cost": 0.0041,
                   "prompt_tokens_details": {"cached_tokens": 7800, "cache_write_tokens": 1200}}},
        ("openrouter", None, 100, 7800, 1200, 60, None, None), id="openrouter",
    ),
    pytest.param(
        Dialect.OPENAI_CHAT,
        {"provider": "Anthropic", "model": "anthropic/claude-sonnet-4.6",
         "usage": {"prompt_tokens": 300, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 0}}},
        ("openrouter", "anthropic/claude-sonnet-4.6", 300, 0, None, 3, None, None), id="openrouter-by-provider-field",
    ),
    pytest.param(
        Dialect.OPENAI_CHAT,
        {"model": "deepseek-chat", "usage": {"prompt_tokens": 2600, "completion_tokens": 30,
                                             "prompt_cache_hit_tokens": 2560, "prompt_cache_miss_tokens": 40}},
        ("deepseek", "deepseek-chat", 40, 2560, None, 30, None, None), id="deepseek",
    ),
    pytest.param(
        Dialect.OPENAI_CHAT,
        {"model": "kimi-k2", "choices": [{"finish_reason": "stop",
                                          "usage": {"prompt_tokens": 3300, "completion_tokens": 20,
                                                    "cached_tokens": 3072}}]},
        ("moonshot", "kimi-k2", 228, 3072, None, 20, None, None), id="moonshot-in-choice",
    ),
    pytest.param(
        Dialect.OPENAI_CHAT,
        {"model": "kimi-k2", "usage": {"prompt_tokens": 3300, "completion_tokens": 20, "cached_tokens": 3072}},
        ("moonshot", "kimi-k2", 228, 3072, None, 20, None, None), id="moonshot-top-level",
    ),
    pytest.param(
        Dialect.OPENAI_RESPONSES,
        {"object": "response", "model": "gpt-5", "usage": {
            "input_tokens": 7200, "input_tokens_details": {"cached_tokens": 6912},
            "output_tokens": 140, "output_tokens_details": {"reasoning_tokens": 64}}},
        ("openai", "gpt-5", 288, 6912, None, 140, None, None), id="responses",
    ),
    pytest.param(
        Dialect.OPENAI_RESPONSES,
        {"model": "gpt-5.6", "usage": {"input_tokens": 7200, "output_tokens": 1,
                                       "input_tokens_details": {"cached_tokens": 4000, "cache_write_tokens": 3000}}},
        ("openai", "gpt-5.6", 200, 4000, 3000, 1, None, None), id="responses-with-writes",
    ),
    pytest.param(
        Dialect.GEMINI,
        {"modelVersion": "gemini-2.5-pro", "usageMetadata": {
            "promptTokenCount": 5000, "cachedContentTokenCount": 3072, "candidatesTokenCount": 40,
            "thoughtsTokenCount": 25, "totalTokenCount": 5065}},
        ("gemini", "gemini-2.5-pro", 1928, 3072, None, 65, None, None), id="gemini",
    ),
    pytest.param(
        Dialect.GEMINI,
        {"usageMetadata": {"promptTokenCount": 900, "candidatesTokenCount": 7, "totalTokenCount": 907}},
        ("gemini", None, 900, 0, None, 7, None, None), id="gemini-zero-counters-omitted",
    ),
    pytest.param(
        Dialect.BEDROCK_CONVERSE,
        {"output": {}, "stopReason": "end_turn", "usage": {
            "inputTokens": 30, "outputTokens": 95, "totalTokens": 10125, "cacheReadInputTokens": 8800,
            "cacheWriteInputTokens": 1200,
            "cacheDetails": [{"ttl": "1h", "inputTokens": 1000}, {"ttl": "5m", "inputTokens": 200}]}},
        ("bedrock", None, 30, 8800, 1200, 95, 200, 1000), id="bedrock-converse",
    ),
    pytest.param(
        Dialect.BEDROCK_CONVERSE, {"usage": {"inputTokens": 30, "outputTokens": 95, "totalTokens": 125}},
        ("bedrock", None, 30, None, None, 95, None, None), id="bedrock-converse-no-cache-fields",
    ),
]


@pytest.mark.parametrize("dialect, body, expected", JSON_CASES)
def test_json_bodies(dialect: Dialect, body: dict, expected: tuple) -> None:
    result = usage_from_json(dialect, body)
    assert figures(result.usage) == expected
    assert result.error is None and result.warning is None
    assert usage_from_body(dialect, "application/json", json.dumps(body).encode()) == result


ANTHROPIC_SSE = sse(
    {"type": "message_start", "message": {"model": "claude-opus-4-6", "usage": {
        "input_tokens": 12, "cache_creation_input_tokens": 640, "cache_read_input_tokens": 9000, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 85}},
    {"type": "message_stop"},
    event_names=True,
)
CHAT_CHUNK = {
    "object": "chat.completion.chunk", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "x"}}],
}

# (dialect, SSE body, expected figures)
SSE_CASES = [
    pytest.param(
        Dialect.ANTHROPIC, ANTHROPIC_SSE,
        ("anthropic", "claude-opus-4-6", 12, 9000, 640, 85, None, None), id="anthropic",
    ),
    pytest.param(
        Dialect.BEDROCK_INVOKE,
        sse({"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 30, "output_tokens": 1,
                                                                          "cache_read_input_tokens": 8800}}},
            {"type": "message_delta", "usage": {"output_tokens": 95}}),
        ("bedrock", "m", 30, 8800, None, 95, None, None), id="bedrock-invoke-delta-omits-input",
    ),
    pytest.param(
        Dialect.OPENAI_CHAT,
        sse({**CHAT_CHUNK, "usage": None}, {**CHAT_CHUNK, "usage": None},
            {"object": "chat.completion.chunk", "model": "gpt-4o", "choices": [], "usage": {
                "prompt_tokens": 4300, "completion_tokens": 52, "prompt_tokens_details": {"cached_tokens": 4096}}},
            "[DONE]"),
        ("openai", "gpt-4o", 204, 4096, None, 52, None, None), id="openai-chat",
    ),
    pytest.param(
        Dialect.OPENAI_CHAT,
        b": OPENROUTER PROCESSING\n\n" + sse(
            {**CHAT_CHUNK, "model": "openai/gpt-4o"},
            {"model": "openai/gpt-4o", "choices": [], "usage": {
                "prompt_tokens": 9100, "completion_tokens": 60, "cost": 0.0041,
                "prompt_tokens_details": {"cached_tokens": 7800, "cache_write_tokens": 1200}}},
            "[DONE]"),
        ("openrouter", "openai/gpt-4o", 100, 7800, 1200, 60, None, None), id="openrouter",
    ),
    pytest.param(
        Dialect.OPENAI_CHAT,
        sse({**CHAT_CHUNK, "model": "deepseek-chat"},
            {"model": "deepseek-chat", "choices": [{"delta": {}, "finish_reason": "stop"}], "usage": {
                "prompt_tokens": 2600, "completion_tokens": 30, "prompt_cache_hit_tokens": 2560,
                "prompt_cache_miss_tokens": 40}}),
        ("deepseek", "deepseek-chat", 40, 2560, None, 30, None, None), id="deepseek",
    ),
    pytest.param(
        Dialect.OPENAI_CHAT,
        sse({**CHAT_CHUNK, "model": "kimi-k2"},
            {"model": "kimi-k2", "choices": [{"finish_reason": "stop", "usage": {
                "prompt_tokens": 3300, "completion_tokens": 20, "cached_tokens": 3072}}]}),
        ("moonshot", "kimi-k2", 228, 3072, None, 20, None, None), id="moonshot",
    ),
    pytest.param(
        Dialect.OPENAI_RESPONSES,
        sse({"type": "response.created", "response": {"model": "gpt-5", "max_output_tokens": None, "usage": None}},
            {"type": "response.output_text.delta", "delta": "Hello"},
            {"type": "response.completed", "response": {"model": "gpt-5", "usage": {
                "input_tokens": 7200, "input_tokens_details": {"cached_tokens": 6912}, "output_tokens": 140,
                "output_tokens_details": {"reasoning_tokens": 64}}}},
            event_names=True),
        ("openai", "gpt-5", 288, 6912, None, 140, None, None), id="responses-completed",
    ),
    pytest.param(
        Dialect.OPENAI_RESPONSES,
        sse({"type": "response.incomplete", "response": {"model": "gpt-5", "usage": {
            "input_tokens": 100, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 16}}}),
        ("openai", "gpt-5", 100, 0, None, 16, None, None), id="responses-incomplete",
    ),
    pytest.param(
        Dialect.GEMINI,
        b"".join(
            b'data: {"candidates":[{"content":{"parts":[{"text":"t%d"}]}}],"usageMetadata":{"promptTokenCount":5000,'
            b'"cachedContentTokenCount":3072,"candidatesTokenCount":%d,"totalTokenCount":%d},'
            b'"modelVersion":"gemini-2.5-flash"}\r\n\r\n' % (n, n, 5000 + n)
            for n in (1, 20, 40)
        ),
        ("gemini", "gemini-2.5-flash", 1928, 3072, None, 40, None, None), id="gemini-keeps-the-last",
    ),
]


@pytest.mark.parametrize("dialect, body, expected", SSE_CASES)
def test_sse_bodies(dialect: Dialect, body: bytes, expected: tuple) -> None:
    result = usage_from_body(dialect, "text/event-stream; charset=utf-8", body)
    assert figures(result.usage) == expected
    assert result.error is None and result.warning is None


@pytest.mark.parametrize("dialect, body, expected", SSE_CASES)
def test_feeding_the_events_one_by_one_gives_the_same(dialect: Dialect, body: bytes, expected: tuple) -> None:
    accumulator = UsageAccumulator(dialect)
    for line in body.splitlines():
        if line.startswith(b"data: ") and line != b"data: [DONE]":
            accumulator.feed(json.loads(line[6:]))
    assert figures(accumulator.result.usage) == expected


def anthropic_events(*deltas: dict) -> UsageAccumulator:
    accumulator = UsageAccumulator(Dialect.ANTHROPIC)
    accumulator.feed({"type": "message_start", "message": {"model": "c", "usage": {
        "input_tokens": 12, "cache_creation_input_tokens": 640, "cache_read_input_tokens": 9000, "output_tokens": 1}}})
    for usage in deltas:
        accumulator.feed({"type": "message_delta", "delta": {}, "usage": usage})
    return accumulator


@pytest.mark.parametrize(
    "deltas, expected",
    [
        ([{"output_tokens": 85}], (12, 9000, 640, 85)),
        ([{"output_tokens": 40}, {"output_tokens": 85}], (12, 9000, 640, 85)),
        ([{"output_tokens": 85, "input_tokens": 20, "cache_read_input_tokens": 9100}], (20, 9100, 640, 85)),
        ([{"input_tokens": 20}, {"output_tokens": 85}], (20, 9000, 640, 85)),
        ([{"output_tokens": 85, "input_tokens": None, "cache_creation_input_tokens": None}], (12, 9000, 640, 85)),
        ([], (12, 9000, 640, 1)),
    ],
    ids=["one delta", "two deltas: last wins", "delta restates all", "fields from different deltas",
         "null does not erase", "no delta (cut stream)"],
)
def test_anthropic_deltas_replace_never_add(deltas: list[dict], expected: tuple) -> None:
    usage = anthropic_events(*deltas).result.usage
    assert usage is not None
    got = (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens, usage.output_tokens)
    assert got == expected
    assert usage.model == "c"


def test_anthropic_delta_without_start() -> None:
    accumulator = UsageAccumulator(Dialect.ANTHROPIC)
    accumulator.feed({"type": "message_delta", "usage": {"output_tokens": 7}})
    assert figures(accumulator.result.usage) == ("anthropic", None, None, None, None, 7, None, None)


def test_nothing_reported_is_no_usage_at_all() -> None:
    result = usage_from_body(Dialect.OPENAI_CHAT, "text/event-stream", sse(CHAT_CHUNK, CHAT_CHUNK, "[DONE]"))
    assert result == Extracted()


BAD_VALUES = [
    pytest.param("12", id="str"),
    pytest.param(12.5, id="fractional float"),
    pytest.param(True, id="bool"),
    pytest.param(-1, id="negative"),
    pytest.param(-3.0, id="negative float"),
    pytest.param(float("nan"), id="nan"),
    pytest.param([12], id="list"),
    pytest.param({"n": 12}, id="object"),
    pytest.param(10**400, id="beyond any context"),  # would overflow a price, or a packed turn
    pytest.param(1e300, id="float beyond any context"),
]


@pytest.mark.parametrize("value", BAD_VALUES)
@pytest.mark.parametrize(
    "dialect, body, key, read",
    [
        (Dialect.ANTHROPIC, lambda v: {"usage": {"input_tokens": 5, "cache_read_input_tokens": v, "output_tokens": 2}},
         "cache_read_input_tokens", lambda u: u.cache_read_input_tokens),
        (Dialect.OPENAI_CHAT, lambda v: {"usage": {"prompt_tokens": 50, "completion_tokens": v}},
         "completion_tokens", lambda u: u.output_tokens),
        (Dialect.OPENAI_CHAT, lambda v: {"usage": {"prompt_tokens": v, "completion_tokens": 1,
                                                   "prompt_tokens_details": {"cached_tokens": 10}}},
         "prompt_tokens", lambda u: u.input_tokens),
        (Dialect.OPENAI_RESPONSES, lambda v: {"usage": {"input_tokens": 50, "output_tokens": 1,
                                                        "input_tokens_details": {"cached_tokens": v}}},
         "cached_tokens", lambda u: u.cache_read_input_tokens),
        (Dialect.GEMINI, lambda v: {"usageMetadata": {"promptTokenCount": 50, "cachedContentTokenCount": v}},
         "cachedContentTokenCount", lambda u: u.cache_read_input_tokens),
        (Dialect.BEDROCK_CONVERSE, lambda v: {"usage": {"inputTokens": v, "outputTokens": 1}},
         "inputTokens", lambda u: u.input_tokens),
    ],
    ids=["anthropic", "chat-output", "chat-prompt", "responses-cached", "gemini-cached", "converse-input"],
)
def test_wrong_types_are_dropped_with_a_warning(dialect, body, key, read, value) -> None:
    result = usage_from_json(dialect, body(value))
    assert result.usage is not None
    assert read(result.usage) is None
    assert result.warning is not None and key in result.warning
    assert result.error is None


@pytest.mark.parametrize(
    "dialect, body, read, expected",
    [
        (Dialect.ANTHROPIC, {"usage": {"input_tokens": 12.0, "output_tokens": 3}}, lambda u: u.input_tokens, 12),
        (Dialect.GEMINI, {"usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 2.0}},
         lambda u: u.output_tokens, 2),
    ],
)
def test_integral_floats_are_counts(dialect, body, read, expected) -> None:
    result = usage_from_json(dialect, body)
    assert result.usage is not None and read(result.usage) == expected and result.warning is None


def test_a_bad_total_leaves_the_derived_input_unknown_but_keeps_the_rest() -> None:
    result = usage_from_json(Dialect.GEMINI, {"usageMetadata": {
        "promptTokenCount": "5000", "cachedContentTokenCount": 3072, "candidatesTokenCount": 40}})
    assert figures(result.usage) == ("gemini", None, None, 3072, None, 40, None, None)
    assert "promptTokenCount" in (result.warning or "")


def test_cached_above_the_prompt_total_is_inconsistent() -> None:
    result = usage_from_json(Dialect.OPENAI_CHAT, {"usage": {
        "prompt_tokens": 100, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 200}}})
    assert result.usage is not None
    assert result.usage.input_tokens is None and result.usage.cache_read_input_tokens == 200
    assert result.warning is not None and "exceed" in result.warning


def test_a_dropped_write_count_is_unknown_not_zero() -> None:
    result = usage_from_json(Dialect.OPENAI_CHAT, {"usage": {
        "prompt_tokens": 100, "completion_tokens": 1,
        "prompt_tokens_details": {"cached_tokens": 20, "cache_write_tokens": "lots"}}})
    assert result.usage is not None and result.usage.cache_creation_input_tokens is None
    assert result.usage.input_tokens == 80


# --- golden responses: every field each provider documents, in its order, with the lines its streams carry ---
# (docs/providers.md cites the pages; the numbers are invented)

OPENAI_CHAT_REASONING = {  # o-series: reasoning_tokens is part of completion_tokens, total = prompt + completion
    "id": "chatcmpl-Bx7kQ2mN9pL4vR8sT1uW3yZ5aC6e", "object": "chat.completion", "created": 1764633600,
    "model": "o4-mini-2025-04-16",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Done.", "refusal": None, "annotations": []},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 4300, "completion_tokens": 340, "total_tokens": 4640,
              "prompt_tokens_details": {"cached_tokens": 4096, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 256, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
    "service_tier": "default", "system_fingerprint": "fp_7e4b1c9d2a",
}
XAI_CHAT_REASONING = {  # docs.x.ai: reasoning beside completion_tokens, inside total_tokens, billed as completion
    "id": "3f9c2a71-5b8e-4d06-a1c4-7e2d9b6f8a10", "object": "chat.completion", "created": 1764633600,
    "model": "grok-4-0709",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Done.", "refusal": None},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 2100, "completion_tokens": 9, "total_tokens": 2821,
              "prompt_tokens_details": {"text_tokens": 2100, "audio_tokens": 0, "image_tokens": 0,
                                        "cached_tokens": 1920},
              "completion_tokens_details": {"reasoning_tokens": 712, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
              "num_sources_used": 0},
    "system_fingerprint": "fp_3a7881249c",
}
DEEPSEEK_REASONER = {  # reasoning inside completion_tokens, as OpenAI counts it
    "id": "930c60df-bf64-41c9-a88e-3ec75f81e00e", "object": "chat.completion", "created": 1764633600,
    "model": "deepseek-reasoner",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Done.", "reasoning_content": "..."},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 2600, "completion_tokens": 530, "total_tokens": 3130,
              "prompt_tokens_details": {"cached_tokens": 2560}, "completion_tokens_details": {"reasoning_tokens": 500},
              "prompt_cache_hit_tokens": 2560, "prompt_cache_miss_tokens": 40},
    "system_fingerprint": "fp_8802369eaa_prod0623",
}


_OPENAI_CHUNK = {"id": "chatcmpl-Bx7kQ2mN9pL4vR8sT1uW3yZ5aC6e", "object": "chat.completion.chunk",
                 "created": 1764633600, "model": "gpt-4o-2024-08-06", "service_tier": "default",
                 "system_fingerprint": "fp_7e4b1c9d2a", "usage": None}
OPENAI_CHAT_STREAM = framing.stream([  # stream_options.include_usage: "usage": null on every chunk, then the usage
    (None, {**_OPENAI_CHUNK, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                                          "logprobs": None, "finish_reason": None}]}),
    (None, {**_OPENAI_CHUNK, "choices": [{"index": 0, "delta": {"content": "Done."}, "logprobs": None,
                                          "finish_reason": None}]}),
    (None, {**_OPENAI_CHUNK, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]}),
    (None, {**_OPENAI_CHUNK, "choices": [], "usage": {
        "prompt_tokens": 4300, "completion_tokens": 52, "total_tokens": 4352,
        "prompt_tokens_details": {"cached_tokens": 4096, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0}}}),
    framing.DONE,
])

_XAI_CHUNK = {"id": "3f9c2a71-5b8e-4d06-a1c4-7e2d9b6f8a10", "object": "chat.completion.chunk",
              "created": 1764633600, "model": "grok-4-0709", "system_fingerprint": "fp_3a7881249c"}
XAI_CHAT_STREAM = framing.stream([
    (None, {**_XAI_CHUNK, "choices": [{"index": 0, "delta": {"content": "Done.", "role": "assistant"}}]}),
    (None, {**_XAI_CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": XAI_CHAT_REASONING["usage"]}),
    framing.DONE,
])

_OPENROUTER_CHUNK = {"id": "gen-1764633600-Qm3xZp8LrT2vWk9Yb4Nc", "provider": "xAI", "model": "x-ai/grok-4",
                     "object": "chat.completion.chunk", "created": 1764633600}
_PROCESSING = b": OPENROUTER PROCESSING\n\n"  # an SSE comment: it keeps the connection open while the upstream thinks
OPENROUTER_STREAM = b"".join([
    _PROCESSING,
    _PROCESSING,
    framing.frame({**_OPENROUTER_CHUNK, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Done."},
                                                     "finish_reason": None, "native_finish_reason": None,
                                                     "logprobs": None}]}),
    _PROCESSING,
    framing.frame({**_OPENROUTER_CHUNK, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                     "finish_reason": "stop", "native_finish_reason": "stop",
                                                     "logprobs": None}]}),
    # OpenRouter counts reasoning inside completion_tokens
    framing.frame({**_OPENROUTER_CHUNK, "choices": [], "usage": {
        "prompt_tokens": 9100, "completion_tokens": 241, "total_tokens": 9341, "cost": 0.0041, "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": 7800, "cache_write_tokens": 1200, "audio_tokens": 0},
        "cost_details": {"upstream_inference_cost": None},
        "completion_tokens_details": {"reasoning_tokens": 204, "image_tokens": 0}}}),
    framing.stream([framing.DONE]),
])

SSE = "text/event-stream; charset=utf-8"
GOLDEN = [
    pytest.param(Dialect.OPENAI_CHAT, "application/json", json.dumps(OPENAI_CHAT_REASONING).encode(),
                 ("openai", "o4-mini-2025-04-16", 204, 4096, None, 340, None, None), id="openai-chat-reasoning"),
    pytest.param(Dialect.OPENAI_CHAT, SSE, OPENAI_CHAT_STREAM,
                 ("openai", "gpt-4o-2024-08-06", 204, 4096, None, 52, None, None), id="openai-chat-stream"),
    pytest.param(Dialect.OPENAI_CHAT, "application/json", json.dumps(XAI_CHAT_REASONING).encode(),
                 ("openai", "grok-4-0709", 180, 1920, None, 721, None, None), id="xai-chat-reasoning"),
    pytest.param(Dialect.OPENAI_CHAT, SSE, XAI_CHAT_STREAM,
                 ("openai", "grok-4-0709", 180, 1920, None, 721, None, None), id="xai-chat-stream"),
    pytest.param(Dialect.OPENAI_CHAT, SSE, OPENROUTER_STREAM,
                 ("openrouter", "x-ai/grok-4", 100, 7800, 1200, 241, None, None), id="openrouter-stream"),
    pytest.param(Dialect.OPENAI_CHAT, "application/json", json.dumps(DEEPSEEK_REASONER).encode(),
                 ("deepseek", "deepseek-reasoner", 40, 2560, None, 530, None, None), id="deepseek-reasoner"),
]


@pytest.mark.parametrize("dialect, content_type, body, expected", GOLDEN)
def test_golden_responses(dialect: Dialect, content_type: str, body: bytes, expected: tuple) -> None:
    result = usage_from_body(dialect, content_type, body)
    assert figures(result.usage) == expected
    assert (result.error, result.warning, result.final) == (None, None, True)


@pytest.mark.parametrize("usage, output", [
    ({"prompt_tokens": 100, "completion_tokens": 9, "total_tokens": 821,
      "completion_tokens_details": {"reasoning_tokens": 712}}, 721),  # xAI: beside, in the total
    ({"prompt_tokens": 100, "completion_tokens": 721, "total_tokens": 821,
      "completion_tokens_details": {"reasoning_tokens": 712}}, 721),  # OpenAI: inside
    ({"prompt_tokens": 100, "completion_tokens": 9, "completion_tokens_details": {"reasoning_tokens": 712}}, 9),
    ({"prompt_tokens": 100, "completion_tokens": 9, "total_tokens": 109,
      "completion_tokens_details": {"reasoning_tokens": 0}}, 9),
    ({"prompt_tokens": 100, "completion_tokens": 9, "total_tokens": 500,
      "completion_tokens_details": {"reasoning_tokens": 712}}, 9),  # adds up neither way: as reported
    ({"completion_tokens": 9, "total_tokens": 821, "completion_tokens_details": {"reasoning_tokens": 712}}, 9),
    ({"prompt_tokens": 100, "total_tokens": 821, "completion_tokens_details": {"reasoning_tokens": 712}}, None),
], ids=["beside", "inside", "no-total", "no-reasoning", "inconsistent-total", "no-prompt", "no-completion"])
def test_reasoning_counts_in_the_output_only_when_the_total_says_it_lies_beside(usage: dict, output: int | None):
    """Told by the figures alone: the same shapes behind any host, and for the Responses API's fields too."""
    result = usage_from_json(Dialect.OPENAI_CHAT, {"usage": usage})
    assert result.usage is not None and result.usage.output_tokens == output and result.warning is None
    renamed = {"input_tokens": usage.get("prompt_tokens"), "output_tokens": usage.get("completion_tokens"),
               "total_tokens": usage.get("total_tokens"),
               "output_tokens_details": usage.get("completion_tokens_details")}
    responses = usage_from_json(Dialect.OPENAI_RESPONSES, {"object": "response", "usage": renamed})
    assert responses.usage is not None and responses.usage.output_tokens == output


@pytest.mark.parametrize("usage, dropped", [
    ({"prompt_tokens": 100, "completion_tokens": 9, "total_tokens": "821",
      "completion_tokens_details": {"reasoning_tokens": 712}}, "usage.total_tokens"),
    ({"prompt_tokens": 100, "completion_tokens": 9, "total_tokens": 821,
      "completion_tokens_details": {"reasoning_tokens": -712}}, "usage.completion_tokens_details.reasoning_tokens"),
    ({"prompt_tokens": 100, "completion_tokens": 9, "total_tokens": 821, "completion_tokens_details": [712]},
     "usage.completion_tokens_details"),
], ids=["total", "reasoning", "details"])
def test_a_bad_reasoning_figure_leaves_the_output_as_reported_with_a_warning(usage: dict, dropped: str) -> None:
    result = usage_from_json(Dialect.OPENAI_CHAT, {"usage": usage})
    assert result.usage is not None and result.usage.output_tokens == 9
    assert result.warning is not None and dropped in result.warning


@pytest.mark.parametrize("details", [{"cached_tokens": 4096}, {"cached_tokens": 4096, "audio_tokens": 0}, {}],
                         ids=["cached-only", "openai-fields", "empty"])
@pytest.mark.parametrize("dialect, usage", [
    (Dialect.OPENAI_CHAT, lambda d: {"prompt_tokens": 4300, "completion_tokens": 52, "prompt_tokens_details": d}),
    (Dialect.OPENAI_RESPONSES, lambda d: {"input_tokens": 4300, "output_tokens": 52, "input_tokens_details": d}),
], ids=["chat", "responses"])
def test_writes_not_reported_are_null_in_both_openai_apis(dialect: Dialect, usage, details: dict) -> None:
    """README: a figure the provider does not report is null, never 0 (only GPT-5.6+ and OpenRouter report writes)."""
    result = usage_from_json(dialect, {"object": "response", "usage": usage(details)})
    assert result.usage is not None and result.usage.cache_creation_input_tokens is None
    assert result.usage.input_tokens == 4300 - details.get("cached_tokens", 0)


@pytest.mark.parametrize("dialect, usage", [
    (Dialect.OPENAI_CHAT, {"prompt_tokens": 4300, "completion_tokens": 52,
                           "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}}),
    (Dialect.OPENAI_RESPONSES, {"input_tokens": 4300, "output_tokens": 52,
                                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}}),
], ids=["chat", "responses"])
def test_writes_reported_as_zero_are_zero(dialect: Dialect, usage: dict) -> None:
    result = usage_from_json(dialect, {"object": "response", "usage": usage})
    assert result.usage is not None and result.usage.cache_creation_input_tokens == 0


@pytest.mark.parametrize(
    "dialect, body",
    [
        (Dialect.ANTHROPIC, {"usage": "12 tokens"}),
        (Dialect.OPENAI_CHAT, {"usage": [1, 2]}),
        (Dialect.GEMINI, {"usageMetadata": 5}),
    ],
)
def test_a_usage_that_is_not_an_object_is_a_warning(dialect: Dialect, body: dict) -> None:
    assert usage_from_json(dialect, body) == Extracted(warning="usage dropped: not an object")


ERROR_CASES = [
    pytest.param(
        Dialect.ANTHROPIC, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        "overloaded_error", id="anthropic",
    ),
    pytest.param(
        Dialect.OPENAI_CHAT,
        {"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded", "param": None, "code": None}},
        "rate_limit_exceeded", id="openai-chat",
    ),
    pytest.param(
        Dialect.OPENAI_CHAT,
        {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "param": None,
                   "code": "invalid_api_key"}},
        "invalid_request_error", id="openai-type-before-code",
    ),
    pytest.param(
        Dialect.OPENAI_CHAT, {"id": "gen-1", "error": {"code": 502, "message": "Provider returned error"},
                              "choices": [{"finish_reason": "error"}]},
        "502", id="openrouter-mid-stream",
    ),
    pytest.param(
        Dialect.OPENAI_RESPONSES,
        {"type": "error", "code": "server_error", "message": "The server had an error", "param": None},
        "server_error", id="responses-error-event",
    ),
    pytest.param(
        Dialect.OPENAI_RESPONSES, {"type": "error", "code": None, "message": "AIzaSyPLANTED: bad key"},
        "provider_error", id="responses-error-event-without-code",
    ),
    pytest.param(
        Dialect.OPENAI_RESPONSES,
        {"type": "response.failed", "response": {"status": "failed", "error": {
            "code": "rate_limit_exceeded", "message": "Slow down"}, "usage": None}},
        "rate_limit_exceeded", id="responses-failed",
    ),
    pytest.param(
        Dialect.OPENAI_RESPONSES, {"type": "response.failed", "response": {"status": "failed", "error": {
            "message": "sk-PLANTED: quota"}}},
        "response.failed", id="responses-failed-without-code",
    ),
    pytest.param(
        Dialect.GEMINI, {"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}},
        "RESOURCE_EXHAUSTED", id="gemini",
    ),
    pytest.param(
        Dialect.GEMINI, [{"error": {"code": 400, "message": "API key not valid", "status": "INVALID_ARGUMENT"}}],
        "INVALID_ARGUMENT", id="gemini-json-array",
    ),
    pytest.param(Dialect.OPENAI_CHAT, {"error": "upstream timeout"}, "provider_error", id="string-error"),
]


@pytest.mark.parametrize("dialect, event, expected", ERROR_CASES)
def test_error_events(dialect: Dialect, event: dict, expected: str) -> None:
    assert usage_from_json(dialect, event) == Extracted(error=expected)


KEY = "AIzaSyPLANTED-key-0123456789abcdefghij"


@pytest.mark.parametrize("event", [
    {"error": f"{KEY}: API key not valid. Please pass a valid API key."},
    {"code": "Client specified an invalid argument", "error": f"Incorrect API key provided: {KEY}"},  # xAI
    {"error": {"message": f"{KEY}: API key not valid"}},
    {"error": {"message": f"{KEY}: bad", "type": f"{KEY} was refused", "status": True, "code": 12.5}},
    {"error": {"message": f"{KEY}: bad", "type": ["invalid_request_error"], "code": {"name": "x"}}},
    {"error": {"type": "x" * 41, "message": "too long to be a type"}},
    {"type": "error", "message": f"{KEY}: bad", "code": f"{KEY} "},
], ids=["string-starting-with-key", "xai-string", "message-only", "types-not-identifiers", "types-not-scalars",
        "type-too-long", "responses-code-with-space"])
def test_an_error_without_a_structured_type_is_untyped(event: dict) -> None:
    """Free text never becomes a type, not even the part before a colon: the key would reach the log line."""
    assert usage_from_json(Dialect.OPENAI_RESPONSES, event) == Extracted(error=UNTYPED_ERROR)


@settings(max_examples=200, deadline=None)
@given(message=st.text(), fields=st.dictionaries(st.sampled_from(["type", "status", "code", "param"]),
                                                  st.none() | st.booleans() | st.integers() | st.text()))
def test_the_error_is_a_structured_field_or_untyped_never_the_message(message: str, fields: dict) -> None:
    error = usage_from_json(Dialect.GEMINI, {"error": {**fields, "message": message}}).error
    assert error is not None and ERROR_TYPE.fullmatch(error)
    assert error == UNTYPED_ERROR or error in {str(fields.get(k)) for k in ("type", "status", "code")}


def test_an_error_mid_stream_keeps_the_usage_read_so_far() -> None:
    body = sse(
        {"type": "message_start", "message": {"model": "c", "usage": {"input_tokens": 3, "output_tokens": 1,
                                                                      "cache_read_input_tokens": 500}}},
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        event_names=True,
    )
    result = usage_from_body(Dialect.ANTHROPIC, "text/event-stream", body)
    assert result.error == "overloaded_error"
    assert figures(result.usage) == ("anthropic", "c", 3, 500, None, 1, None, None)


def test_a_failed_response_reports_both_error_and_usage() -> None:
    body = sse({"type": "response.failed", "response": {"model": "gpt-5", "error": {"code": "server_error",
                                                                                    "message": "boom"},
                                                        "usage": {"input_tokens": 10, "output_tokens": 0}}})
    result = usage_from_body(Dialect.OPENAI_RESPONSES, "text/event-stream", body)
    assert result.error == "server_error"
    assert figures(result.usage) == ("openai", "gpt-5", 10, None, None, 0, None, None)


def test_the_first_error_is_kept() -> None:
    accumulator = UsageAccumulator(Dialect.OPENAI_RESPONSES)
    accumulator.feed({"type": "error", "code": "first", "message": "a"})
    accumulator.feed({"type": "response.failed", "response": {"error": {"code": "second", "message": "b"}}})
    assert accumulator.result.error == "first"


def test_created_events_with_null_error_and_usage_are_not_errors() -> None:
    event = {"type": "response.created", "response": {"error": None, "usage": None, "max_output_tokens": None}}
    assert usage_from_json(Dialect.OPENAI_RESPONSES, event) == Extracted()


def test_a_json_array_body_is_a_list_of_events() -> None:
    """Gemini's streamGenerateContent without alt=sse answers one JSON array."""
    body = [
        {"usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 1}},
        {"usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 9}, "modelVersion": "g"},
    ]
    assert figures(usage_from_json(Dialect.GEMINI, body).usage) == ("gemini", "g", 10, 0, None, 9, None, None)


def test_warnings_are_deduplicated_and_bounded() -> None:
    accumulator = UsageAccumulator(Dialect.ANTHROPIC)
    for i in range(100):
        accumulator.warn(f"problem {i % 20}")
    warning = accumulator.result.warning
    assert warning is not None
    assert warning.split("; ") == [f"problem {i}" for i in range(8)]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**20), max_value=10**20) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(
        st.sampled_from(["usage", "usageMetadata", "type", "message", "error", "response", "choices", "model",
                         "input_tokens", "prompt_tokens", "cached_tokens", "prompt_tokens_details",
                         "promptTokenCount", "cacheDetails", "cache_creation", "message_start", "message_delta",
                         "response.failed", "inputTokens", "ttl"]),
        inner,
        max_size=6,
    ),
    max_leaves=30,
)


@pytest.mark.parametrize("dialect", list(Dialect))
@settings(max_examples=150, deadline=None)
@given(events=st.lists(JSON_VALUES, max_size=4))
def test_arbitrary_json_never_raises(dialect: Dialect, events: list[object]) -> None:
    accumulator = UsageAccumulator(dialect)
    for event in events:
        accumulator.feed(event)
    result = accumulator.result
    assert isinstance(result, Extracted)
    if result.usage is not None:
        for value in (result.usage.input_tokens, result.usage.output_tokens, result.usage.cache_read_input_tokens,
                      result.usage.cache_creation_input_tokens):
            assert value is None or (type(value) is int and value >= 0)
