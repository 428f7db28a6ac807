"""Claude Code's traffic with a sub-agent, played by the Anthropic SDK: the same ``X-Claude-Code-Session-Id`` on
every request (the sub-agent reuses the parent's), the sub-agent with its own system prompt and tools, the two
conversations interleaved."""

from __future__ import annotations

from collections.abc import Callable

import anthropic

SESSION = "5f0c2d9e-8a41-4b7e-9c3d-1e2f3a4b5c6d"
MODEL = "claude-sonnet-4-6"
MAIN_SYSTEM = "You are a coding agent working in a large Python repository. Read before you edit. " * 30
SUB_SYSTEM = "You are a search agent: find code, report paths and line numbers, change nothing. " * 30
TOOLS = [{"name": name, "description": f"The {name} tool.", "input_schema": {"type": "object"}}
         for name in ("Read", "Edit", "Bash", "Agent")]


class Conversation:
    """One thread of Claude Code's traffic: its system prompt, tools and growing history."""

    def __init__(self, system: str, tools: list[dict], task: str) -> None:
        self.system, self.tools = system, tools
        self.messages: list[dict] = [{"role": "user", "content": task}]

    def turn(self, client: anthropic.Anthropic, next_input: str) -> None:
        """The next request, through ``client`` (one proxy or another: the conversation is the client's)."""
        system = [{"type": "text", "text": self.system, "cache_control": {"type": "ephemeral"}}]
        reply = client.messages.create(model=MODEL, max_tokens=32, system=system, tools=self.tools,
                                            messages=self.messages)
        self.messages += [{"role": "assistant", "content": reply.content[0].text},
                          {"role": "user", "content": next_input}]


def claude_code_with_a_sub_agent(*urls: str, route: Callable[[int], str] | None = None) -> None:
    """Seven turns (main 1, 2, 4, 7; sub-agent 3, 5, 6); turn n (from 0) goes through ``urls[n % len(urls)]``:
    one proxy, or replicas behind a load balancer that spreads requests, or where ``route(n)`` says."""
    where = route or (lambda n: urls[n % len(urls)])
    main = Conversation(MAIN_SYSTEM, TOOLS, "The test suite fails on CI; find out why.")
    sub = Conversation(SUB_SYSTEM, TOOLS[:1], "Find where the flaky fixture is defined.")
    turns = [(main, "Start a search agent."), (main, "Wait for it."), (sub, "Keep looking in tests/."),
             (main, "Still waiting."), (sub, "Report."), (sub, "Done."), (main, "Fix it.")]
    for n, (conversation, next_input) in enumerate(turns):
        with anthropic.Anthropic(base_url=where(n), api_key="sk-ant-test", max_retries=0,
                                 default_headers={"X-Claude-Code-Session-Id": SESSION}) as client:
            conversation.turn(client, next_input)
