"""Request bodies shaped like coding agents' conversations, shared by the tests of several modules."""

from __future__ import annotations

SONNET = "claude-sonnet-4-5-20250929"
SECRET = "SECRETWORD"  # in every prompt text: must never reach a snapshot or evidence

Body = dict


def tool_conversation(turns: int, breakpoint_on_last: bool = True) -> dict:
    """An Anthropic body after ``turns`` tool calls, each answered by a result full of escapes; the
    breakpoint on the last block, as Claude Code places it."""
    messages: list[dict] = []
    for i in range(turns):
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": f"output {i}\n\"quoted\" → ü"}]})
        messages.append({"role": "assistant", "content": [
            {"type": "text", "text": f"answer {i}"},
            {"type": "tool_use", "id": f"toolu_{i + 1}", "name": "Read", "input": {"path": f"f{i}.py", "n": i}}]})
    if breakpoint_on_last:
        messages[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    return {"model": "claude-sonnet-4-5", "system": [{"type": "text", "text": "Be brief."}],
            "tools": [{"name": "Read", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}],
            "messages": messages}


def _marker(ttl: str | None) -> dict:
    return {"type": "ephemeral", "ttl": ttl} if ttl else {"type": "ephemeral"}


def anthropic_body(
    turn: int,
    *,
    model: str = SONNET,
    instructions: int = 60,
    marked: bool = True,
    ttl: str | None = None,
    system_ttl: str | None = None,
    automatic: dict | None = None,
) -> Body:
    """A Claude-Code-like request at ``turn`` (1-based): tools, two system blocks, growing messages.

    Breakpoints sit on the last system block and on the last user message, as
    Claude Code places them; ``instructions`` scales the system prompt.
    """
    tools = [
        {
            "name": f"tool_{i}",
            "description": f"{SECRET} tool {i} reads and edits files in the workspace. " * 4,
            "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
        }
        for i in range(3)
    ]
    system = [
        {"type": "text", "text": f"You are a coding agent. {SECRET}"},
        {"type": "text", "text": f"{SECRET} Follow the project's conventions and keep diffs small. " * instructions},
    ]
    messages: list[dict] = []
    for i in range(turn):
        if i:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": f"{SECRET} answer {i}. " * 30}]})
        messages.append({"role": "user", "content": [{"type": "text", "text": f"{SECRET} question {i}? " * 30}]})
    if marked:
        system[-1]["cache_control"] = _marker(system_ttl or ttl)
        messages[-1]["content"][-1]["cache_control"] = _marker(ttl)
    body: Body = {"model": model, "max_tokens": 4096, "tools": tools, "system": system, "messages": messages}
    if automatic is not None:
        body["cache_control"] = automatic
    return body


def openai_body(turn: int, *, model: str = "gpt-4o", instructions: int = 120, **extra: object) -> Body:
    rules = f"{SECRET} You review pull requests carefully. " * instructions
    messages: list[dict] = [{"role": "system", "content": rules}]
    for i in range(turn):
        if i:
            messages.append({"role": "assistant", "content": f"{SECRET} answer {i}. " * 30})
        messages.append({"role": "user", "content": f"{SECRET} question {i}? " * 30})
    return {"model": model, "messages": messages, **extra}
