"""Packing keeps a ledger small: what the audit records per turn, at realistic magnitudes."""

from __future__ import annotations

import gc
import tracemalloc
import uuid

from cachepin.response.usage import Usage
from cachepin.turns.ledger import Ledger


def test_a_five_turn_session_holds_at_most_2_kb() -> None:
    """What the audit records per turn: UUID flow ids, timings, Anthropic usage (realistic magnitudes)."""
    sessions = 400
    gc.collect()
    tracemalloc.start()
    try:
        ledger = Ledger()
        for s in range(sessions):
            session_id = f"fp_{s:032x}"
            for t in range(5):
                usage = Usage("anthropic", "claude-sonnet-4-5", 3 + t, 1000 + s + t, 40_000 + s * 7 + t, 300 + t,
                              1000 + s + t, 0)
                ledger.record(session_id, "fingerprint", flow_id=str(uuid.uuid4()), started_at=1.7e9 + s + t / 10,
                              status=200, stream=True, usage=usage, model="claude-sonnet-4-5",
                              ttft_ms=300.5 + t, duration_ms=2000.25 + s)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert ledger.totals.requests == sessions * 5
    assert held / sessions <= 2048
