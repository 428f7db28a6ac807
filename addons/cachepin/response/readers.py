"""The drivers of usage reading: the live stream tap and the reader of buffered or replayed bodies.

Both run the same scanner over the same accumulator, so live and offline
figures cannot disagree: the SSE scanner for ``text/event-stream``, the AWS
event-stream scanner for Bedrock's binary streams.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from cachepin.request.dialects import Dialect
from cachepin.request.json_parse import loads
from cachepin.response.decoding import DecodeError, IncrementalDecoder
from cachepin.response.eventstream import EventStreamScanner
from cachepin.response.extract import Extracted, UsageAccumulator, usage_from_json
from cachepin.response.reading import as_record, from_record
from cachepin.response.sse import SseScanner

BEDROCK_EVENT_STREAM = "application/vnd.amazon.eventstream"


class Scanner(Protocol):
    """Finds the events of a decoded stream that carry usage or an error, and feeds them to its accumulator."""

    def feed(self, data: bytes) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


type ScannerFactory = Callable[[UsageAccumulator], Scanner]


def is_bedrock_event_stream(content_type: str) -> bool:
    """Whether a Content-Type names an AWS event stream (Bedrock's binary streams), parameters ignored."""
    return content_type.split(";", 1)[0].strip().lower() == BEDROCK_EVENT_STREAM


def is_event_stream(content_type: str) -> bool:
    """Whether a Content-Type names an SSE body: its media type, case-insensitive, parameters ignored."""
    return content_type.split(";", 1)[0].strip().lower() == "text/event-stream"


def scanner_for(content_type: str) -> ScannerFactory | None:
    """The scanner of a streamed body's framing, or None for a body that is not a stream (JSON)."""
    if is_event_stream(content_type):
        return SseScanner
    if is_bedrock_event_stream(content_type):
        return EventStreamScanner
    return None


def usage_from_body(dialect: Dialect, content_type: str, body: bytes) -> Extracted:
    """The usage of a buffered or replayed body, already content-decoded: JSON, SSE or an AWS event stream."""
    scanner_of = scanner_for(content_type)
    if scanner_of is not None:
        accumulator = UsageAccumulator(dialect)
        scanner = scanner_of(accumulator)
        scanner.feed(body)
        scanner.close()
        return accumulator.result
    if not body.strip():
        return Extracted()
    try:
        obj = loads(body)
    except (ValueError, RecursionError):
        kind = content_type.split(";", 1)[0].strip()[:60] or "no content type"
        return Extracted(warning=f"response body is not JSON ({kind})")
    return usage_from_json(dialect, obj)


def usage_of_response(
    dialect: Dialect,
    content_type: str,
    tap: StreamTap | None,
    body: Callable[[], bytes | None],
    *,
    other_stream: bool = False,
    kept_reading: object = None,
    live: bool = True,
) -> Extracted:
    """What a finished response said: from its tap, its kept body or the reading a capture kept.

    Else a warning that says what is missing. ``body`` returns the
    content-decoded body, or None when mitmproxy kept none (a streamed body);
    ``other_stream``: another addon's stream callable, not the tap, streamed
    the response; ``kept_reading``: what the live run's tap read
    (``reading.as_record``), found on a flow read from a file (``live`` false).
    """
    if tap is not None:
        return tap.result
    kept = body()
    if kept is not None:
        return usage_from_body(dialect, content_type, kept)
    read = from_record(kept_reading)
    if read is not None:
        return read
    if other_stream:
        return Extracted(warning="another addon streams this response, so its usage was not read")
    if not live:
        return Extracted(warning="the capture holds neither this streamed response's body nor the audit's reading "
                                 "of it: capture with the cache_audit script loaded, or with "
                                 "--set store_streamed_bodies=true")
    return Extracted(warning="the response body was streamed through and not kept, so its usage was not read: "
                             "add --set store_streamed_bodies=true")


def interrupted(extracted: Extracted, message: str) -> Extracted:
    """What a response that did not end said: an error turn (``message`` says why, unless the provider's own
    error does), except when its final usage had been read: a client may hang up at its last event."""
    if extracted.final and extracted.error is None:
        return extracted
    return replace(extracted, error=extracted.error or message)


class StreamTap:
    """The ``flow.response.stream`` callable of one streamed response: SSE, or (``scanner``) an AWS event stream.

    It returns each chunk object unchanged and at once, and never raises: an
    exception in a stream callable makes mitmproxy drop the chunk, corrupting
    the client's stream. Any failure is recorded as a warning and stops the
    reading, never the passing on. ``first_byte_at`` serves time to first
    token. ``reading`` is what it has read (``reading.as_record``), kept up
    to date as usage and error events pass: a flow that carries it in its
    metadata is saved (``-w``, whose hooks run before any script's) with it,
    even when the stream was cut before its end.
    """

    def __init__(
        self,
        dialect: Dialect,
        content_encoding: str = "",
        clock: Callable[[], float] = time.monotonic,
        scanner: ScannerFactory = SseScanner,
    ) -> None:
        self.first_byte_at: float | None = None
        self.reading: dict[str, Any] = {}
        self._clock = clock
        self._accumulator = UsageAccumulator(dialect)
        self._scanner = scanner(self._accumulator)
        self._decoder: IncrementalDecoder | None = None
        self._published = 0
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
        if self._accumulator.changes != self._published:
            self._publish()

    def _publish(self) -> None:
        """Without the scanner's flush: a Gemini line held back is published when the next one replaces it, or
        at the end; parsing each one here would undo that saving."""
        self._published = self._accumulator.changes
        self.reading.update(as_record(self._accumulator.result))

    @property
    def interrupted(self) -> Extracted:
        """What a stream that did not end had said, as the flow's ``reading`` keeps it: what a replay sees."""
        return from_record(self.reading) or Extracted()

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
            self._publish()
