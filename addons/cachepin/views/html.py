"""The HTML report: the JSON report's sessions drawn for people, in one file that opens from disk.

Built from the same per-session dicts as the JSON report (``report.session_dict``), so the
two never disagree: every sum shown is one of theirs, never added up again here (a session may
hold fewer turns than its sums cover, ``folded``). Self-contained (inline CSS and SVG, no
script, no URL), failures first so that a failing CI run opens on why. Everything that came
from the wire (session ids, models, reasons) goes through ``html.escape``. Pieces, one session
at a time, as the JSON writer does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from html import escape

from cachepin.turns.ledger import Ledger
from cachepin.views.report import session_dict
from cachepin.views.text import count, percent

BAR_WIDTH = 12  # px per turn in the chart
CHART_HEIGHT = 120
MAX_BARS = 400  # a chart draws the last this many turns; its caption says how many were left out
KINDS = (("cache_read_input_tokens", "read", "#2e7d32"), ("cache_creation_input_tokens", "written", "#f9a825"),
         ("input_tokens", "uncached", "#c62828"))
VERDICT_COLOURS = {"hit": "#2e7d32", "cold": "#1565c0", "miss": "#c62828", "none": "#757575", "error": "#6a1b9a"}
TURN_COLUMNS = ("turn", "thread", "verdict", "reason", "read", "written", "uncached", "model", "status",
                "cost billed")
TEXT_COLUMNS = {"thread", "verdict", "reason", "model"}  # left-aligned; the figures are right-aligned

STYLE = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f3f3f3}td.text{text-align:left}.failures{background:#fdecea;border:1px solid #c62828;padding:.5em 1em}
.ok{background:#e8f5e9;border:1px solid #2e7d32;padding:.5em 1em}.verdict{font-weight:bold}
.legend span{display:inline-block;width:1em;height:1em;vertical-align:middle;margin:0 .3em 0 1em}
.legend b{margin-left:1em}"""


def report_html(ledger: Ledger, about: Mapping[str, object] | None = None) -> Iterator[str]:
    """The HTML report in pieces; run ``ledger.finalize()`` first to include min_hit."""
    title = "cachepin report"
    yield (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
           f"<style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n")
    if about:
        yield "<p>" + " · ".join(f"{escape(str(k))}: {escape(_about_text(v))}" for k, v in about.items()) + "</p>\n"
    yield from _failures(ledger)
    yield _totals(ledger)
    messages = ledger.failure_messages()
    for session in ledger.sessions:
        yield _session(session_dict(session, ledger.pricer, messages.get(session.session_id, [])))
    yield "</body></html>\n"


