"""Raw HTTP/1.1 responses, for servers that write the socket themselves (the scripted and benchmark upstreams)."""

from __future__ import annotations

from collections.abc import Sequence

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 529: "Overloaded"}


def head(status: int, headers: Sequence[tuple[str, str]], reason: str | None = None) -> bytes:
    """The status line and header fields, exactly as given, and the blank line."""
    lines = [f"HTTP/1.1 {status} {reason or REASONS.get(status, 'Status')}", *(f"{n}: {v}" for n, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def response_bytes(status: int, headers: Sequence[tuple[str, str]], body: bytes = b"",
                   reason: str | None = None, framing: str = "length") -> bytes:
    """A whole response: ``framing`` is "length" (adds Content-Length), "chunked" or "none" (close-delimited)."""
    if framing == "length":
        return head(status, [*headers, ("content-length", str(len(body)))], reason) + body
    if framing == "chunked":
        return chunked_head(status, headers, reason) + (chunk(body) if body else b"") + chunk(b"")
    return head(status, headers, reason) + body


def chunked_head(status: int, headers: Sequence[tuple[str, str]], reason: str | None = None) -> bytes:
    """The head of a chunked response, for a body sent piece by piece with ``chunk``."""
    return head(status, [*headers, ("transfer-encoding", "chunked")], reason)


def chunk(data: bytes) -> bytes:
    """One chunk of chunked transfer coding; ``chunk(b"")`` is the last one."""
    return b"%x\r\n%s\r\n" % (len(data), data)
