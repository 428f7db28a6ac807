"""The conversations the harness holds: which API and model, how many turns, and their system prompts.

Conversations are built to be cacheable on every real model too: a system
prompt of about ``SYSTEM_TOKENS`` estimated tokens (above the 4096-token
minimum of the strictest models) with a ``cache_control`` breakpoint.
Each run puts a random nonce into the system prompts, so caches left by an
earlier run can never make a run look warm.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from cachepin.request.tokens import estimate_tokens

PROVIDERS = ("anthropic", "openai")
DEFAULT_MODELS = {"anthropic": "claude-sonnet-4-6", "openai": "gpt-5.1"}
SYSTEM_TOKENS = 4300  # estimated; real tokenizers count more, so this clears even a 4096-token minimum

_REFERENCE = (
    "Answers are read by an automated check, so keep each one to a single plain sentence.",
    "This reference text is long on purpose: it is the cacheable prefix of every request in the check.",
    "Nothing in this reference needs to be quoted, summarised or mentioned in an answer.",
    "If a question is ambiguous, pick the simplest reading and answer it briefly.",
    "Write numbers as digits and spell out units.",
    "Do not use lists, headings, code blocks or emphasis in answers.",
    "Prefer common knowledge, and never ask a follow-up question.",
)
QUESTIONS = (
    "Name one prime number between 10 and 20.",
    "How many days does a leap year have?",
    "Name a planet that has rings.",
    "At what temperature in Celsius does water boil at sea level?",
    "Name a language spoken in Brazil.",
    "How many sides does a hexagon have?",
    "Name a metal that is liquid at room temperature.",
)


@dataclass(frozen=True, slots=True)
class Conversation:
    """One scripted conversation: which API and model, how many turns, and its own system prompt."""

    label: str
    provider: str
    model: str
    turns: int
    system: str


def conversations(specs: Sequence[tuple[str, str, str]], turns: int) -> list[Conversation]:
    """Conversations for ``(label, provider, model)`` specs, with system prompts unique to this run."""
    nonce = secrets.token_hex(4)
    return [Conversation(label, provider, model, turns, system_prompt(label, nonce))
            for label, provider, model in specs]


def system_prompt(label: str, nonce: str) -> str:
    """A harmless instruction plus reference lines up to ``SYSTEM_TOKENS``; label and nonce come first,
    so no two conversations (or runs) share a cacheable prefix."""
    lines = [
        f"You are the assistant in a cachepin prompt-cache check ({label}, run {nonce}). "
        "Answer every question in one short sentence.",
        "",
    ]
    number = 0
    while estimate_tokens("\n".join(lines)) < SYSTEM_TOKENS:
        lines.append(f"Reference line {number + 1}: {_REFERENCE[number % len(_REFERENCE)]}")
        number += 1
    return "\n".join(lines)