def _about_text(value: object) -> str:
    """``versions`` and ``runs`` as words, not Python reprs."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_about_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(_about_text(item) for item in value)
    return str(value)


def _failures(ledger: Ledger) -> Iterator[str]:
    failures = list(ledger.failures)
    if not failures:
        yield '<section class="ok"><h2>Failures</h2><p>None: every expectation held.</p></section>\n'
        return
    yield f'<section class="failures"><h2>Failures ({len(failures)})</h2><ul>\n'
    for failure in failures:  # each message names its session and turn already
        yield f"<li>{escape(failure.message)}</li>\n"
    yield "</ul></section>\n"


def _totals(ledger: Ledger) -> str:
    totals = ledger.totals
    rows = {
        "requests": totals.requests, "errors": ledger.errors, "sessions": ledger.seen,
        "hit ratio (all turns)": percent(totals.hit_ratio), "hit ratio (judged)": percent(ledger.judged.hit_ratio),
        **_costs(totals.cost.as_dict() if totals.cost else None),
        "unpriced turns": totals.requests - totals.priced,
    }
    if ledger.evicted:
        rows["evicted sessions (in the totals only)"] = ledger.evicted
    return "<h2>Totals</h2>" + _table(rows)


def _session(summed: dict) -> str:
    """The session's figures, its chart and turns, then each thread's figures (and chart, when it has several)."""
    turns = summed["turns"]
    threads = summed["threads"]
    parts = [f'<section><h2>Session <code>{escape(str(summed["session_id"]))}</code> '
             f'({escape(str(summed["source"]))})</h2>', _table(_figures(summed))]
    parts += [f"<p><b>Failure:</b> {escape(message)}</p>" for message in summed["failures"]]
    parts.append(_chart(turns, summed["folded_turns"]))
    parts.append(_turn_table(turns))
    by_index = {turn["index"]: turn for turn in turns}
    for thread in threads:
        parent = f' · parent <code>{escape(str(thread["parent"]))}</code>' if thread["parent"] else ""
        parts.append(f'<h3>Thread <code>{escape(str(thread["thread_id"]))}</code> '
                     f'({escape(str(thread["source"]))}) · model {escape(str(thread["model"] or "n/a"))}{parent}</h3>')
        parts.append(_table(_figures(thread)))
        if len(threads) > 1:
            mine = [by_index[index] for index in thread["turns"] if index in by_index]
            parts.append(_chart(mine, thread["folded_turns"]))
        else:
            parts.append("<p>The session's only thread: its turns are the chart above.</p>")
    parts.append("</section>\n")
    return "\n".join(parts)


def _figures(sums: Mapping) -> dict[str, object]:
    return {"requests": sums["requests"], "errors": sums["errors"],
            "hit ratio (all turns)": percent(sums["hit_ratio"]),
            "hit ratio (judged)": percent(sums["judged_hit_ratio"]), **_costs(sums["cost"])}


def _costs(cost: Mapping[str, float] | None) -> dict[str, str]:
    cost = cost or {}
    return {"cost billed": _usd(cost.get("billed")), "cost uncached": _usd(cost.get("uncached"))}


def _reason(turn: Mapping) -> str:
    miss = turn.get("notes", {}).get("miss")
    return f'{miss["reason"]}: {miss["detail"]}' if miss else ""


def _chart(turns: list[dict], folded: int) -> str:
    """A stacked bar per turn (read, written, uncached input), the verdict's letter under each bar.

    ``folded``: turns in the sums but no longer held, which no bar can draw.
    """
    shown = turns[-MAX_BARS:]
    peak = max((sum(turn[field] or 0 for field, _, _ in KINDS) for turn in shown), default=0) or 1
    width = max(len(shown), 1) * BAR_WIDTH
    bars = []
    for n, turn in enumerate(shown):
        x, y = n * BAR_WIDTH, float(CHART_HEIGHT)
        for field, kind, colour in KINDS:
            height = (turn[field] or 0) * CHART_HEIGHT / peak
            y -= height
            bars.append(f'<rect x="{x}" y="{y:.1f}" width="{BAR_WIDTH - 2}" height="{height:.1f}" fill="{colour}">'
                        f'<title>turn {turn["index"]} {kind} {count(turn[field])}</title></rect>')
        verdict = str(turn["verdict"])
        reason = _reason(turn)
        bars.append(f'<text x="{x + BAR_WIDTH / 2 - 1}" y="{CHART_HEIGHT + 12}" font-size="9" text-anchor="middle" '
                    f'fill="{VERDICT_COLOURS.get(verdict, "#555")}"><title>turn {turn["index"]} {escape(verdict)}'
                    f'{escape(" · " + reason) if reason else ""}</title>{escape(verdict[:1].upper())}</text>')
    legend = "".join(f'<span style="background:{colour}"></span>{kind}' for _, kind, colour in KINDS)
    letters = "".join(f'<b style="color:{colour}">{verdict[:1].upper()}</b> {verdict}'
                      for verdict, colour in VERDICT_COLOURS.items())
    notes = []
    if len(shown) < len(turns):
        notes.append(f"the last {len(shown)} of {len(turns)} turns held")
    if folded > 0:
        notes.append(f"{folded} earlier turns are in the sums only")
    caption = f" ({'; '.join(notes)})" if notes else ""
    return (f'<p class="legend">input tokens per turn{caption}:{legend}{letters}</p>'
            f'<svg role="img" aria-label="input tokens per turn" width="{width}" height="{CHART_HEIGHT + 16}">'
            f'{"".join(bars)}</svg>')


def _turn_table(turns: list[dict]) -> str:
    """Each turn in words: the verdict, and beside it the reason of a miss (or of a partial hit)."""
    rows = []
    for turn in turns:
        verdict = str(turn["verdict"])
        cost = turn["cost"] or {}
        cells = {
            "turn": str(turn["index"]),
            "thread": escape(str(turn["thread"] or "")),
            "verdict": f'<span class="verdict" style="color:{VERDICT_COLOURS.get(verdict, "#555")}">'
                       f'{escape(verdict)}</span>',
            "reason": escape(_reason(turn)),
            **{kind: count(turn[field]) for field, kind, _ in KINDS},
            "model": escape(str(turn["model"] or "n/a")),
            "status": str(turn["status"]),
            "cost billed": _usd(cost.get("billed")),
        }
        rows.append("<tr>" + "".join(f'<td class="text">{cells[name]}</td>' if name in TEXT_COLUMNS
                                     else f"<td>{cells[name]}</td>" for name in TURN_COLUMNS) + "</tr>")
    return "<table><tr>" + "".join(f"<th>{name}</th>" for name in TURN_COLUMNS) + "</tr>" + "".join(rows) + "</table>"


def _table(rows: Mapping[str, object]) -> str:
    return "<table>" + "".join(f"<tr><th>{escape(name)}</th><td>{escape(str(value))}</td></tr>"
                               for name, value in rows.items()) + "</table>\n"


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.4f}"


