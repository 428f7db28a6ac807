"""How figures and names are written in the plain-text outputs (log lines, the table)."""

from __future__ import annotations

import re

from cachepin.response.extract import ERROR_TYPE

_NOT_A_TOKEN = re.compile(r"[\s\x00-\x1f\x7f]+")


def token(value: object) -> str:
    """A figure or key=value log value: ``-`` for null; no whitespace or control characters,
    since an upstream names the model and a client the session."""
    return "-" if value is None else _NOT_A_TOKEN.sub("_", str(value))


def error_kind(error: str | None) -> str | None:
    """The turn's error when it is a type (``extract`` keeps nothing else of a provider's error), None for
    anything else: mitmproxy's message of a broken connection is a sentence, which may quote a URL, no type."""
    return error if error is not None and ERROR_TYPE.fullmatch(error) else None


def count(value: int | None) -> str:
    """A token count for people (a comment, the HTML report): thousands separated, ``n/a`` when not reported."""
    return "n/a" if value is None else f"{value:,}"


def percent(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio * 100:.1f}%"
