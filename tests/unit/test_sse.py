"""The SSE scanner: which lines it hands over, parsed once, and how it bounds a line."""

from __future__ import annotations

import json

import pytest

from cachepin.response.sse import SseScanner


class Recorder:
    """An EventSink that records what the scanner hands over."""

    usage_mark = b'_tokens"'
    error_mark = b'"error"'

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
        (b'data: {"a_tokens":1}', [{"a_tokens": 1}]),  # no newline at the very end
        (b'data: {"text":"no mark"}\n', []),
        (b': comment with "error" and _tokens"\n', []),
        (b'event: x_tokens"\nid: "error"\n', []),
        (b'data: [DONE]\ndata: {"error":"e"}\ndata: [DONE]\n', [{"error": "e"}]),
        (b'data: {"x_tokens":1,"error":2}\n', [{"x_tokens": 1, "error": 2}]),  # both marks: parsed once
        (b'data: {"b_tokens":1}\n\ndata: {"error":1}\n\ndata: {"c_tokens":2}\n', [{"b_tokens": 1}, {"error": 1},
                                                                               {"c_tokens": 2}]),
    ],
)
def test_scanner_lines(body: bytes, events: list[object]) -> None:
    sink = Recorder()
    scanner = SseScanner(sink)
    scanner.feed(body)
    scanner.close()
    assert sink.events == events and sink.warnings == []


def test_latest_only_parses_only_the_last_usage_line() -> None:
    sink = Recorder(latest_only=True)
    scanner = SseScanner(sink)
    for i in range(100):
        scanner.feed(b'data: {"n_tokens":%d}\n\n' % i)
    scanner.feed(b'data: {"n_tokens":')  # the last line is still arriving
    assert sink.events == []
    scanner.flush()
    assert sink.events == [{"n_tokens": 99}]
    scanner.feed(b"100}\n")
    scanner.close()
    assert sink.events == [{"n_tokens": 99}, {"n_tokens": 100}]


@pytest.mark.parametrize("extra, kept", [(0, True), (1, False)], ids=["at the cap", "over the cap"])
def test_line_cap(extra: int, kept: bool) -> None:
    sink = Recorder()
    scanner = SseScanner(sink, max_line=64)
    prefix, suffix = b'data: {"x_tokens":"', b'"}'
    line = prefix + b"a" * (64 - len(prefix) - len(suffix) + extra) + suffix
    assert len(line) == 64 + extra
    for i in range(0, len(line), 10):
        scanner.feed(line[i : i + 10])
    scanner.feed(b'\ndata: {"after_tokens":1}\n')
    scanner.close()
    after = {"after_tokens": 1}
    assert sink.events == ([json.loads(line[6:]), after] if kept else [after])
    assert sink.warnings == ([] if kept else ["an SSE line longer than 64 bytes was skipped"])
