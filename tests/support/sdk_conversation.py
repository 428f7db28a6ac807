"""Conversations driven through the official SDKs, as a user's code drives them: one per API the addons read.

``kind`` names the API: "anthropic" (Messages, with ``anthropic.Anthropic``),
"chat" (Chat Completions) or "responses" (Responses, both with
``openai.OpenAI``). Each turn resends the whole history, streamed or not,
with the same system prompt, so the end-to-end tests see what real clients send.
"""

from __future__ import annotations

from typing import Any

SYSTEM = "You are a careful assistant that answers in one sentence."
KINDS = ("anthropic", "chat", "responses")


def ask(client: Any, kind: str, stream: bool, history: list[dict], text: str) -> str:
    """One turn: ``text`` as the user's next message after ``history``; the reply is added to it and returned."""
    history.append({"role": "user", "content": text})
    if kind == "anthropic":
        if stream:
            with client.messages.stream(model="claude-sonnet-4-6", max_tokens=64, system=SYSTEM,
                                        messages=history) as events:
                reply = events.get_final_text()
        else:
            reply = client.messages.create(model="claude-sonnet-4-6", max_tokens=64, system=SYSTEM,
                                           messages=history).content[0].text
    elif kind == "chat":
        messages = [{"role": "system", "content": SYSTEM}, *history]
        if stream:
            chunks = client.chat.completions.create(model="gpt-5", messages=messages, stream=True,
                                                    stream_options={"include_usage": True})
            reply = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            reply = client.chat.completions.create(model="gpt-5", messages=messages).choices[0].message.content
    else:
        if stream:
            events = client.responses.create(model="gpt-5", instructions=SYSTEM, input=history, stream=True)
            reply = " ".join(e.delta for e in events if e.type == "response.output_text.delta")
        else:
            reply = client.responses.create(model="gpt-5", instructions=SYSTEM, input=history).output_text
    history.append({"role": "assistant", "content": reply})
    return reply


def turn_text(index: int, first: str) -> str:
    """What the user says at turn ``index``: ``first``, then a follow-up question that names the turn."""
    return first if index == 0 else f"and then {index}?"


def converse(client: Any, kind: str, first: str, turns: int, stream: bool) -> list[str]:
    """A conversation of ``turns`` turns that opens with ``first``; returns the replies."""
    history: list[dict] = []
    return [ask(client, kind, stream, history, turn_text(index, first)) for index in range(turns)]
