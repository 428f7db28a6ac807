"""Whether the provider's own diagnosis of a turn agrees with cachepin's reason, and how often (docs/reports.md).

cachepin names a miss from the outside (``explain.Reason``, from text-free
snapshots of the requests); Anthropic and OpenAI, when asked, name it from the
inside (``response/diagnostics.py``). The two vocabularies answer different
questions: the provider's says what in the request changed against the one it
was compared with, cachepin's says why the read fell short, request change or
not. So each provider type maps to the cachepin reasons that tell the same
story (the table in docs/reports.md, "Provider diagnoses"):

- a change in one part of the prompt (``tools_changed``, ``system_changed``,
  ``messages_changed``; OpenAI's ``input_changed``, ``context_compacted``) is a
  ``prefix_changed``, and the same location when cachepin's path lies in that
  part (``tools[..]``, ``system[..]``, ``messages[..]``; ``instructions``,
  ``input[..]``);
- ``model_changed`` is a continuation that opened a thread, which is how
  cachepin sees a model switch (a cache is per model);
- Anthropic's ``no_divergence`` (the request matched) agrees with anything
  but a change: a hit, and every miss the request itself did not cause (TTL,
  routing, minimum, markers); OpenAI's ``cache_hit`` only with a turn
  cachepin found nothing to explain in;
- ``prompt_cache_key_changed`` is routing; OpenAI's setting changes
  (service tier, text format, reasoning effort, verbosity) are invisible to
  cachepin's snapshot, so only its ``unknown`` agrees;
- the answers that compared nothing (``opted_in``, ``pending``,
  ``previous_message_not_found``, ``comparison_response_not_found``,
  ``unavailable``), a type cachepin does not know, and a miss cachepin had
  nothing to compare with are inconclusive.

A turn that opened its thread at a conversation's start was compared with
nothing on either side (Anthropic's answer to its opting-in ``null`` is
``opted_in``): it is not judged at all.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple

from cachepin.response.diagnostics import NO_DIVERGENCE, OPTED_IN, PENDING
from cachepin.turns.explain import Reason
from cachepin.turns.turn import Turn, Verdict

NEW_THREAD = "new_thread"
"""cachepin's view of a continuation that opened a thread: the client switched model (or started a branch)."""
NOTHING = "none"
"""cachepin found nothing to explain: a hit, or a read that was not clearly short."""
UNEXPLAINED = "unexplained"
"""A miss cachepin had no earlier request to compare with (a restart, the explainer off)."""

_PARTS: dict[str, tuple[str, ...]] = {  # a change in one part of the prompt: where cachepin's path must point
    "tools_changed": ("tools",),
    "system_changed": ("system",),
    "messages_changed": ("messages",),
    "input_changed": ("instructions", "input"),
    "context_compacted": ("input",),
}
_REQUEST_UNCHANGED = frozenset({NOTHING, Reason.TTL_EXPIRED, Reason.ROUTING, Reason.BELOW_MINIMUM,
                                Reason.NO_BREAKPOINT, Reason.UNKNOWN})
_AGREEING: dict[str, frozenset[str]] = {
    "model_changed": frozenset({NEW_THREAD}),
    NO_DIVERGENCE: _REQUEST_UNCHANGED,
    "cache_hit": frozenset({NOTHING}),
    "prompt_cache_key_changed": frozenset({Reason.ROUTING}),
    **dict.fromkeys(("service_tier_changed", "text_format_changed", "reasoning_effort_changed", "verbosity_changed"),
                    frozenset({Reason.UNKNOWN})),
}
_NOT_COMPARED = frozenset({OPTED_IN, PENDING, "previous_message_not_found", "comparison_response_not_found",
                           "unavailable"})
MAX_REASONS = 32  # distinct provider types counted one by one; more (an upstream inventing them) count as "other"


class Judgement(enum.StrEnum):
    AGREE = "agree"
    DISAGREE = "disagree"
    INCONCLUSIVE = "inconclusive"


