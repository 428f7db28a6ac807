"""mitmweb's "cachepin usage" view: a response's figures at a glance, the turn the audit made of it, and a
stream's text reassembled from its deltas."""

from __future__ import annotations

import json

import pytest

from cachepin.request.dialects import Dialect
from cachepin.response.diagnostics import Diagnosis
from cachepin.turns.explain import Explanation, Reason
from cachepin.turns.pricing import Cost
from cachepin.turns.turn import Turn, Verdict
from cachepin.views.content_view import TURN_KEY, render, stream_text, turn_facts
from cachepin_tools.wire import anthropic, framing, gemini, openai
from cachepin_tools.wire.tokens import Tokens

SSE = "text/event-stream"
JSON = "application/json"
TOKENS = Tokens(12, read=9000, creation=1538, output=85)
PIECES = ["Hello ", "world.\nSecond ", "line."]
TEXT = "Hello world.\nSecond line."


def turn(**fields: object) -> Turn:
    base: dict[str, object] = dict(index=2, flow_id="flow-1", started_at=1_700_000_000.0, status=200, stream=True,
                                   verdict=Verdict.HIT, provider="anthropic", model="claude-sonnet-4-6",
                                   input_tokens=12, cache_creation_input_tokens=1538, cache_read_input_tokens=9000,
                                   output_tokens=85, thread="ln_main")
    return Turn(**(base | fields))  # type: ignore[arg-type]


# --- turn_facts ----------------------------------------------------------------------------------


def test_the_facts_are_plain_json_values_saved_with_the_flow() -> None:
    assert TURN_KEY == "cachepin_turn"
    facts = turn_facts("s-1", turn(), None)
    assert facts == {"session_id": "s-1", "turn": 2, "verdict": "hit", "thread": "ln_main", "provider": "anthropic",
                     "model": "claude-sonnet-4-6", "input_tokens": 12, "cache_creation_input_tokens": 1538,
                     "cache_read_input_tokens": 9000, "output_tokens": 85}
    assert json.loads(json.dumps(facts)) == facts


def test_the_facts_carry_the_reasons_and_the_cost_when_there_are_any() -> None:
    miss = Explanation(Reason.TTL_EXPIRED, "gap 400s > ttl 300s", {"gap_s": 400.0})
    facts = turn_facts("s-1", turn(verdict=Verdict.MISS, miss=miss,
                                   provider_diagnosis=Diagnosis("system_changed", 41850)), Cost(0.01, 0.03))
    assert facts["verdict"] == "miss"
    assert facts["reason"] == "ttl_expired (gap 400s > ttl 300s)"
    assert facts["provider_reason"] == "system_changed"
    assert facts["cost_usd"] == {"billed": 0.01, "uncached": 0.03, "saving": 0.02}
    assert json.loads(json.dumps(facts)) == facts


def test_figures_not_reported_are_null() -> None:
    facts = turn_facts("s-1", turn(verdict=Verdict.ERROR, status=529, provider=None, model=None, input_tokens=None,
                                   cache_creation_input_tokens=None, cache_read_input_tokens=None,
                                   output_tokens=None, thread=None), None)
    assert [facts[name] for name in ("verdict", "provider", "input_tokens", "cache_read_input_tokens")] == [
        "error", None, None, None]


# --- stream_text ---------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    pytest.param(framing.stream(anthropic.events(anthropic.usage(TOKENS), PIECES, "claude-sonnet-4-6")),
                 id="anthropic"),
    pytest.param(framing.stream(openai.chat_events(openai.chat_usage(TOKENS), PIECES, "gpt-5")), id="chat"),
    pytest.param(framing.stream(openai.responses_events(openai.responses_usage(TOKENS), PIECES, "gpt-5")),
                 id="responses"),
    pytest.param(framing.stream([(None, gemini.response(None, piece, "gemini-2.5-pro")) for piece in PIECES],
                                framing.GEMINI), id="gemini"),
])
def test_a_streams_text_is_its_deltas_concatenated(body: bytes) -> None:
    assert stream_text(body) == TEXT


