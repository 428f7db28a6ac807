"""JSON parsing on the hot paths: orjson when it is installed, the stdlib's ``json`` otherwise, same results.

Every request body, SSE event and WebSocket message the addons read is parsed
on mitmproxy's one event loop, and orjson parses an agent body in 50-60% of
the time ``json`` takes. orjson is an optional extra (``pip install
cachepin[fast]``): a bare mitmproxy has only the stdlib, so both must answer
alike. Where orjson is stricter it raises, and ``json`` parses again: NaN and
Infinity, numbers too large for a double, lone surrogates, a byte order mark,
UTF-16 or UTF-32 bytes, nesting past 1024, and every invalid document, whose
error is then the stdlib's own. The one input orjson accepts differently,
an integer beyond 64 bits, it returns as a float of at least 2**63: a float
that large in its answer sends the document to ``json`` too.

``CACHEPIN_JSON=stdlib`` in the environment leaves orjson unused, to compare the two.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

_fast: Callable[[bytes | str], object] | None = None
try:
    if os.environ.get("CACHEPIN_JSON") != "stdlib":
        import orjson

        _fast = orjson.loads
except ImportError:
    pass

FAST = _fast is not None
"""Whether orjson parses."""
PARSER = "orjson" if FAST else "json"
"""The parser's name: the benchmark's figures depend on it."""

_INT64 = 2.0**63  # orjson returns an integer beyond 64 bits as a float at least this large


def loads(data: bytes | str) -> object:
    """``json.loads(data)``, faster where orjson is installed; raises what ``json.loads`` raises."""
    if _fast is not None:
        try:
            parsed = _fast(data)
        except ValueError:  # orjson.JSONDecodeError
            pass
        else:
            if not _holds_huge_float(parsed):
                return parsed
    return json.loads(data)


def _holds_huge_float(parsed: object) -> bool:
    """Whether ``parsed`` holds a float of magnitude 2**63 or more: maybe an integer that orjson could not hold.

    The walk adds about 15% to orjson's parse of an agent body, whose bytes are
    mostly long strings; a real float that large is rare, and json parses it alike.
    """
    pending: list[Any] = [parsed]  # JSON values: dicts, lists, str, int, float, bool and None
    while pending:
        value = pending.pop()
        kind = type(value)  # not isinstance: half the time, and JSON values are of these very types
        if kind is dict:
            pending.extend(value.values())
        elif kind is list:
            pending.extend(value)
        elif kind is float and not -_INT64 < value < _INT64:
            return True
    return False
