"""How figures and names are written in the plain-text outputs (log lines, the table)."""

from __future__ import annotations

import re

_NOT_A_TOKEN = re.compile(r"[\s\x00-\x1f\x7f]+")


def token(value: object) -> str:
    """A figure or key=value log value: ``-`` for null; no whitespace or control characters,
    since an upstream names the model and a client the session."""
    return "-" if value is None else _NOT_A_TOKEN.sub("_", str(value))


def percent(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio * 100:.1f}%"