@pytest.mark.parametrize("body", [
    b"",
    b"data: not json\n\n",
    b"data: [DONE]\n\n",
    b'data: ["a list"]\n\n',
    b'data: {"type": "content_block_delta", "delta": "not an object"}\n\n',
    b'data: {"choices": []}\n\n',
    b'data: {"choices": [{"delta": "text"}]}\n\n',
    b'data: {"candidates": [{"content": {"parts": ["text", 5]}}]}\n\n',
    b"event: ping\n: a comment\n\n",
])
def test_what_carries_no_text_adds_none(body: bytes) -> None:
    assert stream_text(body) == ""


def test_text_survives_the_events_around_it() -> None:
    body = (b": keep-alive\n\ndata: oops\n\n" + framing.frame({"type": "content_block_delta",
                                                               "delta": {"type": "text_delta", "text": "ok"}})
            + framing.stream([framing.DONE]))
    assert stream_text(body) == "ok"


# --- render --------------------------------------------------------------------------------------


def test_a_stream_shows_its_figures_its_turn_and_its_text() -> None:
    split = Tokens(12, read=9000, creation=1538, output=85, creation_5m=538, creation_1h=1000)
    body = framing.stream(anthropic.events(anthropic.usage(split), PIECES, "claude-sonnet-4-6"))
    facts = turn_facts("s-1", turn(miss=Explanation(Reason.PREFIX_CHANGED, "block 3 changed", {})), Cost(0.01, 0.03))
    assert render(Dialect.ANTHROPIC, SSE, body, facts) == (
        "dialect: anthropic\n"
        "provider: anthropic\n"
        "model: claude-sonnet-4-6\n"
        "input_tokens: 12\n"
        "cache_creation_input_tokens: 1538\n"
        "cache_read_input_tokens: 9000\n"
        "output_tokens: 85\n"
        "cache_creation_5m: 538\n"  # the TTL split only when the provider reports one
        "cache_creation_1h: 1000\n"
        "verdict: hit\n"
        "turn: 2\n"
        "thread: ln_main\n"
        "session_id: s-1\n"
        "reason: prefix_changed (block 3 changed)\n"
        "cost_usd:\n"
        "  billed: 0.01\n"
        "  uncached: 0.03\n"
        "  saving: 0.02\n"
        "text: |\n"
        "  Hello world.\n"
        "  Second line.\n"
    )


def test_a_json_body_has_no_text_and_figures_not_reported_say_so() -> None:
    body = json.dumps(openai.completion(openai.chat_usage(Tokens(204, read=None, output=52)), "Done.", "gpt-5"))
    assert render(Dialect.OPENAI_CHAT, JSON, body.encode()) == (
        "dialect: openai-chat\n"
        "provider: openai\n"
        "model: gpt-5\n"
        "input_tokens: 204\n"
        "cache_creation_input_tokens: n/a\n"
        "cache_read_input_tokens: n/a\n"
        "output_tokens: 52\n"
    )


@pytest.mark.parametrize(("content_type", "body", "lines"), [
    (JSON, b"{}", ["usage: not reported"]),
    (JSON, b"not json", ["usage: not reported", "warning: response body is not JSON (application/json)"]),
    (JSON, json.dumps(anthropic.error("overloaded_error", "Overloaded")).encode(),
     ["usage: not reported", "error: overloaded_error"]),
    (SSE, b"", ["usage: not reported", "text: |", "  "]),  # a stream without text still has its (empty) text
])
def test_a_response_without_usage_says_what_went_wrong(content_type: str, body: bytes, lines: list[str]) -> None:
    assert render(Dialect.ANTHROPIC, content_type, body).splitlines() == ["dialect: anthropic", *lines]


def test_a_value_over_several_lines_is_quoted_and_a_null_is_na() -> None:
    facts = {"verdict": "miss", "turn": 3, "thread": None, "session_id": "s\nwith a newline"}
    lines = render(Dialect.ANTHROPIC, JSON, b"{}", facts).splitlines()
    assert lines[-3:] == ["turn: 3", "thread: n/a", 'session_id: "s\\nwith a newline"']


def test_facts_the_view_does_not_know_are_left_out() -> None:
    lines = render(Dialect.ANTHROPIC, JSON, b"{}", {"verdict": "hit", "extra": "x", "cost_usd": "not a dict"})
    assert lines.splitlines()[-1] == "verdict: hit"
