"""The provider's own diagnosis, read from responses shaped as Anthropic's and OpenAI's documentation shows them
(docs/providers.md, "Provider cache diagnostics"): JSON bodies and streams, every documented state."""

from __future__ import annotations

import pytest

from cachepin.request.dialects import Dialect
from cachepin.response.diagnostics import Diagnosis, diagnosis_of
from cachepin.response.extract import usage_from_json
from cachepin.response.readers import usage_from_body
from cachepin_tools.wire import anthropic, framing, openai
from cachepin_tools.wire.tokens import Tokens

TOKENS = Tokens(42, read=0, creation=41850, output=210)


def claude_message(**members: object) -> dict:
    """The documented example: a miss on a system change, with its diagnosis next to the usage."""
    return anthropic.message(anthropic.usage(TOKENS), "...", "claude-opus-4-8", "msg_01Xyz") | members


@pytest.mark.parametrize(("members", "expected"), [
    ({}, None),  # field absent: the request did not ask
    ({"diagnostics": None}, Diagnosis("no_divergence")),  # the first turn, or nothing diverged
    ({"diagnostics": {"cache_miss_reason": None}}, Diagnosis("pending")),  # still comparing
    ({"diagnostics": {}}, Diagnosis("pending")),
    ({"diagnostics": {"cache_miss_reason": {"type": "system_changed", "cache_missed_input_tokens": 41850}}},
     Diagnosis("system_changed", 41850)),
    *(({"diagnostics": {"cache_miss_reason": {"type": kind, "cache_missed_input_tokens": 7}}}, Diagnosis(kind, 7))
      for kind in ("model_changed", "tools_changed", "messages_changed")),
    ({"diagnostics": {"cache_miss_reason": {"type": "previous_message_not_found"}}},
     Diagnosis("previous_message_not_found")),
    ({"diagnostics": {"cache_miss_reason": {"type": "unavailable"}}}, Diagnosis("unavailable")),
    ({"diagnostics": {"cache_miss_reason": {"type": "a_future_reason"}}}, Diagnosis("a_future_reason")),
    # what an upstream may send instead: never a text, never a bad count
    ({"diagnostics": {"cache_miss_reason": {"type": "system changed: sk-ant-secret"}}}, None),
    ({"diagnostics": {"cache_miss_reason": {"type": 3}}}, None),
    ({"diagnostics": {"cache_miss_reason": "system_changed"}}, None),
    ({"diagnostics": "none"}, None),
    ({"diagnostics": {"cache_miss_reason": {"type": "tools_changed", "cache_missed_input_tokens": -1}}},
     Diagnosis("tools_changed")),
    ({"diagnostics": {"cache_miss_reason": {"type": "tools_changed", "cache_missed_input_tokens": True}}},
     Diagnosis("tools_changed")),
    ({"diagnostics": {"cache_miss_reason": {"type": "tools_changed", "cache_missed_input_tokens": 12.0}}},
     Diagnosis("tools_changed", 12)),
    ({"diagnostics": {"cache_miss_reason": {"type": "tools_changed", "cache_missed_input_tokens": 1.5}}},
     Diagnosis("tools_changed")),
])
def test_an_anthropic_message(members: dict, expected: Diagnosis | None) -> None:
    assert usage_from_json(Dialect.ANTHROPIC, claude_message(**members)).diagnosis == expected


def test_an_anthropic_stream_carries_it_on_message_start() -> None:
    """Documented: "In streaming responses, diagnostics appears on the message_start event"; message_delta
    restates the usage only."""
    events = anthropic.events(anthropic.usage(TOKENS), ["Section", " 2"], "claude-opus-4-8", "msg_02")
    name, start = events[0]
    assert name == "message_start"
    start["message"]["diagnostics"] = {"cache_miss_reason": {"type": "tools_changed",
                                                             "cache_missed_input_tokens": 41735}}
    body = framing.stream(events[:2]) + b": keep-alive\n\n" + framing.stream(events[2:])
    extracted = usage_from_body(Dialect.ANTHROPIC, "text/event-stream", body)
    assert extracted.diagnosis == Diagnosis("tools_changed", 41735)
    assert extracted.usage is not None and extracted.usage.cache_creation_input_tokens == 41850
    assert extracted.response_id == "msg_02" and extracted.final


def openai_response(diagnostics: object = None, *, asked: bool = True) -> dict:
    body = openai.response(openai.responses_usage(Tokens(2500, read=0, creation=0, output=2)), "OK", "gpt-6-astra",
                           "resp_2")
    return body | ({"prompt_cache_diagnostics": diagnostics} if asked else {})


@pytest.mark.parametrize(("diagnostics", "expected"), [
    ({"type": "cache_miss", "reason": "tools_changed", "comparison_reusable_tokens": 5629,
      "cache_missed_tokens": 5629}, Diagnosis("tools_changed", 5629)),  # the documented example
    *(({"type": "cache_miss", "reason": reason, "cache_missed_tokens": 10}, Diagnosis(reason, 10))
      for reason in ("model_changed", "prompt_cache_key_changed", "service_tier_changed", "text_format_changed",
                     "reasoning_effort_changed", "verbosity_changed", "context_compacted", "input_changed")),
    ({"type": "cache_hit"}, Diagnosis("cache_hit")),
    ({"type": "comparison_response_not_found"}, Diagnosis("comparison_response_not_found")),
    ({"type": "unavailable"}, Diagnosis("unavailable")),
    ({"type": "cache_miss", "cache_missed_tokens": 3}, Diagnosis("cache_miss", 3)),  # a miss without its reason
    ({"type": "cache_miss", "reason": "input changed!", "cache_missed_tokens": 3}, Diagnosis("cache_miss", 3)),
    (None, None),  # not asked
    ({"reason": "tools_changed"}, None),
    ("cache_hit", None),
])
def test_a_responses_body(diagnostics: object, expected: Diagnosis | None) -> None:
    assert usage_from_json(Dialect.OPENAI_RESPONSES, openai_response(diagnostics)).diagnosis == expected


def test_a_responses_stream_carries_it_on_response_completed() -> None:
    """Documented: "read prompt_cache_diagnostics from event.response in the response.completed event"."""
    events = openai.responses_events(openai.responses_usage(Tokens(2500, read=2048, creation=0, output=2)), ["OK"],
                                     "gpt-5.6-sol", "resp_3")
    name, completed = events[-1]
    assert name == "response.completed"
    completed["response"]["prompt_cache_diagnostics"] = {"type": "cache_hit"}
    extracted = usage_from_body(Dialect.OPENAI_RESPONSES, "text/event-stream", framing.stream(events))
    assert extracted.diagnosis == Diagnosis("cache_hit") and extracted.response_id == "resp_3"


@pytest.mark.parametrize("dialect", [Dialect.OPENAI_CHAT, Dialect.GEMINI, Dialect.BEDROCK_INVOKE])
def test_other_dialects_have_none(dialect: Dialect) -> None:
    assert diagnosis_of(dialect, {"diagnostics": None, "prompt_cache_diagnostics": {"type": "cache_hit"}}) is None


def test_a_type_without_an_estimate_is_one_object_however_many_turns_have_it() -> None:
    first, second = (usage_from_json(Dialect.ANTHROPIC, claude_message(diagnostics=None)).diagnosis for _ in range(2))
    assert first is second
