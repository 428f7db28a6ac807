"""The per-session table for terminals and CI logs, logged at shutdown and on ``cache.report``."""

from __future__ import annotations

from cachepin.turns.counts import Sums
from cachepin.turns.ledger import Ledger, Session
from cachepin.turns.verdicts import short_id
from cachepin.views.text import percent, token

_TABLE_HEADER = ["session", "source", "turns", "hit/miss", "errors", "read", "creation", "input", "output",
                 "hit ratio", "judged", "status"]
_TABLE_FIELDS = ("cache_read_input_tokens", "cache_creation_input_tokens", "input_tokens", "output_tokens")
_LEFT_ALIGNED = {0, 1, len(_TABLE_HEADER) - 1}


def _table_row(name: str, source: str, sums: Sums, status: str) -> list[str]:
    counts = sums.counts
    return [
        name,
        token(source),
        str(counts.requests),
        f"{counts.hits}/{counts.misses}",
        str(sums.errors),
        *(token(getattr(counts, field)) for field in _TABLE_FIELDS),
        percent(counts.hit_ratio),
        percent(sums.judged.hit_ratio),
        status,
    ]


def _rows(session: Session, failed: bool) -> list[list[str]]:
    """The session's row, then one per thread when it has several; folded turns included (``Ledger.max_turns``)."""
    rows = [_table_row(token(short_id(session.session_id)), session.source, session.sums(), "FAIL" if failed else "ok")]
    threads = session.thread_sums()
    for thread, _, sums in threads if len(threads) > 1 else []:
        rows.append(_table_row("  thread " + token(short_id(thread.thread_id)), thread.source, sums, ""))
    return rows


def summary_table(ledger: Ledger) -> str:
    """A fixed-width table for terminals and CI logs: a row per session (and per thread of a session that
    has several) and a totals row.

    ``turns`` counts successful turns, like the totals; ``errors`` the others. ``judged`` is the hit ratio
    ``min_hit`` judges: over the successful turns that do not open their thread.
    """
    messages = ledger.failure_messages()
    rows = [row for session in ledger.sessions for row in _rows(session, session.session_id in messages)]
    total = _table_row("TOTAL", "", Sums(counts=ledger.totals, judged=ledger.judged, errors=ledger.errors),
                       "ok" if ledger.ok else "FAIL")
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
