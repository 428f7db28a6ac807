"""cache_diagnostics' request side: which requests can ask, what is added to them, byte for byte, and which earlier
response each is compared with."""

from __future__ import annotations

import json

import pytest

from cachepin.request.diagnostics_edit import (
    Baselines,
    ThreadKey,
    asks_already,
    opts_in_only,
    supported,
    with_diagnostics,
)
from cachepin.request.dialects import Dialect

A, R = Dialect.ANTHROPIC, Dialect.OPENAI_RESPONSES


@pytest.mark.parametrize(("dialect", "path", "model", "expected"), [
    (A, "/v1/messages", "claude-opus-4-8", True),
    (A, "/v1/messages?beta=true", "claude-sonnet-4-6", True),  # Claude Code's query
    (A, "/v1/messages/", "Claude-Haiku-4-5", True),
    (A, "/anthropic/v1/messages", "claude-opus-4-8", False),  # another platform serving Claude (Foundry)
    (A, "/api/v1/messages", "claude-opus-4-8", False),
    (A, "/v1/messages", "deepseek-chat", False),  # an Anthropic-compatible API of another provider
    (A, "/v1/messages", None, False),
    (A, "/v1/messages", ["claude-opus-4-8"], False),
    (R, "/v1/responses", "gpt-5.6", True),
    (R, "/v1/responses", "gpt-5.6-sol", True),
    (R, "/v1/responses", "gpt-5.10", True),
    (R, "/v1/responses", "gpt-6-astra", True),
    (R, "/v1/responses", "gpt-5.5", False),  # "GPT-5.6 and later"
    (R, "/v1/responses", "gpt-5", False),
    (R, "/v1/responses", "gpt-4o", False),
    (R, "/v1/responses", "o3", False),
    (R, "/v1/responses", "grok-4", False),
    (Dialect.OPENAI_CHAT, "/v1/chat/completions", "gpt-5.6", False),  # Responses only
    (Dialect.BEDROCK_INVOKE, "/model/anthropic.claude-opus-4-8/invoke", "claude-opus-4-8", False),
    (Dialect.GEMINI, "/v1beta/models/gemini-3-pro:generateContent", "gemini-3-pro", False),
])
def test_who_answers_diagnostics(dialect: Dialect, path: str, model: object, expected: bool) -> None:
    assert supported(dialect, path, model) is expected


CLAUDE_BODY = b'{"model": "claude-opus-4-8", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hi"}]}'
RESPONSES_BODY = b'{"model":"gpt-5.6","input":"Reply with exactly OK."}'


@pytest.mark.parametrize(("baseline", "member"), [
    (None, b'"diagnostics":{"previous_message_id":null},'),  # the first turn opts in
    ("msg_01Xyz", b'"diagnostics":{"previous_message_id":"msg_01Xyz"},'),
])
def test_an_anthropic_request_asks_on_every_turn(baseline: str | None, member: bytes) -> None:
    edited = with_diagnostics(A, CLAUDE_BODY, json.loads(CLAUDE_BODY), baseline)
    assert edited == b"{" + member + CLAUDE_BODY[1:]


def test_a_responses_request_asks_from_its_second_turn() -> None:
    assert with_diagnostics(R, RESPONSES_BODY, json.loads(RESPONSES_BODY), None) is None
    edited = with_diagnostics(R, RESPONSES_BODY, json.loads(RESPONSES_BODY), "resp_1")
    assert edited == b'{"prompt_cache_options":{"comparison_response_id":"resp_1"},' + RESPONSES_BODY[1:]


def test_a_responses_request_with_cache_options_gets_the_id_among_them() -> None:
    raw = b'{"model":"gpt-5.6","prompt_cache_options":{"ttl":"30m","mode":"implicit"},"input":"x"}'
    edited = with_diagnostics(R, raw, json.loads(raw), "resp_1")
    assert edited == raw.replace(b'options":{', b'options":{"comparison_response_id":"resp_1",')


