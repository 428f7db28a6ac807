"""The SSE scanner: finds the few events of a stream that carry usage or an error, and parses only those.

mitmproxy runs every stream callable on its one event loop, so the tap must
keep up with the wire: JSON-parsing every event of an Anthropic stream runs at
about 35 MB/s, far below what a proxy must tee. Usage and errors sit in a
handful of events, so the scanner searches the decoded bytes with
``bytes.find`` for the marks those events carry (``USAGE_MARKS``,
``ERROR_MARK``) and parses only the complete events that contain one. A mark
inside model text costs one needless parse, nothing more.

It reads events as the WHATWG HTML standard's server-sent events parser, and
so the clients' SDKs, does: a line ends at CR, LF or CRLF, whatever the mix,
and a CRLF cut between two pieces is still one line end; a blank line ends an
event; the values of its ``data`` lines, each without the one space after the
colon, joined with ``\n``, are the JSON it carries, whichever of those lines
holds the mark; comments and the other fields are ignored. Unlike the
standard, the last event counts at the end of the stream even without its
blank line: a proxy sees streams cut short.

A blank line is a line end followed by another, and a CR before an LF is half
of a CRLF, so the byte pairs ``\n\n``, ``\n\r`` and ``\r\r``, wherever they
occur, are exactly where events end. The scanner looks for those and splits
an event into lines only once it holds a mark. A piece without CR, as
providers send, needs only the first pair, and pays one ``memchr`` to know it.

The same scanner reads live streams and buffered or replayed bodies
(``readers``), so live and offline figures cannot disagree. It knows nothing
of providers: the sink it feeds (``extract.UsageAccumulator``) does.
"""

from __future__ import annotations

from typing import Protocol

from cachepin.request.json_parse import loads

MAX_LINE = 8 * 1024 * 1024
"""Longest SSE event kept across pieces, all its lines counted; a longer one is dropped, so memory stays bounded."""

_LF_BLANKS = (b"\n\n",)  # a blank line where no CR is
_ANY_BLANKS = (b"\n\r", b"\n\n", b"\r\r")  # a blank line whatever the line ends; CRLF's first
_STRADDLING = {(10, 10), (10, 13), (13, 13)}  # a blank line whose two bytes sit in two pieces
_WINDOW = 512  # bytes searched first for a blank line near a point; doubled until one is found


class EventSink(Protocol):
    """Receives the events worth parsing, and says by which bytes to know them."""

    usage_mark: bytes  # in every event that carries usage
    error_mark: bytes  # in every error event
    latest_only: bool  # each usage event restates all usage so far: only the last needs parsing
    final_mark: bytes | None  # latest_only: in the stream's last usage event, which is parsed at once

    def feed(self, event: object) -> None: ...

    def warn(self, message: str) -> None: ...


