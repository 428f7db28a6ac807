"""What the ledger tells the outside world: JSON report, event lines, JUnit, a table, log lines.

All renderers are pure functions over the ledger; the two file writers are
the only code that touches disk, and are written so that a crash or a second
writer never leaves a truncated report or a torn event line. Only counts,
ids, models and timings are rendered: no prompt or response text ever
reaches the ledger, so none can leak from here.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from cachepin.ledger import COUNT_FIELDS, Counts, Ledger, Pricer, Turn, Verdict, short_id
from cachepin.prices import Cost

REPORT_VERSION = 1
_NOT_A_TOKEN = re.compile(r"[\s\x00-\x1f\x7f]+")
_ERROR_KIND = re.compile(r"[A-Za-z0-9_.-]{1,40}")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _counts(source: Turn | Counts) -> dict[str, int | None]:
    return {name: getattr(source, name) for name in COUNT_FIELDS}


def _token(value: object) -> str:
    """A figure or key=value log value: ``-`` for null; no whitespace or control characters,
    since an upstream names the model and a client the session."""
    return "-" if value is None else _NOT_A_TOKEN.sub("_", str(value))


def _ratio(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _cost(cost: Cost | None) -> dict[str, float] | None:
    return None if cost is None else cost.as_dict()


def turn_dict(turn: Turn, pricer: Pricer | None = None) -> dict[str, object]:
    """The turn object shared by the report and the event lines; ``notes`` only when set."""
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
    if turn.notes:
        out["notes"] = turn.notes
    return out


def _messages_by_session(ledger: Ledger) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for failure in ledger.failures:
        grouped.setdefault(failure.session_id, []).append(failure.message)
    return grouped


def report_dict(ledger: Ledger) -> dict[str, object]:
    """The JSON report, schema version 1. Run ``ledger.finalize()`` first to include min_hit.

    Sessions evicted from memory appear in the totals and failures only.
    """
    messages = _messages_by_session(ledger)
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


def write_json_atomic(path: str | os.PathLike[str], obj: object) -> None:
    """Write ``obj`` as indented JSON, atomically (see ``write_atomic``)."""
    write_atomic(path, json.dumps(obj, indent=2) + "\n")


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` so readers see the old file or the new one, never half of either.

    The temp file is in the same directory because ``os.replace`` is atomic
    only within a file system; fsync first, or a crash after the rename can
    still leave an empty file. mkstemp makes the file private (0600); a report
    is not, and CI often collects artifacts as another user, hence 0644.
    """
    target = Path(path)
    data = text.encode()
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            if hasattr(os, "fchmod"):  # POSIX (and Windows only from Python 3.13)
                os.fchmod(file.fileno(), 0o644)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append one line with a single O_APPEND write, so concurrent writers never interleave.

    A short write (disk full) raises instead of retrying: a retry would be a
    second write that another writer could slip in front of.
    """
    if "\n" in line or "\r" in line:
        raise ValueError("append_line takes a single line without line breaks")
    data = (line + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
    finally:
        os.close(fd)
    if written != len(data):
        raise OSError(f"short write to {os.fspath(path)}: {written} of {len(data)} bytes")


def _xml_text(text: str) -> str:
    """Session ids can come from request bodies; control characters would make the XML unparsable."""
    return _NOT_XML.sub("\ufffd", text)


def junit_xml(ledger: Ledger) -> str:
    """JUnit XML, one testcase per session, so CI systems show failing sessions natively.

    Evicted sessions that failed get a testcase too; the ones that passed are
    no longer known by id.
    """
    messages = _messages_by_session(ledger)
    session_ids = [session.session_id for session in ledger.sessions]
    held = set(session_ids)
    session_ids += [sid for sid in messages if sid not in held]
    failed = sum(1 for sid in session_ids if sid in messages)
    counts = {"tests": str(len(session_ids)), "failures": str(failed), "errors": "0", "skipped": "0"}
    root = ET.Element("testsuites", name="cachepin", **counts)
    suite = ET.SubElement(root, "testsuite", name="cachepin", **counts)
    for sid in session_ids:
        case = ET.SubElement(suite, "testcase", name=_xml_text(sid), classname="cachepin")
        if sid in messages:
            failure = ET.SubElement(case, "failure", message=_xml_text(messages[sid][0]), type="cachepin")
            failure.text = _xml_text("\n".join(messages[sid]))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _percent(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio * 100:.1f}%"


_TABLE_HEADER = ["session", "source", "turns", "hit/miss", "read", "creation", "input", "output", "hit ratio", "status"]
_TABLE_FIELDS = ("cache_read_input_tokens", "cache_creation_input_tokens", "input_tokens", "output_tokens")
_LEFT_ALIGNED = {0, 1, len(_TABLE_HEADER) - 1}


def _table_row(name: str, source: str, counts: Counts, ok: bool) -> list[str]:
    return [
        _token(name),
        _token(source),
        str(counts.requests),
        f"{counts.hits}/{counts.misses}",
        *(_token(getattr(counts, field)) for field in _TABLE_FIELDS),
        _percent(counts.hit_ratio),
        "ok" if ok else "FAIL",
    ]


def summary_table(ledger: Ledger) -> str:
    """A fixed-width table for terminals and CI logs: one row per session and a totals row.

    ``turns`` counts successful turns, like the totals; error turns are in the JSON report.
    """
    messages = _messages_by_session(ledger)
    rows = [
        _table_row(short_id(s.session_id), s.source, s.counts(), s.session_id not in messages)
        for s in ledger.sessions
    ]
    total = _table_row("TOTAL", "", ledger.totals, ledger.ok)
    widths = [max(len(row[i]) for row in (_TABLE_HEADER, *rows, total)) for i in range(len(_TABLE_HEADER))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i in _LEFT_ALIGNED else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths))
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    lines = [line(_TABLE_HEADER), rule, *map(line, rows), rule, line(total)]
    if ledger.evicted:
        lines.append(f"({ledger.evicted} older sessions evicted from memory: counted in TOTAL and failures only)")
    return "\n".join(lines) + "\n"


def _error_kind(error: str | None) -> str | None:
    """The provider's error type ("overloaded_error" of "overloaded_error: Overloaded"), never its message:
    a message may quote the request. None when the error names no type."""
    kind, colon, _ = (error or "").partition(":")
    return kind if colon and _ERROR_KIND.fullmatch(kind) else None


def turn_log_line(session_id: str, turn: Turn) -> str:
    """The one-line INFO log of a turn, greppable as key=value."""
    parts = [
        "cachepin",
        f"session={_token(short_id(session_id))}",
        f"turn={turn.index}",
        f"model={_token(turn.model)}",
        f"verdict={turn.verdict.value}",
        f"read={_token(turn.cache_read_input_tokens)}",
        f"creation={_token(turn.cache_creation_input_tokens)}",
        f"input={_token(turn.input_tokens)}",
        f"output={_token(turn.output_tokens)}",
    ]
    if turn.ttft_ms is not None:
        parts.append(f"ttft_ms={turn.ttft_ms:.0f}")
    if turn.verdict is Verdict.ERROR:
        parts.append(f"status={turn.status}")
        kind = _error_kind(turn.error)
        if kind:
            parts.append(f"error={kind}")
    return " ".join(parts)
