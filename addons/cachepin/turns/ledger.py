"""The cache ledger: every LLM response as a turn of its session, with a verdict.

Providers report per response how much of the prompt they wrote to and read
from their cache; only grouped by session do those figures say whether the
cache works (the first turn of a thread has to write, every later one should
read). The ledger keeps the turns, judges the expectations CI sets (``warm``
at once per turn, ``min_hit`` over whole sessions) and keeps running totals,
so that it can evict old sessions and still report the whole run.

Memory matters because a proxy runs for days: turns are packed (about 270
bytes each, ``packing``) and sessions slotted, session sums are computed on
demand instead of stored, ``max_sessions`` bounds the sessions held and
``max_turns`` the turns each holds (older ones folded into its sums).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cachepin.request.branches import BRANCH_SOURCE
from cachepin.request.thread import Position, Thread, model_family
from cachepin.response.usage import COUNT_FIELDS, SPLIT_FIELDS, Usage
from cachepin.turns.agreement import Agreement
from cachepin.turns.counts import Counts, Pricer, Sums
from cachepin.turns.turn import Turn, Verdict
from cachepin.turns.verdicts import Expect, Failure, figure_text, short_id, verdict_for, warm_failure

_MAX_SHARED_NAMES = 1024
_SEARCHED_THREADS = 8  # a session with more threads than this indexes them
EVICTED_MEMORY = 10
"""Evicted sessions remembered per session held (their order and turn count, ~150 bytes against ~2 KB held)."""


@dataclass(slots=True)
class ThreadState:
    """One thread of a session (request/thread.py): its name, and whether it has written the cache yet."""

    thread_id: str
    source: str
    parent: str | None
    model: str | None  # as the first turn's request named it
    ok_turns: int = 0


SEVERAL_FAMILIES = ThreadState("", "", None, None)
"""``Session.writer`` once threads on two model families have written."""

ThreadKey = tuple[str, str]  # a thread's id and model family: a cache is per model


def _turn_thread(turn: Turn) -> ThreadKey:
    return turn.thread or "", model_family(turn.cache_key)


def _state_thread(state: ThreadState) -> ThreadKey:
    return state.thread_id, model_family(state.model)


@dataclass(slots=True)
class Folded:
    """The turns a session no longer holds (``Ledger.max_turns``): how many, their sums by thread (the session's
    are the sum of those, added up when asked), and the index of the latest that opened a thread
    (``judge_min_hit`` names it when it is the only one)."""

    turns: int = 0  # what the threads' sums count too, kept so that numbering a turn never adds them up
    threads: dict[ThreadKey, Sums] = field(default_factory=dict)
    opened: int | None = None

    def sums(self) -> Sums:
        sums = Sums()
        for thread in self.threads.values():
            sums.merge(thread)
        return sums


class HeldTurns(list[Turn]):
    """A session's turns once it has dropped older ones, with the sums of those (``folded``): a plain list until
    then, so that a short session pays nothing for what only long ones need, not even an empty slot (the bench
    holds a 5-turn session to 2 KB)."""

    __slots__ = ("folded",)

    def __init__(self, turns: Iterable[Turn]) -> None:
        super().__init__(turns)
        self.folded = Folded()


@dataclass(slots=True)
class Session:
    """One client session's turns, in one or more threads. Its sums are computed from the turns when
    asked, not stored: reports are rare, sessions are many. A long session's oldest turns are only in its
    sums (``folded_sums``), no longer in ``turns``."""

    session_id: str
    source: str  # how the session id was found (header, body field, ...), as first seen
    seq: int  # creation order: the LRU order of the ledger is not the order to report in
    turns: list[Turn] = field(default_factory=list)
    earlier_turns: int = 0  # turns recorded before it was evicted and came back: its turns are numbered on
    threads_held: list[ThreadState] | dict[tuple[str, str], ThreadState] = field(default_factory=list)
    # in the order they appeared; a list of a few costs a third of a dict, so a dict by (id, model family) only
    # once there are many (see ``thread``): a session is ~2 KB, and a proxy holds 10,000
    writer: ThreadState | None = None  # the thread of the first successful turn; ``SEVERAL_FAMILIES`` once one on
    # another model family has had one too: what ``switched_model`` asks
    pending: tuple[Failure, ...] = ()  # judged over the whole session at the last finalize()

    @property
    def folded_sums(self) -> Folded | None:
        """The turns dropped from memory (``Ledger.max_turns``), summed; None while every turn is held."""
        turns = self.turns
        return turns.folded if isinstance(turns, HeldTurns) else None

    @property
    def folded(self) -> int:
        """Turns dropped from memory: in the sums, no longer in ``turns``."""
        folded = self.folded_sums
        return 0 if folded is None else folded.turns

    @property
    def numbered(self) -> int:
        """Turns numbered so far: before an eviction, folded, held."""
        return self.earlier_turns + self.folded + len(self.turns)

    def sums(self, pricer: Pricer | None = None) -> Sums:
        """Sums over every turn since the session was (last) opened, the folded ones included: those were
        priced as they were folded, with the ledger's pricer (the one to pass for costs)."""
        sums = Sums.of(self.turns, pricer)
        folded = self.folded_sums
        if folded is not None:
            sums.merge(folded.sums())
        return sums

    def counts(self, pricer: Pricer | None = None) -> Counts:
        return self.sums(pricer).counts

    def judged_counts(self) -> Counts:
        """Sums over the turns ``min_hit`` judges: the successful ones that do not open their thread."""
        return self.sums().judged

    @property
    def errors(self) -> int:
        folded = self.folded_sums
        return sum(not turn.ok for turn in self.turns) + (0 if folded is None else folded.sums().errors)

    @property
    def threads(self) -> list[ThreadState]:
        held = self.threads_held
        return list(held.values()) if isinstance(held, dict) else held

    def thread(self, thread_id: str, family: str) -> ThreadState | None:
        """The thread of that id on that model family (a cache is per model): searched among a few threads,
        looked up among more, so that a turn costs the same however many threads its session has."""
        held = self.threads_held
        if isinstance(held, dict):
            return held.get((thread_id, family))
        return next((state for state in reversed(held)
                     if state.thread_id == thread_id and model_family(state.model) == family), None)

    def add_thread(self, state: ThreadState) -> None:
        held = self.threads_held
        if isinstance(held, dict):
            held[(state.thread_id, model_family(state.model))] = state
            return
        held.append(state)
        if len(held) > _SEARCHED_THREADS:
            self.threads_held = {(known.thread_id, model_family(known.model)): known for known in held}

    def wrote(self, state: ThreadState, family: str) -> None:
        """Notes a successful turn of a thread on a model family."""
        writer = self.writer
        if writer is None:
            self.writer = state
        elif writer is not SEVERAL_FAMILIES and model_family(writer.model) != family:
            self.writer = SEVERAL_FAMILIES

    def switched_model(self, family: str) -> bool:
        """A thread on another model family has written already: the client switched model mid-conversation."""
        writer = self.writer
        return writer is not None and (writer is SEVERAL_FAMILIES or model_family(writer.model) != family)

    def thread_turns(self) -> list[tuple[ThreadState, list[Turn]]]:
        """Each thread with its turns held, in the order the threads appeared."""
        keys = [_state_thread(state) for state in self.threads]
        grouped: dict[ThreadKey, list[Turn]] = {key: [] for key in keys}
        for turn in self.turns:
            grouped[_turn_thread(turn)].append(turn)
        return [(state, grouped[key]) for state, key in zip(self.threads, keys, strict=True)]

    def thread_sums(self, pricer: Pricer | None = None) -> list[tuple[ThreadState, list[Turn], Sums]]:
        """Each thread with its turns held and its sums, folded turns included (``sums``)."""
        folded = self.folded_sums
        out = []
        for state, turns in self.thread_turns():
            sums = Sums.of(turns, pricer)
            earlier = None if folded is None else folded.threads.get(_state_thread(state))
            if earlier is not None:
                sums.merge(earlier)
            out.append((state, turns, sums))
        return out


