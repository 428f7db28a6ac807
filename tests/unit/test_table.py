"""The summary table: a row per session and a total, figures aligned, n/a where nothing was reported."""

from __future__ import annotations

import pytest
from ledgers import long_session, record

from cachepin.turns.ledger import Ledger
from cachepin.views.table import summary_table


def test_summary_table(ledger: Ledger) -> None:
    lines = summary_table(ledger).splitlines()
    assert lines[0].split() == ["session", "source", "turns", "hit/miss", "errors", "read", "creation", "input",
                                "output", "hit", "ratio", "judged", "status"]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[2:5]}
    assert rows["3f2a9c1e-000…"][2:] == ["2", "1/0", "1", "9000", "9000", "20", "14", "49.9%", "99.9%", "ok"]
    assert rows["second"][2:] == ["2", "0/1", "0", "0", "3076", "24", "14", "0.0%", "0.0%", "FAIL"]
    assert rows["third"][2:] == ["1", "0/0", "0", "-", "-", "-", "-", "n/a", "n/a", "ok"]
    assert lines[6].split() == ["TOTAL", "5", "1/1", "1", "9000", "12076", "44", "28", "42.6%", "85.2%", "FAIL"]
    assert len({len(line) for line in (lines[1], lines[5])}) == 1
    assert len(lines) == 7


def test_summary_table_of_nothing_shows_na_and_mentions_evictions() -> None:
    assert summary_table(Ledger()).splitlines()[-1].split() == ["TOTAL", "0", "0/0", "0", "-", "-", "-", "-", "n/a",
                                                                "n/a", "ok"]
    ledger = Ledger(max_sessions=1)
    record(ledger, "a", 0)
    record(ledger, "b", 0)
    assert "1 older sessions evicted" in summary_table(ledger).splitlines()[-1]


@pytest.mark.parametrize("max_turns", [1, 100])
def test_a_long_session_has_the_same_rows_whatever_it_holds(max_turns: int) -> None:
    """Its rows sum the turns folded out of memory (max_turns) too."""
    def table(limit: int) -> str:
        ledger = long_session(Ledger(expect="warm", max_turns=limit), 5000)
        ledger.finalize()
        return summary_table(ledger)
    held = table(max_turns)
    assert held == table(0)
    row = held.splitlines()[2].split()
    assert row[0] == "long" and int(row[2]) + int(row[4]) == 5000  # successes and errors: every turn of it
