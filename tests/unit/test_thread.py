"""Threads inside sessions, and a request's position, from what the client sends: no proxy memory involved."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from cachepin.request.dialects import Dialect
from cachepin.request.thread import Position, Thread, lineage, model_family, position_of, thread_of

BILLING = {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.123; cc_entrypoint=cli; cch=ab12;"}
SYSTEM = {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
TOOLS = [{"name": "Read", "input_schema": {"type": "object"}}, {"name": "Agent", "input_schema": {"type": "object"}}]
Body = Callable[[str, list[str], int], dict]  # a request of a dialect: system prompt, tool names, turns
INVOKE_VERSION = "bedrock-2023-05-31"  # Bedrock InvokeModel: an Anthropic body without its model


def main_agent(turns: int = 1) -> dict:
    messages: list[dict] = [{"role": "user", "content": "Fix the failing test."}]
    for n in range(1, turns):
        messages += [{"role": "assistant", "content": f"step {n}"}, {"role": "user", "content": f"result {n}"}]
    return {"model": "claude-opus-4-8", "system": [BILLING, SYSTEM], "tools": TOOLS, "messages": messages}


def sub_agent() -> dict:
    """Claude Code's Agent tool: the parent's session id and model, another system prompt and tool list."""
    body = main_agent()
    body["system"] = [BILLING, {"type": "text", "text": "You are a search agent."}]
    body["tools"] = TOOLS[:1]
    body["messages"] = [{"role": "user", "content": "Find where the test fixture is defined."}]
    return body


def test_every_turn_of_a_conversation_is_one_thread() -> None:
    first = thread_of({}, main_agent(1), Dialect.ANTHROPIC)
    assert first is not None and first.source == "lineage" and first.thread_id.startswith("ln_")
    later = [thread_of({}, main_agent(n), Dialect.ANTHROPIC) for n in (2, 5, 9)]
    assert {thread.thread_id for thread in later if thread} == {first.thread_id}


def test_a_sub_agent_is_a_thread_of_its_own() -> None:
    assert thread_of({}, sub_agent(), Dialect.ANTHROPIC) != thread_of({}, main_agent(), Dialect.ANTHROPIC)


# --- every dialect: a conversation keeps its thread, a sub-agent (another system prompt or tool list) has its own ---


def _turns(turns: int, user: Callable[[str], dict], model: Callable[[str], dict]) -> list[dict]:
    items = [user("Fix the failing test.")]
    for n in range(1, turns):
        items += [model(f"step {n}"), user(f"result {n}")]
    return items


def chat(system: str, tools: list[str], turns: int) -> dict:
    messages = _turns(turns, lambda text: {"role": "user", "content": text},
                      lambda text: {"role": "assistant", "content": text})
    return {"model": "gpt-5", "tools": [{"type": "function", "function": {"name": name}} for name in tools],
            "messages": [{"role": "system", "content": system}, *messages]}


def responses(system: str, tools: list[str], turns: int) -> dict:
    items = _turns(turns, lambda text: {"role": "user", "content": text},
                   lambda text: {"type": "function_call", "name": "read", "arguments": text})
    return {"model": "gpt-5", "instructions": system, "tools": [{"type": "function", "name": name} for name in tools],
            "input": items}


def gemini(system: str, tools: list[str], turns: int) -> dict:
    contents = _turns(turns, lambda text: {"role": "user", "parts": [{"text": text}]},
                      lambda text: {"role": "model", "parts": [{"text": text}]})
    return {"systemInstruction": {"parts": [{"text": system}]},
            "tools": [{"functionDeclarations": [{"name": name} for name in tools]}], "contents": contents}


def converse(system: str, tools: list[str], turns: int) -> dict:
    messages = _turns(turns, lambda text: {"role": "user", "content": [{"text": text}]},
                      lambda text: {"role": "assistant", "content": [{"text": text}]})
    return {"system": [{"text": system}, {"cachePoint": {"type": "default"}}],
            "toolConfig": {"tools": [{"toolSpec": {"name": name, "inputSchema": {"json": {}}}} for name in tools]},
            "messages": messages}


DIALECT_BODIES = [(Dialect.OPENAI_CHAT, chat), (Dialect.OPENAI_RESPONSES, responses), (Dialect.GEMINI, gemini),
                  (Dialect.BEDROCK_CONVERSE, converse)]
DIALECT_IDS = ["chat", "responses", "gemini", "converse"]
MAIN_PROMPT, MAIN_TOOLS = "You are a coding agent.", ["read", "edit", "agent"]


@pytest.mark.parametrize(("dialect", "make"), DIALECT_BODIES, ids=DIALECT_IDS)
def test_every_turn_of_a_conversation_is_one_thread_in_every_dialect(dialect: Dialect, make: Body) -> None:
    first = thread_of({}, make(MAIN_PROMPT, MAIN_TOOLS, 1), dialect)
    assert first is not None and first.source == "lineage"
    later = [thread_of({}, make(MAIN_PROMPT, MAIN_TOOLS, turns), dialect) for turns in (2, 5)]
    assert later == [first, first]
    assert [position_of(make(MAIN_PROMPT, MAIN_TOOLS, turns), dialect) for turns in (1, 2)] == [
        Position.START, Position.CONTINUATION]


@pytest.mark.parametrize(("system", "tools"), [("You are a search agent.", MAIN_TOOLS), (MAIN_PROMPT, ["read"]),
                                               ("You are a search agent.", ["read"])],
                         ids=["system", "tools", "both"])
@pytest.mark.parametrize(("dialect", "make"), DIALECT_BODIES, ids=DIALECT_IDS)
def test_a_sub_agent_is_a_thread_of_its_own_in_every_dialect(dialect: Dialect, make: Body, system: str,
                                                             tools: list[str]) -> None:
    """Another system prompt or tool list is another cached prefix (Bedrock Converse keeps its tools in
    ``toolConfig``), though the session and the first user message are the same."""
    main = thread_of({}, make(MAIN_PROMPT, MAIN_TOOLS, 3), dialect)
    sub = thread_of({}, make(system, tools, 1), dialect)
    assert main is not None and sub is not None and main != sub
    assert thread_of({}, make(system, tools, 4), dialect) == sub


@pytest.mark.parametrize("change", [
    lambda b: b["system"].__setitem__(0, {"type": "text", "text": "x-anthropic-billing-header: cc_version=9;"}),
    lambda b: b["system"][1].pop("cache_control"),
    lambda b: b.__setitem__("model", "claude-opus-4-8-20261101"),
    lambda b: b.__setitem__("max_tokens", 9),
], ids=["billing-block", "cache-control", "dated-model", "other-field"])
def test_what_a_cache_ignores_keeps_the_lineage(change) -> None:  # type: ignore[no-untyped-def]
    body = main_agent()
    changed = copy.deepcopy(body)
    change(changed)
    assert lineage(changed, Dialect.ANTHROPIC, changed["model"]) == lineage(body, Dialect.ANTHROPIC, body["model"])


@pytest.mark.parametrize("change", [
    lambda b: b.__setitem__("model", "claude-haiku-4-5"),  # a side call on another model: its own cache
    lambda b: b["tools"].pop(),
    lambda b: b["system"][1].__setitem__("text", "You are Claude Code, v2."),
    lambda b: b["messages"][0].__setitem__("content", "Summary of the conversation so far: ..."),  # compaction
], ids=["model", "tools", "system", "first-user-message"])
def test_what_a_cache_keys_on_starts_another_lineage(change) -> None:  # type: ignore[no-untyped-def]
    body = main_agent()
    changed = copy.deepcopy(body)
    change(changed)
    assert lineage(changed, Dialect.ANTHROPIC, changed["model"]) != lineage(body, Dialect.ANTHROPIC, body["model"])


@pytest.mark.parametrize(("headers", "expected"), [
    ({"x-claude-code-agent-id": "agent-7", "x-claude-code-parent-agent-id": "agent-1"},
     Thread("agent-7", "header:x-claude-code-agent-id", "agent-1")),
    ({"Thread-Id": "019a7c3e-5b21", "x-codex-parent-thread-id": "019a7c3e-0000"},
     Thread("019a7c3e-5b21", "header:thread-id", "019a7c3e-0000")),
    ({"x-claude-code-agent-id": "bad id", "thread-id": "t1"}, Thread("t1", "header:thread-id")),
])
def test_a_thread_the_client_names_wins(headers: dict[str, str], expected: Thread) -> None:
    assert thread_of(headers, main_agent(), Dialect.ANTHROPIC) == expected
    assert thread_of(headers, None, Dialect.ANTHROPIC) == expected


def test_opencode_names_the_parent_session_of_a_child_session() -> None:
    thread = thread_of({"x-parent-session-id": "ses_parent"}, main_agent(), Dialect.ANTHROPIC)
    assert thread is not None and (thread.source, thread.parent) == ("lineage", "ses_parent")


def test_without_a_body_or_a_thread_header_the_ledger_decides() -> None:
    assert thread_of({"x-session-id": "s"}, None, Dialect.ANTHROPIC) is None


@pytest.mark.parametrize(("dialect", "body", "expected"), [
    (Dialect.ANTHROPIC, main_agent(1), Position.START),
    (Dialect.ANTHROPIC, main_agent(2), Position.CONTINUATION),
    (Dialect.ANTHROPIC, {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "{"}]},
     Position.START),  # a prefill is part of the first request
    (Dialect.ANTHROPIC, {"messages": "nonsense"}, None),
    (Dialect.BEDROCK_CONVERSE, {"messages": [{"role": "user"}, {"role": "assistant"}, {"role": "user"}]},
     Position.CONTINUATION),
    (Dialect.BEDROCK_INVOKE, {"anthropic_version": INVOKE_VERSION, "messages": [{"role": "user", "content": "u"}]},
     Position.START),
    (Dialect.BEDROCK_INVOKE, {"anthropic_version": INVOKE_VERSION,
                              "messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"},
                                           {"role": "user", "content": [{"type": "tool_result", "content": "o"}]}]},
     Position.CONTINUATION),
    (Dialect.OPENAI_CHAT, {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]},
     Position.START),
    (Dialect.OPENAI_CHAT, {"messages": [{"role": "user"}, {"role": "assistant", "tool_calls": []},
                                        {"role": "tool", "content": "out"}]}, Position.CONTINUATION),
    (Dialect.OPENAI_RESPONSES, {"input": "Fix it."}, Position.START),
    (Dialect.OPENAI_RESPONSES, {"input": [{"role": "user", "content": "Fix it."}]}, Position.START),
    (Dialect.OPENAI_RESPONSES, {"input": [{"role": "user", "content": "x"}, {"type": "function_call", "name": "f"},
                                          {"type": "function_call_output", "output": "o"}]}, Position.CONTINUATION),
    (Dialect.OPENAI_RESPONSES, {"previous_response_id": "resp_1", "input": [{"role": "user", "content": "Now?"}]},
     Position.CONTINUATION),
    (Dialect.GEMINI, {"contents": [{"role": "user", "parts": []}]}, Position.START),
    (Dialect.GEMINI, {"contents": [{"role": "user"}, {"role": "model"}, {"role": "user"}]}, Position.CONTINUATION),
])
def test_position_is_read_from_the_request(dialect: Dialect, body: dict, expected: Position | None) -> None:
    assert position_of(body, dialect) is expected


def test_no_body_no_position() -> None:
    assert position_of(None, Dialect.ANTHROPIC) is None


@pytest.mark.parametrize(("model", "family"), [
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"), ("Claude-Sonnet-4-5", "claude-sonnet-4-5"),
    ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"), ("claude-opus-4-1@20250805", "claude-opus-4-1"),
    ("gpt-5", "gpt-5"), (None, ""),
])
def test_model_family(model: str | None, family: str) -> None:
    assert model_family(model) == family


def test_amps_thread_id_names_the_session_not_a_thread() -> None:
    """Amp's sub-agents and side calls share its thread id: each is a thread of that session by lineage."""
    assert thread_of({"x-amp-thread-id": "T-42"}, main_agent(), Dialect.ANTHROPIC) == \
        thread_of({}, main_agent(), Dialect.ANTHROPIC)


def test_a_responses_conversation_object_is_the_thread() -> None:
    """Each request adds only its new input to the conversation: the lineage would change every turn."""
    for conversation in ("conv_123", {"id": "conv_123"}):
        body = {"model": "gpt-5", "conversation": conversation, "input": "Next step."}
        assert thread_of({}, body, Dialect.OPENAI_RESPONSES) == Thread("conv_123", "body:conversation")


def test_a_body_nested_deeper_than_python_recurses_falls_back_to_the_model() -> None:
    nested: list = []
    for _ in range(5000):
        nested = [nested]
    body = {"model": "m", "tools": nested, "messages": [{"role": "user", "content": "x"}]}
    assert thread_of({}, body, Dialect.ANTHROPIC) is None
