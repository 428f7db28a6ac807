"""The parts of the audit's JSON report that the harness commands print and judge."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cachepin_tools.harness.command import RunError


@dataclass(frozen=True, slots=True)
class TurnResult:
    verdict: str
    read: int | None  # cache_read_input_tokens
    prompt: int  # input + creation + read: what a hit ratio divides by
    reason: str | None  # the explainer's reason for a miss or partial hit
    detail: str | None


@dataclass(frozen=True, slots=True)
class SessionResult:
    session_id: str
    source: str
    turns: tuple[TurnResult, ...]
    hit_ratio: float | None
    cost: Mapping[str, float] | None
    failures: tuple[str, ...]

    @property
    def later(self) -> list[TurnResult]:
        """Successful turns after the session's first: the ones that should hit. The commands hold one
        conversation (one thread) per session, so these are the turns ``cache_min_hit`` judges."""
        ok = [turn for turn in self.turns if turn.verdict != "error"]
        return ok[1:]

    @property
    def later_ratio(self) -> float | None:
        """The token-weighted hit ratio of the later turns: what ``cache_min_hit`` judges."""
        judged = [turn for turn in self.later if turn.read is not None]
        prompt = sum(turn.prompt for turn in judged)
        return sum(turn.read or 0 for turn in judged) / prompt if prompt else None


@dataclass(frozen=True, slots=True)
class Report:
    """The parts of the audit's JSON report (``cachepin/views/report.py``, version 1) the commands print."""

    ok: bool
    requests: int
    hit_ratio: float | None
    cost: Mapping[str, float] | None
    sessions: tuple[SessionResult, ...]

    @classmethod
    def load(cls, path: Path) -> Report:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise RunError(f"cannot read the audit's report {path}: {error}") from None
        sessions = tuple(
            SessionResult(
                session["session_id"], session["source"],
                tuple(_turn(turn) for turn in session["turns"]),
                session["hit_ratio"], session["cost"], tuple(session["failures"]),
            )
            for session in data["sessions"]
        )
        totals = data["totals"]
        return cls(data["ok"], totals["requests"], totals["hit_ratio"], totals["cost"], sessions)

    @property
    def later_hits(self) -> tuple[int, int]:
        """(hits, turns) over every session's turns after its first."""
        later = [turn for session in self.sessions for turn in session.later]
        return sum(turn.verdict == "hit" for turn in later), len(later)

    @property
    def reasons(self) -> Counter[str]:
        return Counter(turn.reason for session in self.sessions for turn in session.turns if turn.reason)

    def example(self, reason: str) -> str:
        """The detail of the first turn explained by ``reason``."""
        return next(t.detail or "" for s in self.sessions for t in s.turns if t.reason == reason)


_PROMPT_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def _turn(turn: Mapping[str, Any]) -> TurnResult:
    """A report turn (JSON as the audit wrote it: docs/reports.md)."""
    miss = (turn.get("notes") or {}).get("miss") or {}
    read = turn["cache_read_input_tokens"]
    prompt = sum(turn[field] or 0 for field in _PROMPT_FIELDS)
    return TurnResult(str(turn["verdict"]), read, prompt, miss.get("reason"), miss.get("detail"))
