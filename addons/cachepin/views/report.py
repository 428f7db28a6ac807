"""The JSON report: the ledger as JSON, for CI and other programs (the event lines: ``events``).

Pure functions over the ledger (``files`` writes them); the report comes in
pieces, so that it is never whole in memory. Only counts, ids, models and
timings are rendered: no prompt or response text ever reaches the ledger, so
none can leak from here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

from cachepin.response.usage import COUNT_FIELDS
from cachepin.turns.agreement import compare
from cachepin.turns.counts import Counts, Pricer, Sums
from cachepin.turns.ledger import Ledger, Session
from cachepin.turns.pricing import Cost
from cachepin.turns.turn import Turn

REPORT_VERSION = 2


def _counts(source: Turn | Counts) -> dict[str, int | None]:
    return {name: getattr(source, name) for name in COUNT_FIELDS}


def _ratio(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _cost(cost: Cost | None) -> dict[str, float] | None:
    return None if cost is None else cost.as_dict()


def turn_dict(turn: Turn, pricer: Pricer | None = None) -> dict[str, object]:
    """The turn object shared by the report and the event lines; ``notes`` only for a turn with a miss reason,
    ``provider_diagnosis`` only for one whose response carried the provider's own."""
    out: dict[str, object] = {
        "index": turn.index,
        "flow_id": turn.flow_id,
        "started_at": turn.started_at,
        "provider": turn.provider,
        "model": turn.model,
        "status": turn.status,
        "stream": turn.stream,
        **_counts(turn),
        "verdict": turn.verdict.value,
        "thread": turn.thread,
        "position": turn.position,
        "ttft_ms": _ms(turn.ttft_ms),
        "duration_ms": _ms(turn.duration_ms),
        "cost": _cost(pricer(turn) if pricer and turn.ok else None),
    }
    if turn.miss is not None:
        out["notes"] = {"miss": {"reason": turn.miss.reason.value, "detail": turn.miss.detail,
                                 "evidence": turn.miss.evidence}}
    if turn.provider_diagnosis is not None:
        compared = compare(turn)
        out["provider_diagnosis"] = {"reason": turn.provider_diagnosis.reason,
                                     "missed_tokens": turn.provider_diagnosis.missed_tokens,
                                     "agreement": None if compared is None else compared.judgement.value}
    return out


def _sums(sums: Sums) -> dict[str, object]:
    """What a session and a thread report of their turns, folded ones included: counts, both hit ratios,
    errors, cost."""
    counts = sums.counts
    return {
        "requests": counts.requests,
        **_counts(counts),
        "errors": sums.errors,
        "hit_ratio": _ratio(counts.hit_ratio),
        "judged_hit_ratio": _ratio(sums.judged.hit_ratio),
        "cost": _cost(counts.cost),
    }


def session_dict(session: Session, pricer: Pricer | None, failures: list[str]) -> dict[str, object]:
    """The session's sums cover its folded turns too (``Ledger.max_turns``); its lists, the turns it holds."""
    threads = []
    for thread, turns, sums in session.thread_sums(pricer):
        threads.append({"thread_id": thread.thread_id, "source": thread.source, "parent": thread.parent,
                        "model": thread.model, **_sums(sums), "folded_turns": sums.turns - len(turns),
                        "turns": [turn.index for turn in turns]})
    return {
        "session_id": session.session_id,
        "source": session.source,
        **_sums(session.sums(pricer)),
        "failures": failures,
        "threads": threads,
        "folded_turns": session.folded,
        "turns": [turn_dict(turn, pricer) for turn in session.turns],
    }


def report_json(ledger: Ledger, about: Mapping[str, object] | None = None) -> Iterator[str]:
    """The JSON report, schema version 2 (docs/reports.md), as ``json.dumps(report, indent=2)`` writes it, in
    pieces: one session (and one failure) at a time, so that writing the report of a long run takes the memory
    of its largest session, not of the whole report. Run ``ledger.finalize()`` first to include min_hit.

    ``about`` says when and what: ``generated_at``, ``started_at``, ``run_id``,
    ``versions``. Sessions evicted from memory appear in the totals and
    failures only.
    """
    messages = ledger.failure_messages()
    totals = ledger.totals
    return _indented_json({
        "version": REPORT_VERSION,
        **(about or {}),
        "ok": ledger.ok,
        "expectations": {"expect": ledger.expect.value, "min_hit": ledger.min_hit},
        "totals": {**_counts(totals), "requests": totals.requests, "errors": ledger.errors,
                   "hit_ratio": _ratio(totals.hit_ratio), "judged_hit_ratio": _ratio(ledger.judged.hit_ratio),
                   "cost": _cost(totals.cost), "cost_unpriced_turns": totals.requests - totals.priced,
                   "sessions": ledger.seen,
                   "evicted_sessions": ledger.evicted,
                   **({"diagnostics": ledger.diagnoses.as_dict()} if ledger.diagnoses else {})},
        "sessions": (session_dict(session, ledger.pricer, messages.get(session.session_id, []))
                     for session in ledger.sessions),
        "failures": _failures(ledger),
    })


def _failures(ledger: Ledger) -> Iterator[dict[str, object]]:
    """Listed only once the sessions are written, so that the two lists are never in memory together."""
    for failure in ledger.failures:
        yield {"session_id": failure.session_id or None, "turn": failure.turn, "message": failure.message}


def _indented_json(members: Mapping[str, object]) -> Iterator[str]:
    """``json.dumps(members, indent=2) + "\\n"``, byte for byte, with the members that are iterators written as
    lists one item at a time.

    Each item is dumped on its own and indented by two levels: json.dumps
    escapes line breaks inside strings, so every line break it writes is one
    of its indentation's, and shifting them is what nesting would have done.
    """
    yield "{"
    for n, (name, value) in enumerate(members.items()):
        yield f"{',' if n else ''}\n  {json.dumps(name)}: "
        if not isinstance(value, Iterator):
            yield _nested(value, 1)
            continue
        opened = False
        for item in value:
            yield f"{',' if opened else '['}\n    {_nested(item, 2)}"
            opened = True
        yield "\n  ]" if opened else "[]"
    yield "\n}\n"


def _nested(value: object, level: int) -> str:
    """``value`` as json.dumps(indent=2) writes it ``level`` containers deep."""
    return json.dumps(value, indent=2).replace("\n", "\n" + "  " * level)

