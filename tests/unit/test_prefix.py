"""The cacheable prefix: a request's blocks in cache order, with paths, digests, breakpoints and token estimates.

The explainer compares these blocks across turns, so what they promise is what
a miss reason can rest on: the order a provider caches in, a digest that a
moved breakpoint or Claude Code's billing block does not change, the shared
token estimate, and a memo that remembers digests without ever changing them.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from bodies import tool_conversation

from cachepin.request import prefix
from cachepin.request.dialects import Dialect
from cachepin.request.prefix import prefix_blocks
from cachepin.request.tokens import estimate_tokens

TOOL = {"name": "Read", "input_schema": {"type": "object"}}
BILLING = "x-anthropic-billing-header: cc_version=2.1.197.123; cc_entrypoint=cli; cch=ab12;"


def paths(dialect: Dialect, body: dict) -> list[str]:
    return [block.path for block in prefix_blocks(dialect, body)]


def digest_of(dialect: Dialect, body: dict, path: str) -> bytes:
    return next(block.digest for block in prefix_blocks(dialect, body) if block.path == path)


# --- the order a provider caches in ----------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", [Dialect.ANTHROPIC, Dialect.BEDROCK_INVOKE])
def test_anthropic_blocks_run_tools_then_system_then_messages(dialect: Dialect) -> None:
    body = {"messages": [{"role": "user", "content": "Fix it."},
                         {"role": "assistant", "content": [{"type": "text", "text": "Done."},
                                                           {"type": "tool_use", "id": "t1", "name": "Read"}]}],
            "system": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
            "tools": [TOOL, {**TOOL, "name": "Edit"}], "model": "claude-sonnet-4-5", "max_tokens": 9}
    assert paths(dialect, body) == ["tools[0]", "tools[1]", "system[0]", "system[1]", "messages[0].content",
                                    "messages[1].content[0]", "messages[1].content[1]"]
    assert paths(dialect, {**body, "system": "one string"})[2] == "system"


def test_openai_chat_blocks_are_each_messages_content_then_its_other_fields() -> None:
    body = {"tools": [TOOL], "messages": [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "u"}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "function": {"name": "f"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "out"}]}
    assert paths(Dialect.OPENAI_CHAT, body) == ["tools[0]", "messages[0].content", "messages[1].content[0]",
                                                "messages[1].content[1]", "messages[2]", "messages[3].content",
                                                "messages[3]"]


def test_openai_responses_blocks_are_tools_instructions_then_input() -> None:
    body = {"input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                      {"type": "function_call", "name": "f", "arguments": "{}"}],
            "instructions": "be brief", "tools": [TOOL]}
    assert paths(Dialect.OPENAI_RESPONSES, body) == ["tools[0]", "instructions", "input[0].content[0]", "input[1]"]
    assert paths(Dialect.OPENAI_RESPONSES, {"instructions": "be brief", "input": "hi"}) == ["instructions", "input"]


def test_gemini_blocks_are_tools_system_instruction_then_contents() -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"text": "a"},
                                                                                                   {"text": "b"}]}],
            "systemInstruction": {"parts": [{"text": "rules"}]}, "tools": [{"functionDeclarations": []}]}
    assert paths(Dialect.GEMINI, body) == ["tools[0]", "systemInstruction.parts[0]", "contents[0].parts[0]",
                                           "contents[1].parts[0]", "contents[1].parts[1]"]
    assert paths(Dialect.GEMINI, {"system_instruction": {"parts": [{"text": "r"}]}}) == ["systemInstruction.parts[0]"]


@pytest.mark.parametrize("body", [{}, {"tools": "x", "system": None, "messages": [5, "s", None]},
                                  {"messages": {"role": "user"}}])
def test_what_is_not_a_block_is_skipped(body: dict) -> None:
    assert prefix_blocks(Dialect.ANTHROPIC, body) == []


def test_a_dialect_without_a_known_layout_has_no_blocks() -> None:
    body = {"messages": [{"role": "user", "content": [{"text": "hi"}]}], "system": [{"text": "rules"}]}
    assert prefix_blocks(Dialect.BEDROCK_CONVERSE, body) == []


# --- digests and breakpoints -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("marker", "breakpoint", "ttl"), [
    (None, False, None), ({"type": "ephemeral"}, True, "5m"), ({"type": "ephemeral", "ttl": "1h"}, True, "1h"),
    ({"type": "ephemeral", "ttl": "5m"}, True, "5m"), ("odd", True, None),
], ids=["none", "default", "1h", "5m", "not-an-object"])
def test_a_breakpoint_changes_the_marker_never_the_digest(marker: object, breakpoint: bool, ttl: str | None) -> None:
    block = {"type": "text", "text": "You are a coding agent."}
    marked = {**block, "cache_control": marker} if marker is not None else block
    (plain,) = prefix_blocks(Dialect.ANTHROPIC, {"system": [block]})
    (found,) = prefix_blocks(Dialect.ANTHROPIC, {"system": [marked]})
    assert (found.digest, found.tokens) == (plain.digest, plain.tokens)
    assert (found.breakpoint, found.ttl) == (breakpoint, ttl)


def test_the_role_is_part_of_the_digest() -> None:
    user = {"messages": [{"role": "user", "content": "same words"}]}
    assistant = {"messages": [{"role": "assistant", "content": "same words"}]}
    assert digest_of(Dialect.ANTHROPIC, user, "messages[0].content") != digest_of(
        Dialect.ANTHROPIC, assistant, "messages[0].content")


def test_a_changed_block_changes_its_digest_only() -> None:
    before = {"tools": [TOOL], "system": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}
    after = {"tools": [TOOL], "system": [{"type": "text", "text": "one"}, {"type": "text", "text": "TWO"}]}
    old, new = prefix_blocks(Dialect.ANTHROPIC, before), prefix_blocks(Dialect.ANTHROPIC, after)
    assert [a.digest == b.digest for a, b in zip(old, new, strict=True)] == [True, True, False]


def test_the_volatile_billing_block_keeps_its_digest_whatever_its_text() -> None:
    """Claude Code rewrites it on every release (and request): its tokens count, its changes do not."""
    other = BILLING.replace("2.1.197.123", "9.9.9").replace("ab12", "ff99ff")
    first = prefix_blocks(Dialect.ANTHROPIC, {"system": [{"type": "text", "text": BILLING}]})[0]
    second = prefix_blocks(Dialect.ANTHROPIC, {"system": [{"type": "text", "text": other}]})[0]
    assert first.digest == second.digest
    assert (first.tokens, second.tokens) == (estimate_tokens(BILLING), estimate_tokens(other))


def test_billing_text_outside_the_system_prompt_is_ordinary_content() -> None:
    def message(text: str) -> dict:
        return {"messages": [{"role": "user", "content": text}]}

    other = BILLING.replace("ab12", "ff99")
    assert digest_of(Dialect.ANTHROPIC, message(BILLING), "messages[0].content") != digest_of(
        Dialect.ANTHROPIC, message(other), "messages[0].content")


# --- token estimates -------------------------------------------------------------------------------------------


def test_tokens_are_the_estimate_of_a_blocks_text_or_its_canonical_json() -> None:
    tool = {"name": "Read", "description": "Reads a file.", "input_schema": {"type": "object"}}
    body = {"tools": [tool], "system": "plain string prompt",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "héllo wörld", "cache_control": {}}]}]}
    canonical = json.dumps(tool, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert [block.tokens for block in prefix_blocks(Dialect.ANTHROPIC, body)] == [
        estimate_tokens(canonical), estimate_tokens("plain string prompt"), estimate_tokens("héllo wörld")]


def test_a_text_block_with_more_than_text_is_measured_as_json() -> None:
    block = {"type": "text", "text": "hi", "citations": []}
    (found,) = prefix_blocks(Dialect.ANTHROPIC, {"system": [block]})
    assert found.tokens == estimate_tokens(json.dumps(block, sort_keys=True, separators=(",", ":")))


# --- the memo --------------------------------------------------------------------------------------------------


def as_tuples(blocks: list[prefix.Block]) -> list[tuple]:
    return [(b.path, b.digest, b.tokens, b.breakpoint, b.ttl) for b in blocks]


def cold(dialect: Dialect, body: dict) -> list[tuple]:
    prefix._memo.clear()
    return as_tuples(prefix_blocks(dialect, body))


def test_remembered_blocks_equal_freshly_measured_ones() -> None:
    earlier, later = tool_conversation(3), tool_conversation(4)  # the next turn: same blocks, breakpoint moved on
    expected = cold(Dialect.ANTHROPIC, later)
    prefix._memo.clear()
    prefix_blocks(Dialect.ANTHROPIC, earlier)
    assert as_tuples(prefix_blocks(Dialect.ANTHROPIC, later)) == expected
    assert as_tuples(prefix_blocks(Dialect.ANTHROPIC, later)) == expected


def test_digest_is_sha256_of_role_and_canonical_json_with_or_without_memo() -> None:
    block = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "line\n\"x\" → ü",
             "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    body = {"messages": [{"role": "user", "content": [block]}]}
    canonical = json.dumps({k: v for k, v in block.items() if k != "cache_control"}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"user\x00{canonical}".encode()).digest()[:16]
    expected = [("messages[0].content[0]", digest, (len(canonical) + 3) // 4, True, "1h")]
    assert cold(Dialect.ANTHROPIC, body) == expected
    assert as_tuples(prefix_blocks(Dialect.ANTHROPIC, body)) == expected


def test_json_types_are_told_apart_by_the_memo() -> None:
    values = [True, 1, 1.0, "True", None, [1], {"1": 1}]
    digests = set()
    for value in values:  # one after the other, so each could wrongly hit the one before
        body = {"input": [{"type": "function_call", "arguments": {"x": value}}]}
        (block,) = prefix_blocks(Dialect.OPENAI_RESPONSES, body)
        assert as_tuples([block]) == cold(Dialect.OPENAI_RESPONSES, body)
        digests.add(block.digest)
    assert len(digests) == len(values)


def test_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefix, "MEMO_SIZE", 10)
    prefix._memo.clear()
    body = {"input": [f"item {i}" for i in range(50)]}
    blocks = as_tuples(prefix_blocks(Dialect.OPENAI_RESPONSES, body))
    assert len(prefix._memo) == 10
    assert blocks == cold(Dialect.OPENAI_RESPONSES, body)


def test_blocks_nested_deeper_than_python_recurses_are_still_measured() -> None:
    deep = json.loads("[" * 900 + "]" * 900)  # json parses it; a recursive Python walk would not
    (block,) = prefix_blocks(Dialect.OPENAI_RESPONSES, {"input": [deep]})
    canonical = "[" * 900 + "]" * 900
    assert block.digest == hashlib.sha256(f"item\x00{canonical}".encode()).digest()[:16]
    assert block.tokens == 450


def test_the_memo_keeps_the_blocks_used_last(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every turn resends the conversation's first blocks: they stay remembered while older ones go."""
    monkeypatch.setattr(prefix, "MEMO_SIZE", 3)
    prefix._memo.clear()
    for item in ("first", "second", "third", "first", "fourth"):
        prefix_blocks(Dialect.OPENAI_RESPONSES, {"input": [item]})
    remembered = {digest for digest, _ in prefix._memo.values()}
    expected = {digest_of(Dialect.OPENAI_RESPONSES, {"input": [item]}, "input[0]") for item in ("first", "third",
                                                                                                    "fourth")}
    assert remembered == expected
