"""Server-sent events as the providers frame them, and gzip that never holds an event back.

A stream is a list of events, each ``(name, data)``: ``name`` becomes an
``event:`` line (``None``: none), ``data`` is JSON-encoded unless it is a
string already (``[DONE]``). Providers differ in how they write the JSON and
end the lines, which a ``Style`` says; the default is what Anthropic and
OpenAI stream.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

type Event = tuple[str | None, object]


@dataclass(frozen=True, slots=True)
class Style:
    """How an API writes its JSON and ends its SSE lines."""

    separators: tuple[str, str] = (",", ":")
    ensure_ascii: bool = True
    line_end: str = "\n"


COMPACT = Style()  # Anthropic's and OpenAI's streams; the simulator's
SPACED = Style((", ", ": "))  # json.dumps's default, as Python servers write JSON
RAW_UTF8 = Style(ensure_ascii=False)  # compact, with non-ASCII text unescaped (the benchmark's agent-like text)
GEMINI = Style((", ", ": "), line_end="\r\n")  # streamGenerateContent?alt=sse
DONE: Event = (None, "[DONE]")  # the end of an OpenAI Chat Completions stream


def dumps(value: object, style: Style = COMPACT) -> str:
    return json.dumps(value, separators=style.separators, ensure_ascii=style.ensure_ascii)


def frame(data: object, event: str | None = None, style: Style = COMPACT) -> bytes:
    """One SSE frame: an optional ``event:`` line, the ``data:`` line, the blank line that ends it."""
    payload = data if isinstance(data, str) else dumps(data, style)
    end = style.line_end
    return ((f"event: {event}{end}" if event else "") + f"data: {payload}{end}{end}").encode()


def frames(events: Iterable[Event], style: Style = COMPACT) -> list[bytes]:
    """Each event framed on its own: what a server writes one by one."""
    return [frame(data, name, style) for name, data in events]


def stream(events: Iterable[Event], style: Style = COMPACT) -> bytes:
    """A whole SSE body."""
    return b"".join(frames(events, style))


class FlushedGzip:
    """Gzip for SSE that flushes after every frame, so compression never holds an event back.

    Disabled, it passes frames through, so a server's streaming code has one path.
    """

    def __init__(self, enabled: bool = True) -> None:
        self._zlib = zlib.compressobj(wbits=31) if enabled else None

    def encode(self, data: bytes) -> bytes:
        return self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH) if self._zlib else data

    def close(self) -> bytes:
        """The gzip trailer (nothing when disabled)."""
        return self._zlib.flush() if self._zlib else b""


def gzip_frames(chunks: Iterable[bytes]) -> list[bytes]:
    """Each chunk gzipped and flushed on its own, the trailer on the last: a streamed gzip body, piece by piece."""
    encoder = FlushedGzip()
    out = [encoder.encode(data) for data in chunks]
    trailer = encoder.close()
    if out:
        out[-1] += trailer
    else:
        out.append(trailer)
    return out
