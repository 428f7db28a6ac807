"""One LLM response as the ledger keeps it: its figures, its verdict and why it missed.

Only counts, ids, models and timings: no prompt or response text ever reaches
a turn, so none can leak from the outputs built on it.
"""

from __future__ import annotations

import enum
import uuid

from cachepin.response.diagnostics import Diagnosis
from cachepin.response.usage import COUNT_FIELDS, SPLIT_FIELDS, Usage
from cachepin.turns.explain import Explanation
from cachepin.turns.packing import COUNTS, NO_COUNT, Figure, pack, pack_flow_id


class Verdict(enum.StrEnum):
    HIT = "hit"  # read something from the cache
    COLD = "cold"  # first successful turn of its session, read nothing
    MISS = "miss"  # a later successful turn that read nothing
    NONE = "none"  # the provider reports no cache figures
    ERROR = "error"  # status >= 400 or a broken stream: kept, but never counted


class _Note[T: (Explanation, Diagnosis)]:
    """One of a turn's two notes, read and set as an attribute; both share the turn's one ``_notes`` slot."""

    def __init__(self, kind: type[T], place: int) -> None:
        self._kind: type[T] = kind
        self._place = place  # in the pair, when the turn has both

    def __get__(self, turn: Turn | None, owner: type | None = None) -> T | None:
        if turn is None:
            return self  # type: ignore[return-value]  # the class attribute itself
        notes = turn._notes
        return notes[self._place] if type(notes) is tuple else notes if isinstance(notes, self._kind) else None

    def __set__(self, turn: Turn, note: T | None) -> None:
        pair: list[Explanation | Diagnosis | None] = [turn.miss, turn.provider_diagnosis]
        pair[self._place] = note
        turn._notes = _notes(*pair)  # type: ignore[arg-type]  # pair[place] is a note of this kind


class Turn:
    """One response. Mutable only so that the explainer can attach ``miss`` (and the audit the provider's own
    diagnosis, ``provider_diagnosis``) after the verdict.

    A ledger holds max_sessions sessions of these for days, so a turn packs its
    numbers (``packing.pack``) and its flow id (``packing.pack_flow_id``): about
    270 bytes instead of 420. They read as attributes all the same.
    """

    __slots__ = ("index", "_flow_id", "status", "stream", "verdict", "provider", "model", "requested_model",
                 "error", "_notes", "thread", "position", "opens", "_figures")

    input_tokens = Figure[int](0)
    cache_creation_input_tokens = Figure[int](1)
    cache_read_input_tokens = Figure[int](2)
    output_tokens = Figure[int](3)
    cache_creation_5m = Figure[int](4)
    cache_creation_1h = Figure[int](5)
    started_at = Figure[float](6)  # unix seconds
    ttft_ms = Figure[float](7)
    duration_ms = Figure[float](8)
    miss = _Note(Explanation, 0)  # why a miss or partial hit read less than expected (explain.py)
    provider_diagnosis = _Note(Diagnosis, 1)  # the provider's own reason, when its response gave one (diagnostics.py)

    def __init__(
        self,
        *,
        index: int,  # 1-based within the session, error turns included
        flow_id: str,
        started_at: float,
        status: int,
        stream: bool,
        verdict: Verdict,
        provider: str | None = None,
        model: str | None = None,  # as the response names it (what served the turn)
        requested_model: str | None = None,  # as the request names it
        input_tokens: int | None = None,
        cache_creation_input_tokens: int | None = None,
        cache_read_input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_creation_5m: int | None = None,
        cache_creation_1h: int | None = None,
        ttft_ms: float | None = None,
        duration_ms: float | None = None,
        error: str | None = None,
        miss: Explanation | None = None,  # why a miss or partial hit read less than expected
        thread: str | None = None,  # the thread of its session (request/thread.py)
        position: str | None = None,  # "start" or "continuation", as the request showed; None: unknown
        opens: bool = False,  # the first successful turn of its thread, which has to write the cache
        provider_diagnosis: Diagnosis | None = None,  # the provider's own reason, when asked (cache_diagnostics)
    ) -> None:
        self.index = index
        self._flow_id = pack_flow_id(flow_id)
        self.status = status
        self.stream = stream
        self.verdict = verdict
        self.provider = provider
        self.model = model
        self.requested_model = requested_model
        self.error = error
        self._notes = _notes(miss, provider_diagnosis)
        self.thread = thread
        self.position = position
        self.opens = opens
        self._figures = pack(
            (input_tokens, cache_creation_input_tokens, cache_read_input_tokens, output_tokens, cache_creation_5m,
             cache_creation_1h),
            (started_at, ttft_ms, duration_ms),
        )

    @property
    def flow_id(self) -> str:
        flow_id = self._flow_id
        return str(uuid.UUID(bytes=flow_id)) if isinstance(flow_id, bytes) else flow_id

    def _fields(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in _TURN_FIELDS}

    def __repr__(self) -> str:
        return "Turn(" + ", ".join(f"{name}={value!r}" for name, value in self._fields().items()) + ")"

    def __eq__(self, other: object) -> bool:
        return self._fields() == other._fields() if isinstance(other, Turn) else NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable (notes), like the dataclass it replaces

    @property
    def ok(self) -> bool:
        """Successful: only these count in totals and expectations."""
        return self.verdict is not Verdict.ERROR

    @property
    def cache_key(self) -> str | None:
        """Which cache the turn used: one per model, named as the client names it."""
        return self.requested_model or self.model

    def usage(self) -> Usage:
        """The turn's figures as a Usage again, for pricing: cost is derived, never stored per turn."""
        return Usage(self.provider or "", self.model, *self.counts())

    def counts(self) -> tuple[int | None, ...]:
        """The four counts of ``COUNT_FIELDS``, then the 5 min and 1 h creation split: one unpack, not six."""
        figures = self._figures
        if isinstance(figures, tuple):
            return figures[:6]
        return tuple(None if value == NO_COUNT else value for value in COUNTS.unpack_from(figures))


def _notes(miss: Explanation | None, diagnosis: Diagnosis | None) -> Explanation | Diagnosis | tuple | None:
    """Both notes in one slot, a pair only when there are both: most turns have neither, and every slot is paid by
    every turn of a ledger that holds 10,000 sessions (test_packing.py)."""
    if miss is None or diagnosis is None:
        return miss if diagnosis is None else diagnosis
    return miss, diagnosis


_TURN_FIELDS = ("index", "flow_id", "started_at", "status", "stream", "verdict", "provider", "model",
                "requested_model", *COUNT_FIELDS, *SPLIT_FIELDS, "ttft_ms",
                "duration_ms", "error", "miss", "thread", "position", "opens", "provider_diagnosis")
