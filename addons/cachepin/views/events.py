"""The events file: one JSON line per turn as it is recorded, and those lines read back into a ledger.

It is the one output that survives a crash, and the one each replica of a
fleet writes on its own. A report rebuilt from events (``scripts/report``) or
a restarted proxy seeded from its own (``cache_resume``) must judge the turns
as the addon did, so a line carries every input of ``Ledger.record`` (the
thread's source and parent, the requested model, the error, the TTL split of
the writes) next to the turn object the report shows, and the time it was
recorded: turns are replayed in that order, which is the order the addon
numbered and judged them in. Schema: docs/events.md.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cachepin.request.thread import Position, Thread
from cachepin.response.diagnostics import Diagnosis, diagnosis
from cachepin.response.usage import COUNT_FIELDS, SPLIT_FIELDS, Usage
from cachepin.turns.counts import Pricer
from cachepin.turns.explain import Explanation, Reason
from cachepin.turns.ledger import Ledger, ThreadState
from cachepin.turns.turn import Turn
from cachepin.views.report import turn_dict
from cachepin.views.text import error_kind

EVENTS_VERSION = 2
MAX_PROBLEMS = 20  # lines named one by one; past that, only counted
CONNECTION_ERROR = "connection_error"
"""An event's ``error`` for a turn whose error is no provider's type (a broken connection, a shutdown): the
message itself is not written (docs/guarantees.md, 5)."""


class Run(NamedTuple):
    """Which proxy process wrote a line: the run (one start of mitmdump) and the instance (host and pid)."""

    run_id: str
    instance: str


def event_line(session_id: str, source: str, turn: Turn, thread: ThreadState | None, run: Run, recorded_at: float,
               pricer: Pricer | None = None) -> str:
    """One line for the cache_events file; json.dumps escapes line breaks, so it is one line."""
    return json.dumps({
        "events_version": EVENTS_VERSION,
        "run_id": run.run_id,
        "instance": run.instance,
        "recorded_at": recorded_at,
        "session_id": session_id,
        "source": source,
        "thread_source": thread.source if thread is not None else None,
        "thread_parent": thread.parent if thread is not None else None,
        "requested_model": turn.requested_model,
        "error": error_kind(turn.error) or (None if turn.error is None else CONNECTION_ERROR),  # never a message
        "cache_creation_5m": turn.cache_creation_5m,
        "cache_creation_1h": turn.cache_creation_1h,
        "turn": turn_dict(turn, pricer),
    }, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Event:
    """One line read back: what ``Ledger.record`` needs again, and the notes the addon attached."""

    run: Run
    recorded_at: float
    session_id: str
    source: str
    thread: Thread | None
    position: Position | None
    flow_id: str
    started_at: float
    status: int
    stream: bool
    usage: Usage | None
    requested_model: str | None
    ttft_ms: float | None
    duration_ms: float | None
    error: str | None
    miss: Explanation | None
    diagnosis: Diagnosis | None


def parse_event(line: str) -> Event:
    """An event from one line; ValueError saying what is wrong with it."""
    try:
        record = json.loads(line, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e.msg})") from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    version = record.get("events_version")
    if version != EVENTS_VERSION:
        raise ValueError(f"events_version {version!r}: this cachepin reads version {EVENTS_VERSION} "
                         "(a line without one was written before turns carried their thread and request)")
    turn = _member(record, "turn", dict)
    provider = _member(turn, "provider", str, None)
    usage = None if provider is None else Usage(
        provider, _member(turn, "model", str, None), *(_count(turn, name) for name in COUNT_FIELDS),
        *(_count(record, name) for name in SPLIT_FIELDS))
    thread_id = _member(turn, "thread", str, None)
    position = _member(turn, "position", str, None)
    if position is not None and position not in Position:
        raise ValueError(f"position {json.dumps(position)} is not one of {', '.join(Position)}")
    return Event(
        run=Run(_member(record, "run_id", str), _member(record, "instance", str)),
        recorded_at=_number(record, "recorded_at"),
        session_id=_member(record, "session_id", str),
        source=_member(record, "source", str),
        thread=None if thread_id is None else Thread(
            thread_id, _member(record, "thread_source", str), _member(record, "thread_parent", str, None)),
        position=None if position is None else Position(position),
        flow_id=_member(turn, "flow_id", str),
        started_at=_number(turn, "started_at"),
        status=_member(turn, "status", int),
        stream=_member(turn, "stream", bool),
        usage=usage,
        requested_model=_member(record, "requested_model", str, None),
        ttft_ms=_number(turn, "ttft_ms", None),
        duration_ms=_number(turn, "duration_ms", None),
        error=_member(record, "error", str, None),
        miss=_miss(turn.get("notes")),
        diagnosis=_diagnosis(turn.get("provider_diagnosis")),
    )


_MISSING = object()


def _member[T](holder: Mapping[str, object], name: str, kind: type[T], default: object = _MISSING) -> T:
    value = holder.get(name, default)
    if value is default and default is not _MISSING:
        return value  # type: ignore[return-value]  # the default, None
    if value is _MISSING:
        raise ValueError(f"{name} is missing")
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{name} is {json.dumps(value)}, not {'a number' if kind is int else f'a {kind.__name__}'}")
    return value


MAX_COUNT = 2**63 - 1  # what a turn packs (turns/packing.py)
MAX_NUMBER = 2.0**53  # a time or duration beyond this is no Unix time or milliseconds


def _count(holder: Mapping[str, object], name: str) -> int | None:
    value = _member(holder, name, int, None)
    if value is not None and not 0 <= value <= MAX_COUNT:
        raise ValueError(f"{name} is {_shown(value)}, not a count")
    return value


def _number(holder: Mapping[str, object], name: str, default: object = _MISSING) -> float:
    value = holder.get(name, default)
    if value is None and default is None:
        return value  # type: ignore[return-value]
    if isinstance(value, bool) or not isinstance(value, int | float) or not -MAX_NUMBER <= value <= MAX_NUMBER:
        raise ValueError(f"{name} is {'missing' if value is _MISSING else _shown(value)}, not a number")
    return float(value)


def _shown(value: object) -> str:
    """A value for a message, cut short: a line may hold a number of a thousand digits."""
    text = json.dumps(value) if not isinstance(value, int) or abs(value) < 10**30 else f"{str(value)[:12]}…"
    return text if len(text) <= 60 else text[:60] + "…"


def _no_constant(name: str) -> object:
    """NaN and Infinity are no JSON (``json.loads`` accepts them): such a line is refused, not carried on into a
    report that would not be JSON either."""
    raise ValueError(f"{name} is not a JSON number")


def _miss(notes: object) -> Explanation | None:
    miss = notes.get("miss") if isinstance(notes, dict) else None
    if not isinstance(miss, dict):
        return None
    evidence, reason = miss.get("evidence"), miss.get("reason")
    if reason not in Reason:
        raise ValueError(f"miss reason {json.dumps(reason)} is not one of {', '.join(Reason)}")
    return Explanation(Reason(str(reason)), str(miss.get("detail") or ""),
                       evidence if isinstance(evidence, dict) else {})


def _diagnosis(answer: object) -> Diagnosis | None:
    return diagnosis(answer.get("reason"), answer.get("missed_tokens")) if isinstance(answer, dict) else None


def read_events(path: str | Path, problems: list[str]) -> Iterator[Event]:
    """The events of one file in its order; a line that cannot be read is skipped and named in ``problems``
    (``path:line: what``; past ``MAX_PROBLEMS``, only counted in the last entry)."""
    skipped = 0
    with open(path, encoding="utf-8", errors="replace") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                yield parse_event(line)
            except ValueError as e:
                skipped += 1
                if skipped <= MAX_PROBLEMS:
                    problems.append(f"{path}:{number}: {e}")
    if skipped > MAX_PROBLEMS:
        problems.append(f"{path}: {skipped - MAX_PROBLEMS} more lines skipped")


def merged(paths: Iterable[str | Path], problems: list[str]) -> Iterator[Event]:
    """The events of several files (one per replica, or runs one after the other) in the order they were
    recorded; each file's own order is kept as it is, as the order its proxy judged them in."""
    return heapq.merge(*(read_events(path, problems) for path in paths), key=lambda event: event.recorded_at)


def replay(ledger: Ledger, events: Iterable[Event]) -> dict[Run, int]:
    """Records each event's turn in ``ledger`` as the audit did, notes attached; returns the turns of each run.

    The miss reasons are the ones the addon found (the explainer needs the
    requests, which events do not keep); verdicts, threads and positions are
    judged again, so that turns of one conversation split over replicas are
    judged as one conversation.
    """
    runs: dict[Run, int] = {}
    for event in events:
        turn, _ = ledger.record(
            event.session_id, event.source, flow_id=event.flow_id, started_at=event.started_at, status=event.status,
            stream=event.stream, usage=event.usage, model=event.requested_model, ttft_ms=event.ttft_ms,
            duration_ms=event.duration_ms, error=event.error, thread=event.thread, position=event.position)
        turn.miss = event.miss
        turn.provider_diagnosis = event.diagnosis
        ledger.diagnoses.add(turn)
        runs[event.run] = runs.get(event.run, 0) + 1
    return runs
