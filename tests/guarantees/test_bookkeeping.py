"""Recording a turn costs the same at the 100,000th turn of a session as at the first.

A proxy in front of an outage sees one client retry for hours under one
session id: a record that scanned the session's turns (or threads) would slow
every flow of the proxy down as the session grows. Measured as a ratio between
the first and the last thousand turns of one run, never as an absolute time.
"""

from __future__ import annotations

import gc
import statistics
import time

import pytest

from cachepin.audit import Audit, RequestFacts
from cachepin.request.dialects import Dialect
from cachepin.request.snapshot import Snapshot
from cachepin.request.thread import Position, Thread
from cachepin.response.extract import Extracted
from cachepin.response.usage import Usage

TURNS = 100_000
BATCH = 1_000
BODY = {"model": "claude-sonnet-4-6", "system": "Be brief.", "max_tokens": 64,
        "messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"},
                     {"role": "user", "content": "again"}]}
HIT = Extracted(Usage("anthropic", "claude-sonnet-4-6", 12, 0, 1538, 85), final=True)
OUTAGE = Extracted(error="overloaded_error: Overloaded")


def _request(turn: int, snapshot: Snapshot) -> RequestFacts:
    """Turns of one session: the main thread, and a new sub-agent thread every 100 turns."""
    thread = Thread("main", "header") if turn % 100 else Thread(f"agent-{turn}", "header", parent="main")
    return RequestFacts("one-session", "header:x-session-id", "claude-sonnet-4-6", snapshot, thread,
                        Position.CONTINUATION)


@pytest.mark.parametrize(("expect", "max_turns"), [("off", 0), ("warm", 0), ("warm", 2000)])
def test_recording_a_turn_does_not_slow_down_as_the_session_grows(expect: str, max_turns: int) -> None:
    """Also with the session's older turns folded out of memory (``cache_max_turns``' default)."""
    audit = Audit()
    audit.ledger.expect = type(audit.ledger.expect)(expect)
    audit.ledger.max_turns = max_turns
    snapshot = Snapshot.from_request(Dialect.ANTHROPIC, BODY, 0.0)
    batches: list[float] = []
    gc.disable()  # what is measured is the bookkeeping, not when the collector happens to run
    try:
        for start in range(0, TURNS, BATCH):
            began = time.perf_counter()
            for turn in range(start, start + BATCH):
                extracted = HIT if turn % 4 == 0 else OUTAGE  # an outage: three retries fail for each success
                audit.record(_request(turn, snapshot), extracted, flow_id=f"flow-{turn}", started_at=float(turn),
                             status=200 if extracted is HIT else 529, stream=False, first_byte_at=None,
                             ended_at=float(turn) + 0.5)
            batches.append(time.perf_counter() - began)
    finally:
        gc.enable()
    session, = audit.ledger.sessions
    assert len(session.turns) == (max_turns or TURNS) and session.numbered == TURNS
    assert len(session.threads) == TURNS // 100 + 1  # the agents and main
    assert audit.ledger.errors == TURNS * 3 // 4 and audit.ledger.ok  # every success read the cache
    first, last = statistics.median(batches[1:6]), statistics.median(batches[-5:])  # batch 0 warms caches up
    assert last < 3 * first, f"the last 1k turns took {last / first:.1f}x as long as the first"
