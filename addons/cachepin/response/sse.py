"""The SSE scanner: finds the few ``data:`` lines of a stream that carry usage or an error.

mitmproxy runs every stream callable on its one event loop, so the tap must
keep up with the wire: JSON-parsing every event of an Anthropic stream runs at
about 35 MB/s, far below what a proxy must tee. Usage and errors sit in a
handful of events, so the scanner searches the decoded bytes with
``bytes.find`` for the marks those events carry (``USAGE_MARKS``,
``ERROR_MARK``) and parses only the complete ``data:`` lines that contain
one. A mark inside model text costs one needless parse, nothing more.

The same scanner reads live streams and buffered or replayed bodies
(``readers``), so live and offline figures cannot disagree. It knows nothing
of providers: the sink it feeds (``extract.UsageAccumulator``) does.
"""

from __future__ import annotations

import json
from typing import Protocol

MAX_LINE = 8 * 1024 * 1024
"""Longest SSE line kept across chunks; a longer one is dropped, so a stream's memory stays bounded."""


class EventSink(Protocol):
    """Receives the events worth parsing, and says by which bytes to know them."""

    usage_mark: bytes  # in every event that carries usage
    error_mark: bytes  # in every error event
    latest_only: bool  # each usage event restates all usage so far: only the last needs parsing

    def feed(self, event: object) -> None: ...

    def warn(self, message: str) -> None: ...


class SseScanner:
    """Finds the ``data:`` lines holding a mark in an SSE byte stream cut at arbitrary points.

    An event's JSON payload sits on one line, so only lines matter. The
    unfinished last line of each piece is carried over in a bytearray (appended
    to, never re-copied), at most ``max_line`` bytes of it.

    When the sink wants only the latest usage (Gemini repeats it in every
    event), the last usage line is held unparsed until a later one replaces
    it, an error line needs it parsed first (stream order), or the end.
    """

    def __init__(self, sink: EventSink, max_line: int = MAX_LINE) -> None:
        self._sink = sink
        self._usage_mark = sink.usage_mark
        self._error_mark = sink.error_mark
        self._latest_only = sink.latest_only
        self._max_line = max_line
        self._carry = bytearray()
        self._skipping = False  # inside a line that outgrew max_line: drop up to its end
        self._deferred: bytes | None = None  # latest_only: the last usage line, not parsed yet

    def feed(self, data: bytes) -> None:
        """Scans the next piece of the decoded stream."""
        start = 0
        if self._carry or self._skipping:
            newline = data.find(b"\n")
            self._hold(data if newline < 0 else memoryview(data)[:newline])
            if newline < 0:
                return
            if not self._skipping:
                self._complete(self._carry)
            self._carry.clear()
            self._skipping = False
            start = newline + 1
        end = data.rfind(b"\n", start)
        if end < 0:
            self._hold(memoryview(data)[start:])
            return
        self._scan(data, start, end)
        if end + 1 < len(data):
            self._hold(memoryview(data)[end + 1 :])

    def flush(self) -> None:
        """Parses the held usage line, so that the sink is up to date."""
        if self._deferred is not None:
            line, self._deferred = self._deferred, None
            self._parse(line)

    def close(self) -> None:
        """Ends the stream: a last line without a newline still counts."""
        if self._carry and not self._skipping:
            self._complete(self._carry)
        self._carry.clear()
        self._skipping = False
        self.flush()

    def _hold(self, piece: bytes | memoryview) -> None:
        if self._skipping or not piece:
            return
        if len(self._carry) + len(piece) > self._max_line:
            self._sink.warn(f"an SSE line longer than {self._max_line} bytes was skipped")
            self._carry.clear()
            self._skipping = True
            return
        self._carry += piece

    def _complete(self, line: bytearray) -> None:
        urgent = self._error_mark in line
        if urgent or self._usage_mark in line:
            self._take(bytes(line), urgent)

    def _scan(self, data: bytes, start: int, end: int) -> None:
        """Takes the lines in ``data[start:end]`` that hold a mark; ``data[end]`` is a newline."""
        spans: dict[tuple[int, int], bool] = {}  # line span -> holds an error mark
        if self._latest_only:
            hit = data.rfind(self._usage_mark, start, end)
            if hit >= 0:
                spans[self._line_span(data, start, end, hit)] = False
        else:
            self._find_all(data, start, end, self._usage_mark, spans)
        self._find_all(data, start, end, self._error_mark, spans)
        for (line_start, line_end), urgent in sorted(spans.items()) if len(spans) > 1 else spans.items():
            self._take(data[line_start:line_end], urgent)

    def _find_all(self, data: bytes, start: int, end: int, mark: bytes, spans: dict[tuple[int, int], bool]) -> None:
        urgent = mark is self._error_mark
        hit = data.find(mark, start, end)
        while hit >= 0:
            span = self._line_span(data, start, end, hit)
            spans[span] = spans.get(span, False) or urgent
            hit = data.find(mark, span[1], end)

    @staticmethod
    def _line_span(data: bytes, start: int, end: int, hit: int) -> tuple[int, int]:
        return data.rfind(b"\n", start, hit) + 1 or start, data.find(b"\n", hit, end + 1)

    def _take(self, line: bytes, urgent: bool) -> None:
        if self._latest_only and not urgent:
            self._deferred = line
            return
        self.flush()
        self._parse(line)

    def _parse(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line.startswith(b"data:"):
            return  # "event:" and "id:" lines, ":" comments
        try:
            event = json.loads(line[5:])
        except (ValueError, RecursionError):
            self._sink.warn("an SSE data line holding usage or an error is not valid JSON")
            return
        self._sink.feed(event)
