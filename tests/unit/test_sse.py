"""The SSE scanner: which events it hands over, parsed once, read as the WHATWG rules read them, and how it bounds
an event.

The rules (HTML Living Standard, "Server-sent events", parsing an event stream): a line ends at CR, LF or CRLF; a
blank line ends an event; an event's ``data`` values, one space after the colon dropped, are joined with LF.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachepin.request.dialects import Dialect
from cachepin.response import sse
from cachepin.response.extract import Extracted, UsageAccumulator
from cachepin.response.sse import MAX_LINE, SseScanner
from cachepin.response.usage import Usage
from cachepin_tools.wire import anthropic, framing, gemini
from cachepin_tools.wire.tokens import Tokens


class Recorder:
    """An EventSink that records what the scanner hands over."""

    usage_mark = b'_tokens"'
    error_mark = b'"error"'
    final_mark = b'"last"'

    def __init__(self, latest_only: bool = False) -> None:
        self.latest_only = latest_only
        self.events: list[object] = []
        self.warnings: list[str] = []

    def feed(self, event: object) -> None:
        self.events.append(event)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


@pytest.mark.parametrize(
    "body, events",
    [
        (b'data: {"a_tokens":1}\n', [{"a_tokens": 1}]),
        (b'data:{"a_tokens":1}\r\n', [{"a_tokens": 1}]),
        (b'data: {"a_tokens":1}', [{"a_tokens": 1}]),  # no line end at the very end
        (b'data: {"a_tokens":1}\r', [{"a_tokens": 1}]),
        (b'data: {"text":"no mark"}\n', []),
        (b': comment with "error" and _tokens"\n', []),
        (b'event: x_tokens"\nid: "error"\n', []),  # no data: nothing to parse
        (b'data: [DONE]\n\ndata: {"error":"e"}\n\ndata: [DONE]\n', [{"error": "e"}]),
        (b'data: {"x_tokens":1,"error":2}\n', [{"x_tokens": 1, "error": 2}]),  # both marks: parsed once
        *((b'data: {"b_tokens":1}\n\ndata: {"error":1}\n\ndata: {"c_tokens":2}\n' + end,
           [{"b_tokens": 1}, {"error": 1}, {"c_tokens": 2}]) for end in (b"", b"\n")),  # in stream order
        # an event's data lines are joined with LF; the mark may sit on any of them
        (b'data: {"a_tokens":\ndata: 1}\n\n', [{"a_tokens": 1}]),
        (b'data: {"a":\ndata: {"b_tokens":\ndata: 2}}\n\n', [{"a": {"b_tokens": 2}}]),
        (b'data: ["x_tokens",\ndata\ndata: 2]\n\n', [["x_tokens", 2]]),  # "data" alone: an empty data line
        # other fields and comments inside an event are skipped, even with a mark; the event's data is read
        (b'event: x_tokens"\nid: 7\nretry: 10\n: note\ndata: {"n":1}\n\n', [{"n": 1}]),
        (b'Data: {"a_tokens":1}\n\ndata : {"b_tokens":1}\n\n', []),  # field names match exactly
        # every line end, and every blank line made of them
        (b'data: {"a_tokens":1}\r\rdata: {"b_tokens":2}\r', [{"a_tokens": 1}, {"b_tokens": 2}]),
        (b'data: {"a_tokens":1}\n\rdata: {"b_tokens":2}\n', [{"a_tokens": 1}, {"b_tokens": 2}]),
        (b'data: {"a_tokens":1}\r\n\ndata: {"b_tokens":2}', [{"a_tokens": 1}, {"b_tokens": 2}]),
        (b'data: {"a_tokens":1}\r\r\ndata: {"b_tokens":2}', [{"a_tokens": 1}, {"b_tokens": 2}]),
        (b'data: {"a_tokens":\rdata: 1}\r\n\r\n', [{"a_tokens": 1}]),  # a bare CR inside an event ends a line
    ],
)
def test_scanner_events(body: bytes, events: list[object]) -> None:
    for pieces in ([body], [body[i : i + 1] for i in range(len(body))]):
        sink = Recorder()
        scanner = SseScanner(sink)
        for piece in pieces:
            scanner.feed(piece)
        scanner.close()
        assert sink.events == events and sink.warnings == []


class Log(Recorder):
    """A Recorder whose events and warnings are one list, in the order they came."""

    def feed(self, event: object) -> None:
        self.events.append(("event", event))

    def warn(self, message: str) -> None:
        self.events.append(("warning", message))


def by_the_rules(body: bytes) -> list[object]:
    """What the scanner must hand over, read line by line as the standard says (and the last event at the end)."""
    log = Log()
    data: list[bytes] = []
    for line in [*re.split(rb"\r\n|\r|\n", body), b""]:
        if line:
            name, _, value = line.partition(b":")
            if name == b"data":
                data.append(value[1:] if value.startswith(b" ") else value)
            continue
        joined = b"\n".join(data)
        if data and (log.usage_mark in joined or log.error_mark in joined):
            try:
                log.feed(json.loads(joined))
            except ValueError:
                log.warn("an SSE data line holding usage or an error is not valid JSON")
        data = []
    return log.events


FRAGMENTS = [b'{"a_tokens":1}', b'{"error":2}', b"[1,", b"2]", b'{"x":', b'"y"}', b'_tokens"', b'"error"', b"[DONE]",
             b" "]
LINES = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=3).map(lambda parts: b"data: " + b"".join(parts)),
    st.lists(st.sampled_from(FRAGMENTS), max_size=3).map(lambda parts: b"data:" + b"".join(parts)),
    st.sampled_from([b"", b"", b"data", b": a comment", b"event: e", b"id: 1", b"retry: 9"]),
)


@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_any_stream_is_read_by_the_rules(data: st.DataObject) -> None:
    """Any lines, any line ends, any cuts: the events and warnings of a plain reading by the rules, in order."""
    lines = data.draw(st.lists(LINES, max_size=16))
    ends = data.draw(st.lists(st.sampled_from([b"\n", b"\r\n", b"\r"]), min_size=len(lines), max_size=len(lines)))
    body = b"".join(line + end for line, end in zip(lines, ends, strict=True))
    body = body[: data.draw(st.integers(len(body) - 2, len(body)))] if body else body  # maybe no last line end
    points = sorted(data.draw(st.one_of(st.lists(st.integers(0, len(body)), max_size=8),
                                        st.just(list(range(len(body)))))))  # or byte by byte
    log = Log()
    scanner = SseScanner(log)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sse, "_WINDOW", data.draw(st.sampled_from([1, 2, 5, sse._WINDOW])))
        for a, b in zip([0, *points], [*points, len(body)], strict=True):
            scanner.feed(body[a:b])
        scanner.close()
    assert log.events == by_the_rules(body)


def test_lines_without_a_blank_line_between_them_are_one_event() -> None:
    """As in every client SDK: two JSON objects joined into one event's data are not JSON."""
    sink = Recorder()
    scanner = SseScanner(sink)
    scanner.feed(b'data: {"a_tokens":1}\ndata: {"b_tokens":2}\n\ndata: {"c_tokens":3}\n\n')
    scanner.close()
    assert sink.events == [{"c_tokens": 3}]
    assert sink.warnings == ["an SSE data line holding usage or an error is not valid JSON"]


