"""The one INFO line per turn: greppable ``key=value`` pairs, never prompt text or a credential."""

from __future__ import annotations

import re

from cachepin.turns.turn import Turn, Verdict
from cachepin.turns.verdicts import short_id
from cachepin.views.text import error_kind, token

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def turn_log_line(session_id: str, turn: Turn) -> str:
    """The one-line INFO log of a turn, greppable as key=value; a miss reason last, on the same line
    whatever model name an upstream sent."""
    parts = [
        "cachepin",
        f"session={token(short_id(session_id))}",
        f"turn={turn.index}",
        *([f"thread={token(short_id(turn.thread))}"] if turn.thread else []),
        f"model={token(turn.model)}",
        f"verdict={turn.verdict.value}",
        f"read={token(turn.cache_read_input_tokens)}",
        f"creation={token(turn.cache_creation_input_tokens)}",
        f"input={token(turn.input_tokens)}",
        f"output={token(turn.output_tokens)}",
    ]
    if turn.ttft_ms is not None:
        parts.append(f"ttft_ms={turn.ttft_ms:.0f}")
    if turn.verdict is Verdict.ERROR:
        parts.append(f"status={turn.status}")
        kind = error_kind(turn.error)
        if kind:
            parts.append(f"error={kind}")
    if turn.provider_diagnosis is not None:
        parts.append(f"provider_reason={turn.provider_diagnosis.reason}")
    if turn.miss is not None:
        parts.append(_CONTROL.sub(" ", f"reason={turn.miss.reason.value} ({turn.miss.detail})"))
    return " ".join(parts)
