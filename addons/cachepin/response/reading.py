"""What the audit read of a streamed response, in a form a flow can carry (``flow.metadata``).

mitmproxy keeps no body of a streamed response unless ``store_streamed_bodies``
is set, and none at all of a stream that was cut or that the client left
early. A capture (``-w``) of such a flow would replay with nothing to read, so
the tap keeps its reading on the flow, and a replay (``-nr``) records the turn
from it exactly as the live run did. A capture may have been edited by anyone:
a record that is not what ``as_record`` writes is refused, never trusted in
part.
"""

from __future__ import annotations

from typing import Any

from cachepin.response.diagnostics import Diagnosis, diagnosis
from cachepin.response.extract import Extracted
from cachepin.response.usage import COUNT_FIELDS, SPLIT_FIELDS, Usage

READING_KEY = "cachepin_read"
_VERSION = 1
_FIGURES = (*COUNT_FIELDS, *SPLIT_FIELDS)


def as_record(extracted: Extracted) -> dict[str, Any]:
    """Plain values only (str, int, bool, None, dict): what mitmproxy's flow files store."""
    usage = extracted.usage
    return {
        "version": _VERSION,
        "usage": None if usage is None else {
            "provider": usage.provider, "model": usage.model, **{name: getattr(usage, name) for name in _FIGURES}},
        "error": extracted.error,
        "warning": extracted.warning,
        "response_id": extracted.response_id,
        "final": extracted.final,
        "diagnosis": None if extracted.diagnosis is None else {
            "reason": extracted.diagnosis.reason, "missed_tokens": extracted.diagnosis.missed_tokens},
    }


def from_record(record: object) -> Extracted | None:
    """The reading ``as_record`` wrote; None for anything else (another version, a hand-edited capture)."""
    if not isinstance(record, dict) or record.get("version") != _VERSION or not isinstance(record.get("final"), bool):
        return None
    texts = [record.get(name) for name in ("error", "warning", "response_id")]
    if not all(text is None or isinstance(text, str) for text in texts):
        return None
    usage = record.get("usage")
    if usage is not None:
        usage = _usage(usage)
        if usage is None:
            return None
    diagnosed = record.get("diagnosis")  # absent from the readings of earlier versions
    if diagnosed is not None:
        diagnosed = _diagnosis(diagnosed)
        if diagnosed is None:
            return None
    error, warning, response_id = texts
    return Extracted(usage, error, warning, response_id, record["final"], diagnosed)


def _diagnosis(record: object) -> Diagnosis | None:
    if not isinstance(record, dict) or not _is_count(record.get("missed_tokens")):
        return None
    return diagnosis(record.get("reason"), record.get("missed_tokens"))


def _usage(record: object) -> Usage | None:
    if not isinstance(record, dict) or not isinstance(record.get("provider"), str):
        return None
    model = record.get("model")
    figures = [record.get(name) for name in _FIGURES]
    if not (model is None or isinstance(model, str)) or not all(_is_count(value) for value in figures):
        return None
    return Usage(record["provider"], model, *figures)


def _is_count(value: object) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)
