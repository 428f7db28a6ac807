"""The simulator answers the providers' cache diagnostics as they document them: every reason, in the documented
order, scoped to one account, where the official SDKs read them (JSON, message_start, response.completed)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import anthropic
import openai
import pytest
from simulator_support import CLAUDE, EPHEMERAL, raw_post

from cachepin_tools.simulator import server as sim
from cachepin_tools.simulator.diagnostics import Diagnostics, supports_comparisons
from cachepin_tools.simulator.prompt import Api

SYSTEM = [{"type": "text", "text": "S" * 800, "cache_control": EPHEMERAL}]
TOOL = {"name": "grep", "description": "Search.", "input_schema": {"type": "object"}}
OTHER_TOOL = {"name": "read", "description": "Read.", "input_schema": {"type": "object"}}


def claude(turns: int = 1, **changes: object) -> dict:
    messages: list[dict] = []
    for turn in range(turns):
        messages += [{"role": "assistant", "content": "ok"}] if turn else []
        messages.append({"role": "user", "content": f"question {turn}"})
    return {"model": CLAUDE, "max_tokens": 8, "system": SYSTEM, "tools": [TOOL], "messages": messages} | changes


def asking(body: dict, previous: str | None) -> dict:
    return body | {"diagnostics": {"previous_message_id": previous}}


def compare(first: dict, second: dict, headers: tuple[dict, dict] = ({}, {}), read: int = 0) -> object:
    """The Anthropic answer to ``second`` compared with ``first`` (both opt in), on one account."""
    diagnostics = Diagnostics(accounts=1)
    diagnostics.remember(0, Api.ANTHROPIC, asking(first, None), headers[0], "msg_1")
    return diagnostics.answer(0, Api.ANTHROPIC, asking(second, "msg_1"), headers[1], read)["diagnostics"]


def changed(kind: str, tokens: int) -> dict:
    return {"cache_miss_reason": {"type": kind, "cache_missed_input_tokens": tokens}}


@pytest.mark.parametrize(("second", "expected"), [
    (claude(2), None),  # appended to: nothing diverged
    (claude(2, model="claude-haiku-4-5"), "model_changed"),
    (claude(2, tools=[TOOL, OTHER_TOOL]), "tools_changed"),
    (claude(2, tools=[]), "tools_changed"),
    (claude(2, system=[{"type": "text", "text": "Today is 2026-12-03. " + "S" * 800, "cache_control": EPHEMERAL}]),
     "system_changed"),
    (claude(2, system=[{"type": "text", "text": "S" * 800}]), None),  # a moved breakpoint is no change
    (claude(2, tool_choice={"type": "any"}), "unavailable"),
    (claude(2, thinking={"type": "enabled", "budget_tokens": 1024}), "unavailable"),
    (claude(2, messages=[{"role": "user", "content": "question 0, edited"}, {"role": "assistant", "content": "ok"},
                         {"role": "user", "content": "question 1"}]), "messages_changed"),
    (claude(1, messages=[]), "messages_changed"),  # removed
    # the order of the checks: the model first, then tools, then system
    (claude(2, model="claude-haiku-4-5", tools=[]), "model_changed"),
    (claude(2, tools=[], system="other"), "tools_changed"),
])
def test_each_anthropic_reason(second: dict, expected: str | None) -> None:
    answer = compare(claude(1), second)
    if expected is None:
        assert answer is None
    elif expected == "unavailable":
        assert answer == {"cache_miss_reason": {"type": "unavailable"}}
    else:
        assert answer["cache_miss_reason"]["type"] == expected  # type: ignore[index]
        assert answer["cache_miss_reason"]["cache_missed_input_tokens"] > 0  # type: ignore[index]


def test_missed_tokens_count_from_the_first_block_that_differs() -> None:
    """The first request's blocks: its tool (its compact JSON), system (200 tokens), its question (3 tokens)."""
    tool_tokens = -(-len(json.dumps(TOOL, sort_keys=True, separators=(",", ":"))) // 4)
    assert compare(claude(1), claude(2, model="claude-haiku-4-5")) == changed("model_changed", tool_tokens + 200 + 3)
    assert compare(claude(1), claude(2, tools=[TOOL, OTHER_TOOL])) == changed("tools_changed", 200 + 3)
    assert compare(claude(1), claude(2, system="other")) == changed("system_changed", 200 + 3)


def test_a_different_set_of_beta_headers_is_unavailable() -> None:
    answer = compare(claude(1), claude(2), ({}, {"anthropic-beta": "context-1m-2025-08-07"}))
    assert answer == {"cache_miss_reason": {"type": "unavailable"}}
    same = compare(claude(1), claude(2), ({"anthropic-beta": "a,b"}, {"anthropic-beta": "b, a"}))
    assert same is None


def test_only_requests_that_opted_in_are_kept_and_only_by_their_account() -> None:
    diagnostics = Diagnostics(accounts=2)
    diagnostics.remember(0, Api.ANTHROPIC, claude(1), {}, "msg_silent")  # did not ask: nothing kept
    diagnostics.remember(0, Api.ANTHROPIC, asking(claude(1), None), {}, "msg_1")
    not_found = {"diagnostics": {"cache_miss_reason": {"type": "previous_message_not_found"}}}
    assert diagnostics.answer(0, Api.ANTHROPIC, asking(claude(2), "msg_silent"), {}, 0) == not_found
    assert diagnostics.answer(1, Api.ANTHROPIC, asking(claude(2), "msg_1"), {}, 0) == not_found  # another workspace
    assert diagnostics.answer(0, Api.ANTHROPIC, asking(claude(2), "msg_1"), {}, 0) == {"diagnostics": None}
    assert diagnostics.answer(0, Api.ANTHROPIC, asking(claude(1), None), {}, 0) == {"diagnostics": None}  # opt-in
    assert diagnostics.answer(0, Api.ANTHROPIC, claude(2), {}, 0) == {}  # asked nothing: no field


def test_fingerprints_are_bounded() -> None:
    diagnostics = Diagnostics(accounts=1, kept=3)
    for n in range(10):
        diagnostics.remember(0, Api.ANTHROPIC, asking(claude(1), None), {}, f"msg_{n}")
    answers = [diagnostics.answer(0, Api.ANTHROPIC, asking(claude(2), f"msg_{n}"), {}, 0) for n in (0, 9)]
    assert answers == [{"diagnostics": {"cache_miss_reason": {"type": "previous_message_not_found"}}},
                       {"diagnostics": None}]


def responses(**changes: object) -> dict:
    return {"model": "gpt-5.6", "instructions": "I" * 800, "input": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "name": "get_time"}]} | changes