def test_latest_only_parses_only_the_last_usage_event() -> None:
    sink = Recorder(latest_only=True)
    scanner = SseScanner(sink)
    for i in range(100):
        scanner.feed(b'data: {"n_tokens":%d}\n\n' % i)
    scanner.feed(b'data: {"n_tokens":')  # the last event is still arriving
    assert sink.events == []
    scanner.flush()
    assert sink.events == [{"n_tokens": 99}]
    scanner.feed(b"100}\n")
    scanner.close()
    assert sink.events == [{"n_tokens": 99}, {"n_tokens": 100}]


def test_latest_only_parses_the_final_usage_event_at_once() -> None:
    """A client may hang up right after it: what was read by then is the whole reading."""
    sink = Recorder(latest_only=True)
    scanner = SseScanner(sink)
    scanner.feed(b'data: {"n_tokens":1}\n\ndata: {"n_tokens":2,"last":true}\n\n')
    assert sink.events == [{"n_tokens": 2, "last": True}]
    scanner.close()
    assert sink.events == [{"n_tokens": 2, "last": True}]


@pytest.mark.parametrize("extra, kept", [(0, True), (1, False)], ids=["at the cap", "over the cap"])
def test_line_cap(extra: int, kept: bool) -> None:
    sink = Recorder()
    scanner = SseScanner(sink, max_line=64)
    prefix, suffix = b'data: {"x_tokens":"', b'"}'
    line = prefix + b"a" * (64 - len(prefix) - len(suffix) + extra) + suffix
    assert len(line) == 64 + extra
    for i in range(0, len(line), 10):
        scanner.feed(line[i : i + 10])
    scanner.feed(b'\n\ndata: {"after_tokens":1}\n')
    scanner.close()
    after = {"after_tokens": 1}
    assert sink.events == ([json.loads(line[6:]), after] if kept else [after])
    assert sink.warnings == ([] if kept else ["an SSE line longer than 64 bytes was skipped"])


# Real streams, read by the dialects' own sink, so that every figure asserted is a usage figure.

type Lines = list[str]  # a stream's lines without their ends; "" is the blank line that ends an event

