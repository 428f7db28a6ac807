"""The JSON report and the event lines: the ledger as JSON, for CI and other programs.

Pure functions over the ledger (``files`` writes them). Only counts, ids,
models and timings are rendered: no prompt or response text ever reaches the
ledger, so none can leak from here.
"""

from __future__ import annotations

import json

from cachepin.response.usage import COUNT_FIELDS
from cachepin.turns.counts import Counts, Pricer
from cachepin.turns.ledger import Ledger
from cachepin.turns.pricing import Cost
from cachepin.turns.turn import Turn

REPORT_VERSION = 1


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
        "ttft_ms": _ms(turn.ttft_ms),
        "duration_ms": _ms(turn.duration_ms),
        "cost": _cost(pricer(turn) if pricer and turn.ok else None),
    }
    if turn.miss is not None:
        out["notes"] = {"miss": {"reason": turn.miss.reason.value, "detail": turn.miss.detail,
                                 "evidence": turn.miss.evidence}}
    return out


def report_dict(ledger: Ledger) -> dict[str, object]:
    """The JSON report, schema version 1. Run ``ledger.finalize()`` first to include min_hit.

    Sessions evicted from memory appear in the totals and failures only.
    """
    messages = ledger.failure_messages()
    sessions = []
    for session in ledger.sessions:
        counts = session.counts(ledger.pricer)
        sessions.append(
            {
                "session_id": session.session_id,
                "source": session.source,
                "requests": counts.requests,
                **_counts(counts),
                "hit_ratio": _ratio(counts.hit_ratio),
                "cost": _cost(counts.cost),
                "failures": messages.get(session.session_id, []),
                "turns": [turn_dict(turn, ledger.pricer) for turn in session.turns],
            }
        )
    totals = ledger.totals
    return {
        "version": REPORT_VERSION,
        "ok": ledger.ok,
        "expectations": {"expect": ledger.expect.value, "min_hit": ledger.min_hit},
        "totals": {**_counts(totals), "requests": totals.requests, "hit_ratio": _ratio(totals.hit_ratio),
                   "cost": _cost(totals.cost)},
        "sessions": sessions,
        "failures": [
            {"session_id": failure.session_id, "turn": failure.turn, "message": failure.message}
            for failure in ledger.failures
        ],
    }


def event_line(session_id: str, source: str, turn: Turn, pricer: Pricer | None = None) -> str:
    """One JSON line for the cache_events file; json.dumps escapes newlines, so it is one line."""
    return json.dumps(
        {"session_id": session_id, "source": source, "turn": turn_dict(turn, pricer)}, separators=(",", ":")
    )