@pytest.mark.parametrize(("dialect", "raw"), [
    (A, b'{"model":"claude-opus-4-8","diagnostics":{"previous_message_id":"msg_mine"}}'),
    (A, b'{"model":"claude-opus-4-8","diagnostics":null}'),
    (R, b'{"model":"gpt-5.6","prompt_cache_options":{"comparison_response_id":"resp_mine"}}'),
])
def test_a_client_that_asks_itself_is_left_alone(dialect: Dialect, raw: bytes) -> None:
    body = json.loads(raw)
    assert asks_already(dialect, body)
    assert with_diagnostics(dialect, raw, body, "resp_1") is None


@pytest.mark.parametrize("raw", [b'{"model":"gpt-5.6","prompt_cache_options":null}',
                                 b'{"model":"gpt-5.6","prompt_cache_options":{},"prompt_cache_options":{}}'])
def test_no_place_beyond_doubt_no_edit(raw: bytes) -> None:
    body = json.loads(raw)
    assert not asks_already(R, body)
    assert with_diagnostics(R, raw, body, "resp_1") is None


@pytest.mark.parametrize(("dialect", "body", "edited", "baseline", "expected"), [
    (A, {}, b"{...}", None, True),  # cachepin opted it in
    (A, {}, b"{...}", "msg_1", False),
    (A, {"diagnostics": {"previous_message_id": None}}, None, "msg_1", True),  # the client opted in itself
    (A, {"diagnostics": {"previous_message_id": "msg_0"}}, None, "msg_1", False),
    (A, {"diagnostics": None}, None, None, False),
    (R, {}, None, None, False),  # OpenAI has no opt-in
])
def test_which_requests_only_opt_in(dialect: Dialect, body: dict, edited: bytes | None, baseline: str | None,
                                    expected: bool) -> None:
    assert opts_in_only(dialect, body, edited, baseline) is expected


KEY = ThreadKey("s1", "ln_main", "claude-opus-4-8")


def test_a_thread_is_compared_with_its_latest_response() -> None:
    baselines = Baselines()
    assert baselines.baseline(KEY, continues=False) is None
    baselines.learn(KEY, "msg_1")
    baselines.learn(KEY, "msg_2")
    assert baselines.baseline(KEY, continues=True) == baselines.baseline(KEY, continues=False) == "msg_2"
    baselines.learn(KEY, None)  # a response without an id changes nothing
    assert baselines.baseline(KEY, continues=True) == "msg_2"


@pytest.mark.parametrize(("key", "expected"), [
    (KEY._replace(thread="ln_tools_changed"), "msg_main"),  # the session's latest on the same model
    (KEY._replace(family="claude-haiku-4-5"), "msg_main"),  # a header thread on another model
    (KEY._replace(thread="ln_other", family="claude-haiku-4-5"), "msg_main"),  # the session's latest
    (KEY._replace(session="s2"), None),  # another session: never
])
def test_a_continuation_in_a_new_thread_is_compared_with_the_conversation_it_continues(key: ThreadKey,
                                                                                       expected: str | None) -> None:
    baselines = Baselines()
    baselines.learn(KEY, "msg_main")
    assert baselines.baseline(key, continues=True) == expected
    assert baselines.baseline(key, continues=False) is None  # a new conversation is compared with nothing


def test_the_closest_baseline_wins() -> None:
    baselines = Baselines()
    side = KEY._replace(thread="ln_title", family="claude-haiku-4-5")
    baselines.learn(KEY, "msg_main")
    baselines.learn(side, "msg_title")  # the latest of the session, on another model
    assert baselines.baseline(KEY._replace(thread="ln_new"), continues=True) == "msg_main"  # same model first
    assert baselines.baseline(KEY._replace(family="claude-sonnet-4-6"), continues=True) == "msg_main"


def test_baselines_are_bounded() -> None:
    baselines = Baselines(limit=8)
    for n in range(100):
        baselines.learn(ThreadKey(f"s{n}", "t", "m"), f"msg_{n}")
    assert len(baselines) == 8
    assert baselines.baseline(ThreadKey("s99", "t", "m"), continues=False) == "msg_99"
    assert baselines.baseline(ThreadKey("s0", "t", "m"), continues=True) is None
