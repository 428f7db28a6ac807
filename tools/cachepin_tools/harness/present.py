"""What the harness commands print: percentages, dollars, the session table, miss reasons and failures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cachepin.turns.verdicts import short_id
from cachepin_tools.harness.report import Report


def percent(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio * 100:.1f}%"


def usd(amount: float) -> str:
    return f"-${-amount:.4f}" if amount < 0 else f"${amount:.4f}"


def reason_lines(report: Report) -> list[str]:
    """Each miss reason with its count and the explainer's detail of its first occurrence."""
    return [f"{reason} ×{count}: {report.example(reason)}" for reason, count in report.reasons.most_common()]


def session_table(report: Report) -> list[str]:
    """One row per session (verdicts turn by turn, hit ratio, cost, ok/FAIL) and a totals row."""
    header = ("session", "source", "verdicts", "hit ratio", "after turn 1", "billed", "saving", "status")
    rows = [
        (short_id(s.session_id), s.source, " ".join(t.verdict for t in s.turns), percent(s.hit_ratio),
         percent(s.later_ratio), *_money(s.cost), "FAIL" if s.failures else "ok")
        for s in report.sessions
    ]
    hits, later = report.later_hits
    total = ("TOTAL", "", f"{hits}/{later} later turns hit", percent(report.hit_ratio), "", *_money(report.cost),
             "ok" if report.ok else "FAIL")
    widths = [max(len(row[i]) for row in (header, *rows, total)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return [line(header), rule, *map(line, rows), rule, line(total)]


def _money(cost: Mapping[str, float] | None) -> tuple[str, str]:
    """(billed, saving), or dashes for turns of a model without a known price."""
    return (usd(cost["billed"]), usd(cost["saving"])) if cost else ("-", "-")


def failure_lines(report: Report) -> list[str]:
    """For each failing session: its explained misses, then the audit's failure messages."""
    lines = []
    for session in report.sessions:
        if not session.failures:
            continue
        misses = [f"turn {n} {t.verdict} ({t.reason})" for n, t in enumerate(session.turns, 1) if t.reason]
        lines.append(f"{short_id(session.session_id)}: {', '.join(misses) or 'no miss explained'}")
        lines += [f"  {message}" for message in session.failures]
    return lines