def _usage_fields(usage: Usage | None, shared: Callable[[str | None], str | None]) -> dict[str, Any]:
    """A Turn's provider and counts from ``usage`` (none when the response reported no usage)."""
    if usage is None:
        return {}
    figures = {name: getattr(usage, name) for name in (*COUNT_FIELDS, *SPLIT_FIELDS)}
    return {"provider": shared(usage.provider), **figures}


def judge_min_hit(session: Session, min_hit: int) -> Failure | None:
    """The session's failure against ``min_hit`` percent, over its successful turns that do not open a thread.

    The first turn of each thread has to write the cache, so it is left out;
    a session with no later turn is not judged. The comparison is in integers,
    so a ratio exactly at the threshold passes.
    """
    if min_hit <= 0:
        return None
    sums = session.sums()
    counts = sums.judged
    later = counts.requests
    if not later:
        return None
    read = counts.cache_read_input_tokens
    firsts = sums.counts.requests - later
    if firsts == 1:
        after = f"turn {_opening_turn(session)}"
    elif firsts:
        after = f"the first turn of each of {firsts} threads"
    else:
        after = "no first turn (every turn continued a conversation)"
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
        # Of several threads judged, the lowest is named, whole: per-model ids cut short would look alike.
        ratios = [(own.judged.hit_ratio, state.thread_id) for state, _, own in session.thread_sums()
                  if own.judged.hit_ratio is not None]
        lowest = f"; lowest: thread {min(ratios)[1]}" if len(ratios) > 1 else ""
        message = (
            f"{session_name}: judged hit ratio {percent}% {where} is below min_hit {min_hit}% "
            f"(read {read}, creation {figure_text(counts.cache_creation_input_tokens)}, "
            f"input {figure_text(counts.input_tokens)}){lowest}"
        )
    return Failure(session.session_id, None, message)