class SseScanner:
    """Finds the events holding a mark in an SSE byte stream cut at arbitrary points.

    The unfinished last event of each piece is carried over in a bytearray
    (appended to, never re-copied), at most ``max_line`` bytes of it: an event
    that outgrows that, in one line or many, is dropped with a warning.

    When the sink wants only the latest usage (Gemini repeats it in every
    event), the last usage event is held unparsed until a later one replaces
    it, an error event needs it parsed first (stream order), or the end; the
    final one (``final_mark``) is parsed at once, so a client that hangs up
    right after it leaves a complete reading.
    """

    def __init__(self, sink: EventSink, max_line: int = MAX_LINE) -> None:
        self._sink = sink
        self._usage_mark = sink.usage_mark
        self._error_mark = sink.error_mark
        self._latest_only = sink.latest_only
        self._final_mark = sink.final_mark
        self._max_line = max_line
        self._carry = bytearray()
        self._skipping = False  # inside an event that outgrew max_line: drop up to its end
        self._last = 0  # the last byte of the last piece, which may begin a blank line
        self._deferred: bytes | None = None  # latest_only: the last usage event, not parsed yet

    def feed(self, data: bytes) -> None:
        """Scans the next piece of the decoded stream."""
        if not data:
            return
        blanks = _ANY_BLANKS if b"\r" in data else _LF_BLANKS
        last, self._last = self._last, data[-1]
        start = 0
        if self._carry or self._skipping:
            if (last, data[0]) in _STRADDLING:
                cut, start = 0, 1
            else:
                cut = _find_blank(data, blanks, 0, len(data), last=False)
                start = cut + 2
            if cut < 0:
                self._hold(data)
                return
            self._hold(memoryview(data)[:cut])
            if not self._skipping:
                self._complete(self._carry)
            self._carry.clear()
            self._skipping = False
        end = _find_blank(data, blanks, start, len(data), last=True)
        if end < 0:
            self._hold(memoryview(data)[start:])
            return
        self._scan(data, blanks, start, end)
        self._hold(memoryview(data)[end + 2 :])

    def flush(self) -> None:
        """Parses the held usage event, so that the sink is up to date."""
        if self._deferred is not None:
            event, self._deferred = self._deferred, None
            self._parse(event)

    def close(self) -> None:
        """Ends the stream: a last event without its blank line still counts."""
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

    def _complete(self, event: bytearray) -> None:
        urgent = self._error_mark in event
        if urgent or self._usage_mark in event:
            self._take(bytes(event), urgent)

    def _scan(self, data: bytes, blanks: tuple[bytes, ...], start: int, end: int) -> None:
        """Takes the events in ``data[start:end]`` that hold a mark; a blank line begins at ``data[end]``."""
        spans: dict[tuple[int, int], bool] = {}  # event span -> holds an error mark
        if self._latest_only:
            hit = data.rfind(self._usage_mark, start, end)
            if hit >= 0:
                spans[_event_span(data, blanks, start, end, hit)] = False
        else:
            self._find_all(data, blanks, start, end, self._usage_mark, spans)
        self._find_all(data, blanks, start, end, self._error_mark, spans)
        for (event_start, event_end), urgent in sorted(spans.items()) if len(spans) > 1 else spans.items():
            self._take(data[event_start:event_end], urgent)

    def _find_all(
        self, data: bytes, blanks: tuple[bytes, ...], start: int, end: int, mark: bytes,
        spans: dict[tuple[int, int], bool],
    ) -> None:
        urgent = mark is self._error_mark
        hit = data.find(mark, start, end)
        while hit >= 0:
            span = _event_span(data, blanks, start, end, hit)
            spans[span] = spans.get(span, False) or urgent
            hit = data.find(mark, span[1], end)

    def _take(self, event: bytes, urgent: bool) -> None:
        if self._latest_only and not urgent and (self._final_mark is None or self._final_mark not in event):
            self._deferred = event
            return
        self.flush()
        self._parse(event)

    def _parse(self, event: bytes) -> None:
        values = []
        for line in event.splitlines():  # for bytes: at CR, LF and CRLF only
            name, _, value = line.partition(b":")
            if name == b"data":
                values.append(value[1:] if value[:1] == b" " else value)
        if not values:
            return  # "event:", "id:" and "retry:" lines, ":" comments
        try:
            parsed = loads(b"\n".join(values))
        except (ValueError, RecursionError):
            self._sink.warn("an SSE data line holding usage or an error is not valid JSON")
            return
        self._sink.feed(parsed)


def _event_span(data: bytes, blanks: tuple[bytes, ...], start: int, end: int, hit: int) -> tuple[int, int]:
    """The event around ``hit``: from the blank line before it, or ``start``, to the blank line after it."""
    before = _find_blank(data, blanks, start, hit, last=True)
    return before + 2 if before >= 0 else start, _find_blank(data, blanks, hit, end + 2, last=False)


def _find_blank(data: bytes, blanks: tuple[bytes, ...], start: int, end: int, *, last: bool) -> int:
    """Where the first (``last``: the last) blank line within ``data[start:end]`` begins, or -1.

    One pattern is one ``find``. Of several, those that do not occur would be
    searched to the far end on each call, once per mark; windows that double,
    from the near end on, keep a search about as long as the distance to what
    it finds, and once one pattern is found the others are searched only
    nearer than it. Two windows in a row share a byte, for a pair cut between
    them. ``find`` and ``rfind`` are named at each call, not held in a
    variable: CPython calls a method named on the spot faster, and this runs
    for every piece of every stream.
    """
    if len(blanks) == 1:
        return data.rfind(blanks[0], start, end) if last else data.find(blanks[0], start, end)
    window = _WINDOW
    while start < end - 1:
        if last:
            low, high = max(end - window - 1, start), end
        else:
            low, high = start, min(start + window + 1, end)
        found = -1
        for blank in blanks:
            at = data.rfind(blank, low, high) if last else data.find(blank, low, high)
            if at >= 0:
                found = at
                if last:
                    low = at + 1
                else:
                    high = at + 1
        if found >= 0:
            return found
        if last:
            end = low + 1
        else:
            start = high - 1
        window *= 2
    return -1
