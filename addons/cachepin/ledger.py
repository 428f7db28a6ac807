"""The cache ledger: every LLM response as a turn of its session, with a verdict.

Providers report per response how much of the prompt they wrote to and read
from their cache; only grouped by session do those figures say whether the
cache works (the first turn of a session has to write, every later one should
read). The ledger keeps the turns, judges the expectations CI sets (``warm``
at once per turn, ``min_hit`` over whole sessions) and keeps running totals,
so that it can evict old sessions and still report the whole run.

Memory matters because a proxy runs for days: turns are packed (about 270
bytes each) and sessions slotted, session sums are computed on demand instead
of stored, and ``max_sessions`` bounds what is held.
"""

from __future__ import annotations

import enum
import re
import struct
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from cachepin.prices import Cost
from cachepin.usage import Usage

COUNT_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
_SHORT_ID = 12
_MAX_SHARED_NAMES = 1024


class Verdict(enum.StrEnum):
    HIT = "hit"  # read something from the cache
    COLD = "cold"  # first successful turn of its session, read nothing
    MISS = "miss"  # a later successful turn that read nothing
    NONE = "none"  # the provider reports no cache figures
    ERROR = "error"  # status >= 400 or a broken stream: kept, but never counted


class Expect(enum.StrEnum):
    OFF = "off"
    WARM = "warm"  # every successful turn after a session's first must hit


_FIGURES = struct.Struct("<6q3d")  # the six counts (-1: none), started_at, ttft_ms, duration_ms (NaN: none)
_COUNT = struct.Struct("<q")
_COUNTS = struct.Struct("<6q")
_TIME = struct.Struct("<d")
_NO_COUNT = -1
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MAX_COUNT = 2**63 - 1


class _Figure:
    """One of a turn's packed numbers, read as an attribute."""

    def __init__(self, index: int) -> None:
        self._index = index
        self._is_time = index >= 6

    def __get__(self, turn: Turn | None, owner: type | None = None) -> int | float | None:
        if turn is None:
            return self  # type: ignore[return-value]  # the class attribute itself
        figures = turn._figures
        if type(figures) is tuple:
            return figures[self._index]
        if self._is_time:
            value = _TIME.unpack_from(figures, 8 * self._index)[0]
            return None if value != value else value  # NaN: none
        value = _COUNT.unpack_from(figures, 8 * self._index)[0]
        return None if value == _NO_COUNT else value


def _pack(counts: tuple[int | None, ...], times: tuple[float | None, ...]) -> bytes | tuple:
    """Nine numbers in one 105-byte object instead of nine (~190 bytes with their slots).

    Only values that come back exactly are packed (ints and floats of the right
    type and range); anything else, like a count beyond 64 bits from an odd
    upstream, is kept as it came, in a tuple.
    """
    if all(c is None or (type(c) is int and 0 <= c <= _MAX_COUNT) for c in counts) and all(
        t is None or (type(t) is float and t == t) for t in times
    ):
        return _FIGURES.pack(*(_NO_COUNT if c is None else c for c in counts),
                             *(float("nan") if t is None else t for t in times))
    return (*counts, *times)


def _pack_flow_id(flow_id: str) -> bytes | str:
    """mitmproxy's flow ids are UUIDs: their 16 bytes (49 in memory) instead of 36 characters (77).

    Only the canonical form is packed, the one ``str(uuid.UUID(...))`` gives back.
    """
    if isinstance(flow_id, str) and _CANONICAL_UUID.fullmatch(flow_id):
        return bytes.fromhex(flow_id.replace("-", ""))
    return flow_id


