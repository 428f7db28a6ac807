"""The JSON report and the event lines: the ledger as JSON, for CI and other programs.

Pure functions over the ledger (``files`` writes them). Only counts, ids,
models and timings are rendered: no prompt or response text ever reaches the
ledger, so none can leak from here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from cachepin.response.usage import COUNT_FIELDS
from cachepin.turns.counts import Counts, Pricer
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
    """The turn object shared by the report and the event lines; ``notes`` only for a turn with a miss reason."""
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
    return out


def _sums(turns: list[Turn], pricer: Pricer | None, judged: Counts) -> dict[str, object]:
    """What a session and a thread report of their turns: counts, both hit ratios, errors, cost."""
    counts = Counts.of((turn for turn in turns if turn.ok), pricer)
    return {
        "requests": counts.requests,
        **_counts(counts),
        "errors": sum(not turn.ok for turn in turns),
        "hit_ratio": _ratio(counts.hit_ratio),
        "judged_hit_ratio": _ratio(judged.hit_ratio),
        "cost": _cost(counts.cost),
    }


def _session_dict(session: Session, pricer: Pricer | None, failures: list[str]) -> dict[str, object]:
    threads = []
    for thread, turns in session.thread_turns():
        judged = Counts.of(turn for turn in turns if turn.ok and not turn.opens)
        threads.append({"thread_id": thread.thread_id, "source": thread.source, "parent": thread.parent,
                        "model": thread.model, **_sums(turns, pricer, judged),
                        "turns": [turn.index for turn in turns]})
    return {
        "session_id": session.session_id,
        "source": session.source,
        **_sums(session.turns, pricer, session.judged_counts()),
        "failures": failures,
        "threads": threads,
        "turns": [turn_dict(turn, pricer) for turn in session.turns],
    }


def report_dict(ledger: Ledger, about: Mapping[str, object] | None = None) -> dict[str, object]:
    """The JSON report, schema version 2 (docs/reports.md). Run ``ledger.finalize()`` first to include min_hit.

    ``about`` says when and what: ``generated_at``, ``started_at``, ``run_id``,
    ``versions``. Sessions evicted from memory appear in the totals and
    failures only.
    """
    messages = ledger.failure_messages()
    totals = ledger.totals
    return {
        "version": REPORT_VERSION,
        **(about or {}),
        "ok": ledger.ok,
        "expectations": {"expect": ledger.expect.value, "min_hit": ledger.min_hit},
        "totals": {**_counts(totals), "requests": totals.requests, "errors": ledger.errors,
                   "hit_ratio": _ratio(totals.hit_ratio), "judged_hit_ratio": _ratio(ledger.judged.hit_ratio),
                   "cost": _cost(totals.cost), "sessions": len(ledger.sessions) + ledger.evicted,
                   "evicted_sessions": ledger.evicted},
        "sessions": [_session_dict(session, ledger.pricer, messages.get(session.session_id, []))
                     for session in ledger.sessions],
        "failures": [
            {"session_id": failure.session_id or None, "turn": failure.turn, "message": failure.message}
            for failure in ledger.failures
        ],
    }


def event_line(session_id: str, source: str, turn: Turn, pricer: Pricer | None = None) -> str:
    """One JSON line for the cache_events file; json.dumps escapes newlines, so it is one line."""
    return json.dumps(
        {"session_id": session_id, "source": source, "turn": turn_dict(turn, pricer)}, separators=(",", ":")
    )
