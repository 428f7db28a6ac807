"""The per-session table for terminals and CI logs, logged at shutdown and on ``cache.report``."""

from __future__ import annotations

from cachepin.turns.counts import Counts
from cachepin.turns.ledger import Ledger
from cachepin.turns.verdicts import short_id
from cachepin.views.text import percent, token

_TABLE_HEADER = ["session", "source", "turns", "hit/miss", "read", "creation", "input", "output", "hit ratio", "status"]
_TABLE_FIELDS = ("cache_read_input_tokens", "cache_creation_input_tokens", "input_tokens", "output_tokens")
_LEFT_ALIGNED = {0, 1, len(_TABLE_HEADER) - 1}


def _table_row(name: str, source: str, counts: Counts, ok: bool) -> list[str]:
    return [
        token(name),
        token(source),
        str(counts.requests),
        f"{counts.hits}/{counts.misses}",
        *(token(getattr(counts, field)) for field in _TABLE_FIELDS),
        percent(counts.hit_ratio),
        "ok" if ok else "FAIL",
    ]


def summary_table(ledger: Ledger) -> str:
    """A fixed-width table for terminals and CI logs: one row per session and a totals row.

    ``turns`` counts successful turns, like the totals; error turns are in the JSON report.
    """
    messages = ledger.failure_messages()
    rows = [
        _table_row(short_id(s.session_id), s.source, s.counts(), s.session_id not in messages)
        for s in ledger.sessions
    ]
    total = _table_row("TOTAL", "", ledger.totals, ledger.ok)
    widths = [max(len(row[i]) for row in (_TABLE_HEADER, *rows, total)) for i in range(len(_TABLE_HEADER))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i in _LEFT_ALIGNED else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    lines = [line(_TABLE_HEADER), rule, *map(line, rows), rule, line(total)]
    if ledger.evicted:
        lines.append(f"({ledger.evicted} older sessions evicted from memory: counted in TOTAL and failures only)")
    return "\n".join(lines) + "\n"
