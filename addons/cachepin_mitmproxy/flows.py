"""What the audit's hooks read off a mitmproxy flow: its dialect, its tap, the session the inject addon pinned."""

from __future__ import annotations

from mitmproxy import http

from cachepin.request.dialects import Dialect, dialect_for, websocket_dialect_for
from cachepin.response.readers import StreamTap


def dialect_of(flow: http.HTTPFlow) -> Dialect | None:
    return dialect_for(flow.request.method, flow.request.path)


def socket_dialect_of(flow: http.HTTPFlow) -> Dialect | None:
    return websocket_dialect_for(flow.request.method, flow.request.path, flow.request.headers.get("upgrade", ""))


def tap_of(flow: http.HTTPFlow) -> StreamTap | None:
    """The flow's own tap: kept on the flow, so it outlives a hot reload of this script."""
    stream = flow.response.stream if flow.response is not None else None
    return stream if isinstance(stream, StreamTap) else None


def pinned_of(flow: http.HTTPFlow) -> tuple[str, str] | None:
    """The session the inject addon resolved for this flow, if it ran."""
    pinned = flow.metadata.get("cachepin")
    if isinstance(pinned, dict) and pinned.get("session_id"):
        return pinned["session_id"], pinned.get("source", "")
    return None
