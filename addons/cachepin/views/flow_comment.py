"""The flow's comment in mitmweb: one line that says at a glance how the turn went.

mitmweb's flow list shows the comment's first characters, so the line leads
with the verdict and the figures, and says the session once: the inject
addon's own note (written when the request left, before any verdict) is
replaced by the turn's line, which repeats nothing of it but its words.
"""

from __future__ import annotations

import re

from cachepin.turns.turn import Turn, Verdict
from cachepin.turns.verdicts import short_id
from cachepin.views.text import count, error_kind

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
SEPARATOR = " · "


def inject_note(session_id: str, source: str) -> str:
    """What the inject addon writes when it pins a flow: all mitmweb shows before the response."""
    return f"cachepin: session {session_id} ({source})"


def turn_comment(session_id: str, source: str, turn: Turn) -> str:
    """``hit · read 17,354 · wrote 1,641 · uncached 12 · turn 3 · thread main · session ab12… (header)``,
    then the status and error of an error turn, the miss reason of a miss: one line, whatever the wire sent."""
    parts = [turn.verdict.value]
    if turn.verdict is Verdict.ERROR:
        kind = error_kind(turn.error)
        parts.append(f"status {turn.status}" + (f" {kind}" if kind else ""))
    else:
        parts += [f"read {count(turn.cache_read_input_tokens)}", f"wrote {count(turn.cache_creation_input_tokens)}",
                  f"uncached {count(turn.input_tokens)}"]
    parts.append(f"turn {turn.index}")
    if turn.thread:
        parts.append(f"thread {short_id(turn.thread)}")
    parts.append(f"session {short_id(session_id)} ({source})")
    if turn.miss is not None:
        parts.append(f"{turn.miss.reason.value}: {turn.miss.detail}")
    if turn.provider_diagnosis is not None:
        parts.append(f"provider: {turn.provider_diagnosis.reason}")
    return _CONTROL.sub(" ", SEPARATOR.join(parts))


def with_turn(comment: str, note: str, pinned: str | None) -> str:
    """``comment`` (what the flow said before its turn) with the inject addon's note ``pinned`` taken out and the
    turn's ``note`` after it; every other line (a person's, another addon's) is kept."""
    lines = [line for line in comment.split("\n") if line and line != pinned] if comment else []
    return "\n".join([*lines, note])