def _opening_turn(session: Session) -> int | None:
    """The index of the latest successful turn that opened a thread, held or folded."""
    folded = session.folded_sums
    held = next((turn.index for turn in reversed(session.turns) if turn.opens), None)
    return held if held is not None or folded is None else folded.opened


def judge_evidence(session: Session) -> Failure | None:
    """A session none of whose turns succeeded proves nothing about the cache: under an expectation it fails."""
    folded = session.folded_sums
    if (not session.turns or any(turn.ok for turn in session.turns)
            or (folded is not None and folded.sums().counts.requests)):
        return None
    errors = session.errors
    return Failure(session.session_id, None, f"session {short_id(session.session_id)}: no successful response "
                                             f"({errors} error turn{'s' * (errors != 1)})")


class Ledger:
    """All turns of a run, grouped by session, with the failures of the expectations.

    Not thread-safe: mitmproxy calls addons from one event loop.
    """

    def __init__(self, expect: str = "off", min_hit: int = 0, max_sessions: int = 0,
                 pricer: Pricer | None = None, max_turns: int = 0) -> None:
        if not 0 <= min_hit <= 100:
            raise ValueError(f"min_hit must be a percentage 0..100, not {min_hit}")
        for name, limit in (("max_sessions", max_sessions), ("max_turns", max_turns)):
            if limit < 0:
                raise ValueError(f"{name} must be >= 0 (0 = unlimited), not {limit}")
        self.expect = Expect(expect)
        self.min_hit = min_hit
        self.max_sessions = max_sessions
        self.max_turns = max_turns  # turns a session holds; older ones are folded into its sums (``_fold_oldest``)
        self.pricer = pricer  # prices each turn as it is added, so totals keep evicted sessions' cost
        self.reset()

    def reset(self) -> None:
        """Forget every session, turn, total and failure; the expectations stay."""
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # least recently used first
        self._totals = Counts()
        self._failures: list[Failure] = []  # final ones: warm failures, judgements of evicted sessions
        self._judged = Counts()  # successful turns that do not open their thread: what min_hit judges
        self._errors = 0
        self.diagnoses = Agreement()  # the provider's diagnoses against cachepin's reasons; the audit adds each turn
        self._run_failure: Failure | None = None  # as of the last finalize()
        self._names: dict[str, str] = {}
        self._next_seq = 0
        self._evicted: OrderedDict[int, int] = OrderedDict()  # hash(session id) -> seq << 32 | turns, oldest first:
        # ints, not the id and a tuple, ~150 bytes a session (two ids hashing alike, odds 2**-64 a pair, would only
        # number a new session's turns on)
        self.evicted = 0  # evictions: a session that comes back may be evicted again
        self.seen = 0  # distinct sessions of the run; one forgotten even by ``_evicted`` counts again on its return

    @property
    def sessions(self) -> list[Session]:
        """Sessions held in memory, in the order they first appeared."""
        return sorted(self._sessions.values(), key=lambda session: session.seq)

    @property
    def totals(self) -> Counts:
        """Running totals over every successful turn, evicted sessions included."""
        return self._totals

    @property
    def judged(self) -> Counts:
        """Running totals over the successful turns that do not open their thread, evicted sessions included."""
        return self._judged

    @property
    def errors(self) -> int:
        """Error turns of the whole run, evicted sessions included."""
        return self._errors

    @property
    def expecting(self) -> bool:
        """A gate is set (``cache_expect``, ``cache_min_hit``): a run or session that proves nothing fails, and
        the audit reads a request's body for its thread and position even without the explainer."""
        return self.expect is Expect.WARM or self.min_hit > 0

    @property
    def failures(self) -> list[Failure]:
        """Final failures in the order found, then the sessions' current judgements, then the run's."""
        pending = [failure for session in self.sessions for failure in session.pending]
        return [*self._failures, *pending, *([self._run_failure] if self._run_failure else [])]

    def failure_messages(self) -> dict[str, list[str]]:
        """The failure messages of each session that failed, by full session id."""
        grouped: dict[str, list[str]] = {}
        for failure in self.failures:
            grouped.setdefault(failure.session_id, []).append(failure.message)
        return grouped

    def thread_state(self, session_id: str, turn: Turn) -> ThreadState | None:
        """The thread a turn of a session held in memory was recorded in (its source and parent)."""
        session = self._sessions.get(session_id)
        return None if session is None else session.thread(*_turn_thread(turn))

    @property
    def ok(self) -> bool:
        """No expectation failed (min_hit as of the last ``finalize()``)."""
        return not self._failures and self._run_failure is None and not any(
            session.pending for session in self._sessions.values())

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
        thread: Thread | None = None,
        position: Position | None = None,
    ) -> tuple[Turn, list[str]]:
        """Add a response to its session; returns the turn and the failure messages it caused.

        The messages are new ones only (a warm miss, or min_hit of a session
        evicted to make room), so the caller can log each once, right away.
        ``model`` is what the request asked for; the model the response names
        wins, since that is what served (and cached) the turn.

        A turn opens its thread when the thread has no successful turn yet and
        the request does not continue a conversation (``position``): a
        continuation that reads nothing is a miss even when this proxy never
        saw the turns before it (a restart, another replica). Without a
        ``thread`` each model is one thread.
        """
        new: list[str] = []
        session = self._sessions.get(session_id)
        if session is None:
            session = self._open(session_id, source)
            if self.max_sessions and len(self._sessions) > self.max_sessions:
                new += self._evict_oldest()
        else:
            self._sessions.move_to_end(session_id)
        served = (usage.model if usage is not None else None) or model
        if thread is None:  # the client's own model name stays the same on every turn; a response may date it
            thread = Thread(self._shared(f"model:{model_family(model or served) or '-'}") or "", "model")
        family = model_family(model or served)
        state = session.thread(thread.thread_id, family)
        if state is None:
            state = ThreadState(thread.thread_id, thread.source, thread.parent, self._shared(model or served))
            session.add_thread(state)
        # A continuation opens a thread only where this proxy saw the client switch model (a new model's cache
        # is empty) or start a branch (a history it has not seen, request/branches.py). Elsewhere (a restart,
        # another replica) it continues a conversation that should read.
        first = state.ok_turns == 0 and (position is not Position.CONTINUATION or session.switched_model(family)
                                         or thread.source == BRANCH_SOURCE)
        turn = Turn(
            index=session.numbered + 1,
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
            thread=state.thread_id,
            position=None if position is None else position.value,
            **_usage_fields(usage, self._shared),
        )
        session.turns.append(turn)
        if not turn.ok:
            self._errors += 1
        else:
            turn.opens = first
            state.ok_turns += 1
            session.wrote(state, family)
            price = self.pricer(turn) if self.pricer else None
            self._totals.add(turn, price)
            if not first:
                self._judged.add(turn, price)
            if self.expect is Expect.WARM and not first and turn.verdict is not Verdict.HIT:
                failure = warm_failure(session_id, turn, state.source != "model")
                self._failures.append(failure)
                new.append(failure.message)
        while self.max_turns and len(session.turns) > self.max_turns:  # more than one after max_turns was lowered
            self._fold_oldest(session)
        return turn, new

    def finalize(self) -> list[str]:
        """Judge the sessions and the run as they stand; returns the messages of newly failing ones.

        min_hit over each session's later turns; and, under any expectation, no
        evidence is no pass: a session with no successful turn fails, and so
        does a run that audited no successful response at all. Run it at report
        time and at shutdown. Calling it again records no duplicates; a session
        that recovered since (more hits) passes again.
        """
        new: list[str] = []
        for session in self.sessions:
            judged = self._judge(session)
            new += [f.message for f in judged if f.message not in {p.message for p in session.pending}]
            session.pending = tuple(judged)
        run_failure = None
        if self.expecting and self._totals.requests == 0:
            errors = f" ({self._errors} error turn{'s' * (self._errors != 1)})" if self._errors else ""
            run_failure = Failure("", None, f"no successful LLM response was audited{errors}: nothing shows "
                                            "that the cache works")
        if run_failure is not None and self._run_failure is None:
            new.append(run_failure.message)
        self._run_failure = run_failure
        return new

    def _judge(self, session: Session) -> list[Failure]:
        judged = [judge_min_hit(session, self.min_hit), judge_evidence(session) if self.expecting else None]
        return [failure for failure in judged if failure is not None]

    def _open(self, session_id: str, source: str) -> Session:
        """A new session, or one that comes back after eviction: in its place, its turns numbered on."""
        remembered = self._evicted.pop(hash(session_id), None)
        if remembered is None:
            seq, earlier = self._next_seq, 0
            self._next_seq += 1
            self.seen += 1
        else:
            seq, earlier = remembered >> 32, remembered & 0xFFFF_FFFF
        session = self._sessions[session_id] = Session(session_id, source, seq, earlier_turns=earlier)
        return session

    def _evict_oldest(self) -> list[str]:
        """Drop the least recently used session; its judgements become final.

        Its order and turn count are remembered (``EVICTED_MEMORY``), so that if
        it comes back its turns are numbered on. Its verdicts need no more: a
        returning conversation's requests show that they continue one
        (``Position``), and a continuation that reads nothing is a miss.
        """
        _, session = self._sessions.popitem(last=False)
        self.evicted += 1
        self._evicted[hash(session.session_id)] = session.seq << 32 | min(session.numbered, 0xFFFF_FFFF)
        while len(self._evicted) > EVICTED_MEMORY * self.max_sessions:
            self._evicted.popitem(last=False)
        judged = self._judge(session)
        self._failures += judged
        known = {failure.message for failure in session.pending}
        return [failure.message for failure in judged if failure.message not in known]

    def _fold_oldest(self, session: Session) -> None:
        """Drops the session's oldest turn from memory into the folded sums of its thread (``max_turns``).

        It is summed as the outputs sum the turns held (counts, judged counts,
        errors; priced, as the totals are) so that every sum and judgement
        stays what it would be with the turn held; the events file has it whole.
        """
        turns = session.turns
        if not isinstance(turns, HeldTurns):
            turns = session.turns = HeldTurns(turns)
        turn = turns.pop(0)
        price = self.pricer(turn) if self.pricer and turn.ok else None
        folded = turns.folded
        folded.turns += 1
        key = _turn_thread(turn)
        thread = folded.threads.get(key)
        if thread is None:
            thread = folded.threads[key] = Sums()
        thread.add(turn, price)
        if turn.opens:
            folded.opened = turn.index

    def _shared(self, name: str | None) -> str | None:
        """One string object per model/provider name instead of one per turn (~70 bytes each).

        Bounded, so that an upstream inventing names cannot grow it.
        """
        if name is None:
            return None
        if len(self._names) < _MAX_SHARED_NAMES:
            return self._names.setdefault(name, name)
        return self._names.get(name, name)