MODEL = "claude-opus-4-6"
ANTHROPIC_TOKENS = Tokens(12, read=9000, creation=640, output=85, creation_5m=640, creation_1h=0)
ANTHROPIC_USAGE = Usage("anthropic", MODEL, 12, 640, 9000, 85, 640, 0)
STARTED_USAGE = Usage("anthropic", MODEL, 12, 640, 9000, 1, 640, 0)  # message_start only: one output token
GEMINI_USAGE = Usage("gemini", "gemini-2.5-pro", 1928, None, 3072, 65)


def data_lines(obj: dict, mark_on: int | None = None, mark: str = '_tokens"') -> Lines:
    """``obj`` as one ``data:`` line, or with ``mark_on`` given, one line per top-level member.

    ``mark_on`` says which of those lines holds the mark (0 first, -1 last): the member order is chosen so.
    """
    if mark_on is None:
        return ["data: " + framing.dumps(obj)]
    members = [f"{json.dumps(key)}:{framing.dumps(value)}" for key, value in obj.items()]
    marked = next(member for member in members if mark in member)
    members.remove(marked)
    members.insert(mark_on % (len(members) + 1), marked)
    lines = ("{" + ",\n".join(members) + "}").split("\n")
    assert len(lines) >= 3 and sum(mark in line for line in lines) == 1 and mark in lines[mark_on]
    return [("data:" if n % 2 else "data: ") + line for n, line in enumerate(lines)]


def event(name: str | None, obj: dict, mark_on: int | None = None, mark: str = '_tokens"') -> Lines:
    return [*([f"event: {name}"] if name else []), *data_lines(obj, mark_on, mark), ""]


def indented(obj: dict) -> Lines:
    """``obj`` over one ``data:`` line per member, nested ones too: an error event whose marks are inside."""
    return [*("data: " + line for line in json.dumps(obj, indent=0).split("\n")), ""]


def anthropic_stream(delta_mark_on: int | None = None, *, error: bool = False) -> Lines:
    """A Messages stream with ignored fields, a comment and a tool input that holds the mark; its
    ``message_delta`` maybe over several data lines, or in its place an error event over several."""
    used = anthropic.usage(ANTHROPIC_TOKENS)
    events = anthropic.events(used, ["Hello", ' the "error" and _tokens" words'], MODEL)
    lines = [": keep-alive", "", "retry: 3000", ""]
    for n, (name, obj) in enumerate(events):
        assert name is not None and isinstance(obj, dict)
        if name == "message_delta" and error:
            lines += ["event: error", *indented(anthropic.error("overloaded_error", "Overloaded"))]
            break
        lines += [f"id: {n}", *event(name, obj, delta_mark_on if name == "message_delta" else None)]
        if name == "ping":
            lines += event("content_block_start", {"type": "content_block_start", "index": 1,
                                                   "content_block": {"type": "tool_use", "input": {"max_tokens": 5}}})
    return lines


def gemini_stream(usage_mark_on: int | None = None, *, error_first: bool = False) -> Lines:
    """Each chunk restates the usage so far (the sink parses only the last); maybe an error event first."""
    chunks = [gemini.response(gemini.usage_metadata(Tokens(1928, read=3072, creation=None, output=n + 25,
                                                           reasoning=25)), f"part {n}", "gemini-2.5-pro",
                              "STOP" if n == 40 else None) for n in (3, 17, 40)]
    lines = indented({"error": {"code": 500, "message": "Internal", "status": "INTERNAL"}}) if error_first else []
    for chunk in chunks:
        lines += event(None, chunk, usage_mark_on, '"usageMetadata"')
    return lines


def render(lines: Lines, ends: Sequence[str]) -> bytes:
    """The stream with the n-th line ended by ``ends[n % len(ends)]``.

    A CR and then an empty line ended by LF would read as one CRLF, so that
    empty line is ended by CRLF instead, as a server mixing line ends must.
    """
    out: list[str] = []
    previous = ""
    for n, line in enumerate(lines):
        end = ends[n % len(ends)]
        if previous == "\r" and not line and end == "\n":
            end = "\r\n"
        out.append(line + end)
        previous = end
    return "".join(out).encode()


def read(dialect: Dialect, pieces: Sequence[bytes], max_line: int = MAX_LINE) -> Extracted:
    sink = UsageAccumulator(dialect)
    scanner = SseScanner(sink, max_line)
    for piece in pieces:
        scanner.feed(piece)
    scanner.close()
    return sink.result


LINE_ENDS = [
    pytest.param(["\n"], id="LF"),
    pytest.param(["\r\n"], id="CRLF"),
    pytest.param(["\r"], id="CR"),
    pytest.param(["\n", "\r\n", "\r", "\r", "\n", "\r\n", "\r\n", "\n", "\r"], id="mixed"),
]