def openai_answer(second: dict, read: int = 0, first: dict | None = None) -> object:
    diagnostics = Diagnostics(accounts=1)
    diagnostics.remember(0, Api.OPENAI_RESPONSES, first or responses(), {}, "resp_1")
    asked = second | {"prompt_cache_options": {"comparison_response_id": "resp_1"}}
    return diagnostics.answer(0, Api.OPENAI_RESPONSES, asked, {}, read)["prompt_cache_diagnostics"]


@pytest.mark.parametrize(("second", "reason"), [
    (responses(model="gpt-5.6-sol"), "model_changed"),
    (responses(prompt_cache_key="another"), "prompt_cache_key_changed"),
    (responses(service_tier="priority"), "service_tier_changed"),
    (responses(tools=[{"type": "function", "name": "get_date"}]), "tools_changed"),
    (responses(text={"format": {"type": "json_object"}}), "text_format_changed"),
    (responses(reasoning={"effort": "high"}), "reasoning_effort_changed"),
    (responses(text={"verbosity": "low"}), "verbosity_changed"),
    (responses(instructions="Today is 2026-12-03. " + "I" * 800), "input_changed"),
    (responses(input=[{"role": "user", "content": "hello"}]), "input_changed"),
    (responses(prompt_cache_key="another", tools=[]), "prompt_cache_key_changed"),  # the documented order
])
def test_each_responses_reason(second: dict, reason: str) -> None:
    answer = openai_answer(second)
    assert answer["type"] == "cache_miss" and answer["reason"] == reason  # type: ignore[index]
    assert answer["comparison_reusable_tokens"] >= answer["cache_missed_tokens"] > 0  # type: ignore[index]