class Turn:
    """One response. Mutable only so later analysis can attach ``notes``.

    A ledger holds max_sessions sessions of these for days, so a turn packs its
    numbers (``_pack``) and its flow id (``_pack_flow_id``): about 270 bytes
    instead of 420. They read as attributes all the same.
    """

    __slots__ = ("index", "_flow_id", "status", "stream", "verdict", "provider", "model", "requested_model",
                 "error", "notes", "_figures")

    input_tokens = _Figure(0)
    cache_creation_input_tokens = _Figure(1)
    cache_read_input_tokens = _Figure(2)
    output_tokens = _Figure(3)
    cache_creation_5m = _Figure(4)
    cache_creation_1h = _Figure(5)
    started_at = _Figure(6)  # unix seconds
    ttft_ms = _Figure(7)
    duration_ms = _Figure(8)

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
        notes: dict[str, object] | None = None,  # e.g. miss reason, cost: rendered into reports when set
    ) -> None:
        self.index = index
        self._flow_id = _pack_flow_id(flow_id)
        self.status = status
        self.stream = stream
        self.verdict = verdict
        self.provider = provider
        self.model = model
        self.requested_model = requested_model
        self.error = error
        self.notes = notes
        self._figures = _pack(
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
        if type(figures) is tuple:
            return figures[:6]
        return tuple(None if value == _NO_COUNT else value for value in _COUNTS.unpack_from(figures))


_TURN_FIELDS = ("index", "flow_id", "started_at", "status", "stream", "verdict", "provider", "model",
                "requested_model", *COUNT_FIELDS, "cache_creation_5m", "cache_creation_1h", "ttft_ms",
                "duration_ms", "error", "notes")

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


def _plus(total: int | None, value: int | None) -> int | None:
    if value is None:
        return total
    return value if total is None else total + value


@dataclass(slots=True, frozen=True)
class Failure:
    """A failed expectation; it keeps the full session id because the message only has a short one."""

    session_id: str
    turn: int | None  # None for a judgement over the whole session (min_hit)
    message: str


@dataclass(slots=True)
class Session:
    """One conversation's turns. Its sums are computed from the turns when asked, not stored:
    reports are rare, sessions are many."""

    session_id: str
    source: str  # how the session id was found (header, body field, ...), as first seen
    seq: int  # creation order: the LRU order of the ledger is not the order to report in
    turns: list[Turn] = field(default_factory=list)
    min_hit_failure: Failure | None = None  # as of the last finalize(); it may recover

    def ok_turns(self) -> Iterator[Turn]:
        return (turn for turn in self.turns if turn.ok)

    def is_first_of(self, cache_key: str | None) -> bool:
        """No successful turn of ``model`` yet: the next one may be cold.

        Per model, because each model has its own cache: a client's side call on
        another model (opencode's title call, Claude Code's Haiku requests) must
        not make the main model's first turn look like a miss, nor the reverse.
        Error turns do not count: a failed request cached nothing.
        """
        return not any(turn.ok and turn.cache_key == cache_key for turn in self.turns)

    def later_ok_turns(self) -> tuple[list[Turn], list[Turn]]:
        """The successful turns split into each model's first and the later ones."""
        seen: set[str | None] = set()
        firsts: list[Turn] = []
        later: list[Turn] = []
        for turn in self.ok_turns():
            (later if turn.cache_key in seen else firsts).append(turn)
            seen.add(turn.cache_key)
        return firsts, later

    def counts(self, pricer: Pricer | None = None) -> Counts:
        return Counts.of(self.ok_turns(), pricer)


def _usage_fields(usage: Usage | None, shared: Callable[[str | None], str | None]) -> dict[str, object]:
    """A Turn's provider and counts from ``usage`` (none when the response reported no usage)."""
    if usage is None:
        return {}
    return {"provider": shared(usage.provider), "input_tokens": usage.input_tokens,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens,
            "cache_read_input_tokens": usage.cache_read_input_tokens, "output_tokens": usage.output_tokens,
            "cache_creation_5m": usage.cache_creation_5m, "cache_creation_1h": usage.cache_creation_1h}


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


def _figure(value: int | None) -> str:
    return "-" if value is None else str(value)


def _warm_failure(session_id: str, turn: Turn) -> Failure:
    where = f"session {short_id(session_id)} turn {turn.index}: expected a cache hit"
    if turn.verdict is Verdict.NONE:
        message = f"{where}, but the provider reports no cache figures (model {turn.model or '-'})"
    else:
        message = (
            f"{where}, read {_figure(turn.cache_read_input_tokens)} "
            f"(creation {_figure(turn.cache_creation_input_tokens)}, input {_figure(turn.input_tokens)})"
        )
    return Failure(session_id, turn.index, message)


def judge_min_hit(session: Session, min_hit: int) -> Failure | None:
    """The session's failure against ``min_hit`` percent, over its successful turns after the first.

    The first turn (of each model) has to write the cache, so it is left out;
    a session with no later turn is not judged. The comparison is in integers,
    so a ratio exactly at the threshold passes.
    """
    firsts, later_turns = session.later_ok_turns()
    if min_hit <= 0 or not later_turns:
        return None
    counts = Counts.of(later_turns)
    read = counts.cache_read_input_tokens
    later = len(later_turns)
    after = f"turn {firsts[0].index}" if len(firsts) == 1 else f"the first turn of each of {len(firsts)} models"
    where = f"after {after} ({later} later turn{'s' * (later != 1)})"
    session_name = f"session {short_id(session.session_id)}"
    if read is None:
        message = f"{session_name}: min_hit {min_hit}% not met {where}: the provider reports no cache figures"
    elif counts.ratio_base == 0:
        message = f"{session_name}: min_hit {min_hit}% not met {where}: no input tokens reported"
    elif read * 100 >= min_hit * counts.ratio_base:
        return None
    else:
        percent = read * 1000 // counts.ratio_base / 10  # floored: 49.96 % must not print as 50.0
        message = (
            f"{session_name}: hit ratio {percent}% {where} is below min_hit {min_hit}% "
            f"(read {read}, creation {_figure(counts.cache_creation_input_tokens)}, "
            f"input {_figure(counts.input_tokens)})"
        )
    return Failure(session.session_id, None, message)


class Ledger:
    """All turns of a run, grouped by session, with the failures of the expectations.

    Not thread-safe: mitmproxy calls addons from one event loop.
    """

    def __init__(self, expect: str = "off", min_hit: int = 0, max_sessions: int = 0,
                 pricer: Pricer | None = None) -> None:
        if not 0 <= min_hit <= 100:
            raise ValueError(f"min_hit must be a percentage 0..100, not {min_hit}")
        if max_sessions < 0:
            raise ValueError(f"max_sessions must be >= 0 (0 = unlimited), not {max_sessions}")
        self.expect = Expect(expect)
        self.min_hit = min_hit
        self.max_sessions = max_sessions
        self.pricer = pricer  # prices each turn as it is added, so totals keep evicted sessions' cost
        self.reset()

    def reset(self) -> None:
        """Forget every session, turn, total and failure; the expectations stay."""
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # least recently used first
        self._totals = Counts()
        self._failures: list[Failure] = []  # final ones: warm failures, min_hit of evicted sessions
        self._names: dict[str, str] = {}
        self._next_seq = 0
        self.evicted = 0

    @property
    def sessions(self) -> list[Session]:
        """Sessions held in memory, in the order they first appeared."""
        return sorted(self._sessions.values(), key=lambda session: session.seq)

    @property
    def totals(self) -> Counts:
        """Running totals over every successful turn, evicted sessions included."""
        return self._totals

    @property
    def failures(self) -> list[Failure]:
        """Final failures in the order found, then the sessions' current min_hit failures."""
        pending = [s.min_hit_failure for s in self.sessions if s.min_hit_failure is not None]
        return [*self._failures, *pending]

    @property
    def ok(self) -> bool:
        """No expectation failed (min_hit as of the last ``finalize()``)."""
        return not self._failures and all(s.min_hit_failure is None for s in self._sessions.values())

    def record(
        self,
        session_id: str,
        source: str,
        *,
        flow_id: str,
        started_at: float,
        status: int,
        stream: bool,
        usage: Usage | None,
        model: str | None,
        ttft_ms: float | None,
        duration_ms: float | None,
        error: str | None = None,
    ) -> tuple[Turn, list[str]]:
        """Add a response to its session; returns the turn and the failure messages it caused.

        The messages are new ones only (a warm miss, or min_hit of a session
        evicted to make room), so the caller can log each once, right away.
        ``model`` is what the request asked for; the model the response names
        wins, since that is what served (and cached) the turn.
        """
        new: list[str] = []
        session = self._sessions.get(session_id)
        if session is None:
            session = Session(session_id, source, self._next_seq)
            self._next_seq += 1
            self._sessions[session_id] = session
            if self.max_sessions and len(self._sessions) > self.max_sessions:
                new += self._evict_oldest()
        else:
            self._sessions.move_to_end(session_id)
        served = (usage.model if usage is not None else None) or model
        cache_key = model or served  # the client's own name stays the same on every turn; a response may date it
        first = session.is_first_of(cache_key)
        turn = Turn(
            index=len(session.turns) + 1,
            flow_id=flow_id,
            started_at=started_at,
            status=status,
            stream=stream,
            verdict=verdict_for(status=status, error=error, usage=usage, first=first),
            model=self._shared(served),
            requested_model=self._shared(model),
            ttft_ms=ttft_ms,
            duration_ms=duration_ms,
            error=error,
            **_usage_fields(usage, self._shared),
        )
        session.turns.append(turn)
        if turn.ok:
            self._totals.add(turn, self.pricer(turn) if self.pricer else None)
            if self.expect is Expect.WARM and not first and turn.verdict is not Verdict.HIT:
                failure = _warm_failure(session_id, turn)
                self._failures.append(failure)
                new.append(failure.message)
        return turn, new

    def finalize(self) -> list[str]:
        """Judge min_hit over the sessions as they stand; returns the messages of newly failing ones.

        Run it at report time and at shutdown. Calling it again records no
        duplicates; a session that recovered since (more hits) passes again.
        """
        new: list[str] = []
        for session in self.sessions:
            failure = judge_min_hit(session, self.min_hit)
            if failure is not None and session.min_hit_failure is None:
                new.append(failure.message)
            session.min_hit_failure = failure
        return new

    def _evict_oldest(self) -> list[str]:
        """Drop the least recently used session; its min_hit judgement becomes final."""
        _, session = self._sessions.popitem(last=False)
        self.evicted += 1
        failure = judge_min_hit(session, self.min_hit)
        if failure is None:
            return []
        self._failures.append(failure)
        return [] if session.min_hit_failure is not None else [failure.message]

    def _shared(self, name: str | None) -> str | None:
        """One string object per model/provider name instead of one per turn (~70 bytes each).

        Bounded, so that an upstream inventing names cannot grow it.
        """
        if name is None:
            return None
        if len(self._names) < _MAX_SHARED_NAMES:
            return self._names.setdefault(name, name)
        return self._names.get(name, name)