STREAMS = [
    pytest.param(Dialect.ANTHROPIC, anthropic_stream(), ANTHROPIC_USAGE, None, id="anthropic"),
    *(pytest.param(Dialect.ANTHROPIC, anthropic_stream(mark_on), ANTHROPIC_USAGE, None,
                   id=f"anthropic-multiline-mark-{where}") for mark_on, where in ((0, "first"), (1, "middle"),
                                                                                 (-1, "last"))),
    pytest.param(Dialect.ANTHROPIC, anthropic_stream(error=True), STARTED_USAGE, "overloaded_error",
                 id="anthropic-multiline-error"),
    pytest.param(Dialect.GEMINI, gemini_stream(), GEMINI_USAGE, None, id="gemini"),
    pytest.param(Dialect.GEMINI, gemini_stream(1), GEMINI_USAGE, None, id="gemini-multiline"),
    pytest.param(Dialect.GEMINI, gemini_stream(-1, error_first=True), GEMINI_USAGE, "INTERNAL",
                 id="gemini-multiline-error-first"),
]


def outcome(result: Extracted) -> tuple[Usage | None, str | None, str | None]:
    """The usage, the error's type and the warning: what a reading must get right."""
    return result.usage, result.error and result.error.split(":")[0], result.warning


@pytest.mark.parametrize("ends", LINE_ENDS)
@pytest.mark.parametrize("dialect, lines, usage, error", STREAMS)
def test_every_line_end_and_every_cut(
    dialect: Dialect, lines: Lines, usage: Usage, error: str | None, ends: list[str]
) -> None:
    body = render(lines, ends)
    assert outcome(read(dialect, [body])) == (usage, error, None)
    assert outcome(read(dialect, [body[i : i + 1] for i in range(len(body))])) == (usage, error, None)
    for i in range(len(body) + 1):
        assert outcome(read(dialect, [body[:i], body[i:]])) == (usage, error, None), f"cut at {i}"


@pytest.mark.parametrize("dialect, lines, usage, error", STREAMS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_mix_of_line_ends_and_cuts(dialect: Dialect, lines: Lines, usage: Usage, error: str | None,
                                       data: st.DataObject) -> None:
    """Also with search windows of a few bytes, so that blank lines fall across their edges."""
    ends = data.draw(st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=len(lines), max_size=len(lines)))
    body = render(lines, ends)
    points = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=12)))
    pieces = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sse, "_WINDOW", data.draw(st.sampled_from([1, 2, 3, 5, 8, sse._WINDOW])))
        assert outcome(read(dialect, pieces)) == (usage, error, None)


@pytest.mark.parametrize("ends", LINE_ENDS)
def test_a_multiline_event_cut_at_close(ends: list[str]) -> None:
    """The stream ends inside its last event: complete, it counts; with a data line missing, it is a warning."""
    lines = anthropic_stream(1)
    lines = lines[: lines.index("", lines.index("event: message_delta"))]  # no blank line after message_delta
    ended = render(lines, ends)
    for body in (ended, ended.rstrip(b"\r\n")):  # its last line ended, or not even that
        for pieces in ([body], [body[i : i + 1] for i in range(len(body))]):
            assert outcome(read(Dialect.ANTHROPIC, pieces)) == (ANTHROPIC_USAGE, None, None)
    missing = render(lines[:-1], ends)  # the last data line never came
    assert outcome(read(Dialect.ANTHROPIC, [missing])) == (
        STARTED_USAGE, None, "an SSE data line holding usage or an error is not valid JSON")


@pytest.mark.parametrize("ends", LINE_ENDS)
@pytest.mark.parametrize("extra, kept", [(2, True), (-2, False)], ids=["within the cap", "over the cap"])
def test_an_overlong_event_is_skipped_with_a_warning(ends: list[str], extra: int, kept: bool) -> None:
    """``max_line`` bounds the bytes an event holds, however short its lines; the next event is still read.

    What is held of an event's line ends depends on them (a CRLF's CR stays, an LF goes): a byte either way.
    """
    lines = anthropic_stream()
    at = lines.index("event: message_delta") - 1  # before its "id:" line
    restart = {"type": "message_start", "message": {"model": MODEL, "usage": {"input_tokens": 1, "output_tokens": 1}}}
    long_event = ["event: message_start", *(f": padding {n:03}" for n in range(20)), *indented(restart)]
    body = render([*lines[:at], *long_event, *lines[at:]], ends)
    cap = len(render([*lines[:at], *long_event[:-1]], ends)) - len(render(lines[:at], ends)) + extra
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    result = outcome(read(Dialect.ANTHROPIC, pieces, max_line=cap))
    if kept:  # it replaced the usage message_start began, whose TTL split message_delta does not restate
        assert result == (Usage("anthropic", MODEL, 12, 640, 9000, 85), None, None)
    else:
        assert result == (ANTHROPIC_USAGE, None, f"an SSE line longer than {cap} bytes was skipped")