class Comparison(NamedTuple):
    judgement: Judgement
    cachepin: str  # cachepin's reason, or NEW_THREAD, NOTHING, UNEXPLAINED
    same_location: bool | None  # for a change in one part of the prompt: whether cachepin's path is in it


def cachepin_view(turn: Turn) -> tuple[str, str | None]:
    """cachepin's reason for a turn, and the part of the prompt its path names (for a ``prefix_changed``)."""
    if turn.miss is not None:
        path = turn.miss.evidence.get("path")
        part = path.split("[", 1)[0].split(".", 1)[0] if isinstance(path, str) else None
        return turn.miss.reason.value, part
    if turn.opens:
        return NEW_THREAD, None
    return (UNEXPLAINED if turn.verdict is Verdict.MISS else NOTHING), None


def compare(turn: Turn) -> Comparison | None:
    """The provider's diagnosis of ``turn`` against cachepin's reason; None when there is nothing to judge (no
    diagnosis, an error turn, or a turn that opened its thread at a conversation's start)."""
    diagnosis = turn.provider_diagnosis
    if diagnosis is None or not turn.ok or (turn.opens and turn.position != "continuation"):
        return None
    ours, part = cachepin_view(turn)
    reason = diagnosis.reason
    if reason in _NOT_COMPARED or ours == UNEXPLAINED:
        return Comparison(Judgement.INCONCLUSIVE, ours, None)
    if reason in _PARTS:
        agrees = ours == Reason.PREFIX_CHANGED or (reason == "messages_changed" and ours == NEW_THREAD)
        return Comparison(Judgement.AGREE if agrees else Judgement.DISAGREE, ours,
                          agrees and part in _PARTS[reason])
    agreeing = _AGREEING.get(reason)
    if agreeing is None:
        return Comparison(Judgement.INCONCLUSIVE, ours, None)
    return Comparison(Judgement.AGREE if ours in agreeing else Judgement.DISAGREE, ours, None)


@dataclass(slots=True)
class _Tally:
    """The counts of one provider type."""

    agree: int = 0
    disagree: int = 0
    inconclusive: int = 0
    same_location: int | None = None  # counted for the types that name a part of the prompt
    cachepin: dict[str, int] = field(default_factory=dict)  # what cachepin said of those turns, by reason

    def add(self, compared: Comparison) -> None:
        judgement = compared.judgement.value
        setattr(self, judgement, getattr(self, judgement) + 1)
        if compared.same_location is not None:
            self.same_location = (self.same_location or 0) + compared.same_location
        self.cachepin[compared.cachepin] = self.cachepin.get(compared.cachepin, 0) + 1

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"agree": self.agree, "disagree": self.disagree, "inconclusive": self.inconclusive}
        if self.same_location is not None:
            out["same_location"] = self.same_location
        return out | {"cachepin": dict(sorted(self.cachepin.items()))}


@dataclass(slots=True)
class Agreement:
    """Running counts over a run's judged turns, evicted sessions included: the report's ``totals.diagnostics``."""

    overall: _Tally = field(default_factory=_Tally)
    by_reason: dict[str, _Tally] = field(default_factory=dict)  # by the provider's type

    def add(self, turn: Turn) -> None:
        compared = compare(turn)
        if compared is None or turn.provider_diagnosis is None:
            return
        reason = turn.provider_diagnosis.reason
        if reason not in self.by_reason and len(self.by_reason) >= MAX_REASONS:
            reason = "other"
        self.overall.add(compared)
        self.by_reason.setdefault(reason, _Tally()).add(compared)

    def __bool__(self) -> bool:
        """Whether any turn was judged: the report has ``totals.diagnostics`` only then."""
        return bool(self.by_reason)

    def as_dict(self) -> dict[str, object]:
        overall = self.overall
        return {"agree": overall.agree, "disagree": overall.disagree, "inconclusive": overall.inconclusive,
                "by_reason": {reason: self.by_reason[reason].as_dict() for reason in sorted(self.by_reason)}}
