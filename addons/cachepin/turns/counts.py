"""Sums of turns' figures: what a session's or a run's hit ratio and cost are computed from."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields

from cachepin.turns.pricing import Cost
from cachepin.turns.turn import Turn, Verdict

Pricer = Callable[[Turn], Cost | None]


@dataclass(slots=True, kw_only=True)
class Counts:
    """Sums of the four counts over successful turns, plus what a hit ratio needs.

    A field stays ``None`` until some turn reports it, so "never reported"
    (n/a) is not confused with a reported zero.
    """

    input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    output_tokens: int | None = None
    requests: int = 0
    hits: int = 0
    misses: int = 0
    ratio_base: int = 0  # input + creation + read over the turns that report cache figures
    billed: float = 0.0  # USD over the priced turns
    uncached: float = 0.0  # what the priced turns would have cost without any caching
    priced: int = 0  # turns with a known price (unknown models are never guessed)

    def add(self, turn: Turn, cost: Cost | None = None) -> None:
        input_tokens, creation, read, output = turn.counts()[:4]
        self.input_tokens = _plus(self.input_tokens, input_tokens)
        self.cache_creation_input_tokens = _plus(self.cache_creation_input_tokens, creation)
        self.cache_read_input_tokens = _plus(self.cache_read_input_tokens, read)
        self.output_tokens = _plus(self.output_tokens, output)
        self.requests += 1
        self.hits += turn.verdict is Verdict.HIT
        self.misses += turn.verdict is Verdict.MISS
        if read is not None:
            # Only turns with cache figures weigh in: a turn that cannot say
            # what it read must not dilute the ratio of those that can.
            self.ratio_base += (input_tokens or 0) + (creation or 0) + read
        if cost is not None:
            self.billed += cost.billed
            self.uncached += cost.uncached
            self.priced += 1

    def merge(self, other: Counts) -> None:
        """Adds the sums of ``other``, as if its turns had been added here: how the sums of turns no longer held
        (``Ledger.max_turns``) join those of the turns still held."""
        for name in _SUMMED:
            setattr(self, name, _plus(getattr(self, name), getattr(other, name)))

    @property
    def cost(self) -> Cost | None:
        """The summed cost of the priced turns; None when no turn had a price."""
        return Cost(self.billed, self.uncached) if self.priced else None

    @property
    def hit_ratio(self) -> float | None:
        """read / (input + creation + read), token-weighted; None is n/a, never 0 %."""
        if self.cache_read_input_tokens is None or self.ratio_base == 0:
            return None
        return self.cache_read_input_tokens / self.ratio_base

    @classmethod
    def of(cls, turns: Iterable[Turn], pricer: Pricer | None = None) -> Counts:
        """Sums over ``turns``, which the caller has already limited to successful ones."""
        counts = cls()
        for turn in turns:
            counts.add(turn, pricer(turn) if pricer else None)
        return counts


_SUMMED = tuple(summed.name for summed in fields(Counts))  # every field is a sum, so a new one merges too


@dataclass(slots=True, kw_only=True)
class Sums:
    """What a session or a thread reports of its turns: the successful ones' counts, the judged ones' (after
    each thread's first: what ``min_hit`` judges), the errors, and how many turns that is."""

    counts: Counts = field(default_factory=Counts)
    judged: Counts = field(default_factory=Counts)
    errors: int = 0
    turns: int = 0

    def add(self, turn: Turn, cost: Cost | None = None) -> None:
        self.turns += 1
        if not turn.ok:
            self.errors += 1
            return
        self.counts.add(turn, cost)
        if not turn.opens:
            self.judged.add(turn, cost)

    def merge(self, other: Sums) -> None:
        self.counts.merge(other.counts)
        self.judged.merge(other.judged)
        self.errors += other.errors
        self.turns += other.turns

    @classmethod
    def of(cls, turns: Iterable[Turn], pricer: Pricer | None = None) -> Sums:
        """Sums over ``turns``, successful or not; only successful ones are priced."""
        sums = cls()
        for turn in turns:
            sums.add(turn, pricer(turn) if pricer and turn.ok else None)
        return sums


def _plus[N: (int, float)](total: N | None, value: N | None) -> N | None:
    if value is None:
        return total
    return value if total is None else total + value
