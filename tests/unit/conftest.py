"""The ledger most renderer tests read, as a fixture of the unit tests."""

from __future__ import annotations

import pytest
from ledgers import SID, record

from cachepin.turns.ledger import Ledger


@pytest.fixture
def ledger() -> Ledger:
    """Three sessions: one warm, one failing warm and min_hit, one without cache figures."""
    ledger = Ledger(expect="warm", min_hit=50)
    for read in (0, 9000):
        record(ledger, SID, read, creation=9000 - read)
    record(ledger, SID, 0, status=529)
    for read in (0, 0):
        record(ledger, "second", read, creation=1538, input_tokens=12)
    record(ledger, "third", None)
    ledger.finalize()
    return ledger
