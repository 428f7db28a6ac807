"""What one turn says about the cache, and how a failed expectation is worded.

A turn that read from the cache is a hit; the turn that opens its thread
(``ledger.Ledger.record`` says when) is cold, since it has to write; any
other turn that read nothing is a miss.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from cachepin.response.usage import Usage
from cachepin.turns.turn import Turn, Verdict

_SHORT_ID = 12


class Expect(enum.StrEnum):
    OFF = "off"
    WARM = "warm"  # every successful turn that does not open its thread must hit


@dataclass(slots=True, frozen=True)
class Failure:
    """A failed expectation; it keeps the full session id because the message only has a short one."""

    session_id: str
    turn: int | None  # None for a judgement over the whole session (min_hit)
    message: str


def short_id(session_id: str) -> str:
    """Session ids are long (UUIDs, hashes); 12 characters tell them apart in logs and tables."""
    return session_id if len(session_id) <= _SHORT_ID else session_id[:_SHORT_ID] + "…"


def verdict_for(*, status: int, error: str | None, usage: Usage | None, first: bool) -> Verdict:
    """The verdict of one response; ``first``: no successful turn of its session came before."""
    if status >= 400 or error is not None:
        return Verdict.ERROR
    if usage is None or usage.cache_read_input_tokens is None:
        return Verdict.NONE
    if usage.cache_read_input_tokens > 0:
        return Verdict.HIT
    return Verdict.COLD if first else Verdict.MISS


def figure_text(value: int | None) -> str:
    return "-" if value is None else str(value)


def warm_failure(session_id: str, turn: Turn, thread_named: bool = True) -> Failure:
    """``thread_named``: the thread has a name of its own (not one per model, for lack of a body)."""
    thread = f" (thread {short_id(turn.thread)})" if turn.thread and thread_named else ""
    continues = ", which continues a conversation" if turn.position == "continuation" else ""
    where = f"session {short_id(session_id)} turn {turn.index}{thread}{continues}: expected a cache hit"
    if turn.verdict is Verdict.NONE:
        message = f"{where}, but the provider reports no cache figures (model {turn.model or '-'})"
    else:
        message = (
            f"{where}, read {figure_text(turn.cache_read_input_tokens)} "
            f"(creation {figure_text(turn.cache_creation_input_tokens)}, input {figure_text(turn.input_tokens)})"
        )
    return Failure(session_id, turn.index, message)
