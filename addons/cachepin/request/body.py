"""A request body as JSON, parsed once per request and shared by both addons.

Both addons read each request body, and parsing a 500 KB agent request takes
over a millisecond of mitmproxy's one event loop: the inject addon hands its
parse to the audit through the flow's metadata (see ``addons/inject.py``)
instead of the audit parsing the same bytes again.
"""

from __future__ import annotations

from cachepin.request.json_parse import loads

METADATA_KEY = "cachepin_body"
"""The ``flow.metadata`` key under which the inject addon leaves ``(raw body, parse)`` for the audit."""


def parse_json_object(data: bytes | None) -> dict | None:
    """The body as a JSON object, or None: a body we cannot read identifies nothing."""
    if not data:
        return None
    try:
        parsed = loads(data)
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def reuse(stash: object, raw: bytes | None) -> dict | None:
    """The parse in ``stash`` when it was made of this very ``raw`` bytes object, else None; never parses.

    Identity, not equality: mitmproxy hands out one bytes object per unchanged
    body, so another object means the body was edited (or re-encoded) since.
    """
    if isinstance(stash, tuple) and len(stash) == 2 and raw and stash[0] is raw and isinstance(stash[1], dict):
        return stash[1]
    return None
