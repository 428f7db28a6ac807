"""The drivers of usage reading: the live stream tap and the reader of buffered or replayed bodies.

Both run the same SSE scanner over the same accumulator, so live and offline
figures cannot disagree.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable

from cachepin.request.dialects import Dialect
from cachepin.response.decoding import DecodeError, IncrementalDecoder
from cachepin.response.extract import Extracted, UsageAccumulator, usage_from_json
from cachepin.response.sse import SseScanner

BEDROCK_EVENT_STREAM = "application/vnd.amazon.eventstream"


def is_bedrock_event_stream(content_type: str) -> bool:
    """Bedrock's binary event streams, which are passed through streamed but not read (README: Known limits)."""
    return content_type.lower().startswith(BEDROCK_EVENT_STREAM)


def is_event_stream(content_type: str) -> bool:
    """Whether a Content-Type names an SSE body: its media type, case-insensitive, parameters ignored."""
    return content_type.split(";", 1)[0].strip().lower() == "text/event-stream"


def usage_from_body(dialect: Dialect, content_type: str, body: bytes) -> Extracted:
    """The usage of a buffered or replayed body, already content-decoded: JSON or SSE."""
    if is_event_stream(content_type):
        accumulator = UsageAccumulator(dialect)
        scanner = SseScanner(accumulator)
        scanner.feed(body)
        scanner.close()
        return accumulator.result
    if not body.strip():
        return Extracted()
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        kind = content_type.split(";", 1)[0].strip()[:60] or "no content type"
        return Extracted(warning=f"response body is not JSON ({kind})")
    return usage_from_json(dialect, obj)


def usage_of_response(
    dialect: Dialect, content_type: str, tap: StreamTap | None, body: Callable[[], bytes | None], other_stream: bool
) -> Extracted:
    """What a finished response said: from its tap, else its kept body; else a warning saying what is missing.

    ``body`` returns the content-decoded body, or None when mitmproxy kept none
    (a streamed body); ``other_stream``: another addon's stream callable, not
    the tap, streamed the response.
    """
    if tap is not None:
        return tap.result
    if is_bedrock_event_stream(content_type):
        return Extracted()  # not read (see README): verdict none, nothing to warn about per flow
    kept = body()
    if kept is not None:
        return usage_from_body(dialect, content_type, kept)
    if other_stream:
        return Extracted(warning="another addon streams this response, so its usage was not read")
    return Extracted(warning="the response body was streamed through and not kept, so its usage was not read: "
                             "add --set store_streamed_bodies=true")


class StreamTap:
    """The ``flow.response.stream`` callable of one SSE response.

    It returns each chunk object unchanged and at once, and never raises: an
    exception in a stream callable makes mitmproxy drop the chunk, corrupting
    the client's stream. Any failure is recorded as a warning and stops the
    reading, never the passing on. ``first_byte_at`` serves time to first
    token.
    """

    def __init__(
        self,
        dialect: Dialect,
        content_encoding: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.first_byte_at: float | None = None
        self._clock = clock
        self._accumulator = UsageAccumulator(dialect)
        self._scanner = SseScanner(self._accumulator)
        self._decoder: IncrementalDecoder | None = None
        try:
            self._decoder = IncrementalDecoder(content_encoding)
        except DecodeError as exc:
            self._stop(str(exc))

    @property
    def result(self) -> Extracted:
        """What the stream said so far: valid mid-stream and after a cut, not only at the end."""
        self._safely(self._scanner.flush)
        return self._accumulator.result

    def __call__(self, chunk: bytes) -> bytes:
        self._safely(self._take, chunk)
        return chunk

    def _take(self, chunk: bytes) -> None:
        if chunk:
            if self.first_byte_at is None:
                self.first_byte_at = self._clock()
            if self._decoder is not None:
                self._scanner.feed(self._decoder.decode(chunk))
        elif self._decoder is not None:  # the empty chunk: the end of the stream
            self._scanner.feed(self._decoder.finish())
            self._scanner.close()

    def _safely[*Args](self, step: Callable[[*Args], None], *args: *Args) -> None:
        """Runs one step of the reading; a failure stops the reading and becomes a warning."""
        try:
            step(*args)
        except DecodeError as exc:
            self._stop(str(exc))
        except Exception as exc:
            self._stop(f"usage tap stopped by an internal error ({type(exc).__name__})")

    def _stop(self, warning: str) -> None:
        self._decoder = None
        with contextlib.suppress(Exception):
            self._accumulator.warn(warning)