@pytest.mark.parametrize(("second", "read", "expected"), [
    (responses(input=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]), 256,
     {"type": "cache_hit"}),
    (responses(service_tier="auto"), 256, {"type": "cache_hit"}),  # the default tier, said out loud
    (responses(), 0, {"type": "unavailable"}),  # nothing changed, nothing read: not classified
    (responses(model="gpt-5.5"), 0, {"type": "unavailable"}),  # a model without diagnostics
])
def test_responses_outcomes_without_a_reason(second: dict, read: int, expected: dict) -> None:
    assert openai_answer(second, read) == expected


def test_an_unknown_comparison_is_not_found() -> None:
    diagnostics = Diagnostics(accounts=1)
    asked = responses(prompt_cache_options={"comparison_response_id": "resp_gone"})
    assert diagnostics.answer(0, Api.OPENAI_RESPONSES, asked, {}, 0) == {
        "prompt_cache_diagnostics": {"type": "comparison_response_not_found"}}
    assert diagnostics.answer(0, Api.OPENAI_RESPONSES, responses(), {}, 0) == {}  # asked nothing


@pytest.mark.parametrize(("model", "supported"), [("gpt-5.6", True), ("gpt-6-astra", True), ("gpt-5.5", False),
                                                  ("gpt-5", False), ("gpt-4o", False)])
def test_which_models_compare(model: str, supported: bool) -> None:
    assert supports_comparisons(model) is supported


# --- on the wire, through the official SDKs -----------------------------------------------------------------------


@pytest.fixture
def url(direct: None) -> Iterator[str]:
    with sim.serve_in_thread(sim.SimConfig(accounts=1)) as base:
        yield base


def test_the_anthropic_sdk_reads_the_answer_of_a_json_and_a_streamed_message(url: str) -> None:
    with contextlib.closing(anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)) as client:
        first = client.messages.create(**asking(claude(1), None))
        assert first.diagnostics is None
        with client.messages.stream(**asking(claude(2, tools=[TOOL, OTHER_TOOL]), first.id)) as stream:
            second = stream.get_final_message()
    assert second.diagnostics is not None and second.diagnostics.cache_miss_reason is not None
    assert second.diagnostics.cache_miss_reason.type == "tools_changed"
    third = asking(claude(3, tools=[TOOL, OTHER_TOOL]), second.id) | {"stream": True}
    status, _, raw = raw_post(f"{url}/v1/messages", third)
    starts = [line for line in raw.decode().splitlines() if line.startswith("data: ")]
    assert status == 200 and '"diagnostics":null' in starts[0]  # on message_start, only there
    assert all("diagnostics" not in line for line in starts[1:])
    _, _, plain = raw_post(f"{url}/v1/messages", claude(1))
    assert "diagnostics" not in json.loads(plain)  # not asked: no field


def test_the_openai_sdk_reads_the_answer_of_a_json_and_a_streamed_response(url: str) -> None:
    with contextlib.closing(openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)) as client:
        first = client.responses.create(**responses())
        assert first.prompt_cache_diagnostics is None  # the first turn asks for nothing
        second = client.responses.create(**responses(tools=[{"type": "function", "name": "get_date"}]),
                                         prompt_cache_options={"comparison_response_id": first.id})
        events = list(client.responses.create(**responses(), stream=True,
                                               prompt_cache_options={"comparison_response_id": first.id}))
    miss = second.prompt_cache_diagnostics
    assert miss is not None and miss.type == "cache_miss" and miss.reason == "tools_changed"
    carrying = [event.type for event in events if getattr(getattr(event, "response", None),
                                                          "prompt_cache_diagnostics", None) is not None]
    assert carrying == ["response.completed"]
