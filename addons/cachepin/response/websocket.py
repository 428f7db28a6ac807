"""OpenAI Responses over a WebSocket: the client message that starts a response, the server message that ends it.

Codex with its built-in OpenAI provider (and the SDKs' ``responses.connect()``)
holds a conversation on one WebSocket to ``/v1/responses``: each turn is a
``response.create`` client message whose other members are what a
``POST /v1/responses`` body carries, answered by the events a Responses SSE
stream carries, one JSON text message each, up to ``response.completed``,
``response.failed`` or ``response.incomplete``, or an ``error`` event
(docs/providers.md names the sources). A ``ResponsesSocket`` pairs each create
with the message that ends its response, so that each becomes one turn, as a
POST does.

A connection may carry several lanes: a create with a ``stream_id`` is
answered by events that carry it. A lane runs one response at a time, so a
response event ends the oldest response of its lane. An ``error`` event fails
the newest: the create it refused (``response_already_in_flight``,
``previous_response_not_found``) or the response it broke. Whether a response
event still follows is not said (Codex waits for one after an error without a
status), so a failed response ends as an error turn with its own ending if one
comes, else with the lane's next create or the socket's end. An ``error``
while nothing is in flight (the 60-minute connection limit on an idle socket)
fails nothing.

Nothing here keeps a message: a socket holds the responses in flight (at most
``MAX_IN_FLIGHT``) and reads each message on its own, so a socket that never
ends a response does not grow. A message is parsed only when it can matter
(its type, read from its head, or the marks it holds say so), and only up to
``MAX_MESSAGE`` bytes.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from cachepin.request.dialects import Dialect
from cachepin.request.json_parse import loads
from cachepin.response.extract import UNTYPED_ERROR, Extracted, UsageAccumulator

MAX_MESSAGE = 32 * 1024 * 1024
"""Bytes of a message that are parsed: a larger create is a turn without its body, a larger ending no figures."""

MAX_IN_FLIGHT = 16
"""Responses awaited on one socket; a create beyond them makes the oldest an error turn."""

CREATE = "response.create"
ENDINGS = ("response.completed", "response.failed", "response.incomplete")
ERROR = "error"
CLOSED = "the WebSocket closed before the response ended"
CROWDED = f"more than {MAX_IN_FLIGHT} responses were in flight on one WebSocket"

_TRANSPORT = ("type", "stream_id")  # members of a create that are the socket's, not the Responses body's
_HEAD = re.compile(rb'\s*\{\s*"type"\s*:\s*"([A-Za-z0-9_.]{1,64})"')  # how the SDKs and Codex write a message
_LANE = b'"stream_id"'
_MAX_LANE = 256


def _marks(types: tuple[str, ...]) -> tuple[bytes, ...]:
    """A message whose type is one of ``types`` holds that type in quotes; inside a JSON string, quotes are escaped."""
    return tuple(f'"{kind}"'.encode() for kind in types)


_CREATE_MARKS = _marks((CREATE,))
_ENDING_MARKS = _marks((*ENDINGS, ERROR))


def _read(content: bytes, wanted: tuple[str, ...], marks: tuple[bytes, ...]) -> tuple[str | None, dict | None, str]:
    """A message's type, and the message parsed when its type is ``wanted`` or it names a lane.

    The type is read from the head when it comes first, as every client and
    server seen writes it; else a message holding none of ``marks`` is not
    one of ``wanted``. Returns ``(type, parsed, why it was not parsed)``.
    """
    head = _HEAD.match(content)
    kind = head.group(1).decode() if head else None
    if not ((kind in wanted) if kind else any(mark in content for mark in marks)) and _LANE not in content:
        return kind, None, ""
    if len(content) > MAX_MESSAGE:
        return kind, None, f"a {kind or 'WebSocket'} message of {len(content)} bytes, over {MAX_MESSAGE}, was not read"
    try:
        parsed = loads(content)
    except (ValueError, RecursionError):
        return kind, None, f"a {kind or 'WebSocket'} message is not JSON"
    if not isinstance(parsed, dict):
        return None, None, ""
    kind = parsed.get("type")
    return (kind if isinstance(kind, str) else None), parsed, ""


def _lane(message: dict | None) -> str | None:
    lane = message.get("stream_id") if message is not None else None
    return lane if isinstance(lane, str) and len(lane) <= _MAX_LANE else None


class Create:
    """A ``response.create`` client message: its lane, and (parsed when first asked for) its body."""

    __slots__ = ("lane", "warning", "_content", "_parsed")

    def __init__(self, lane: str | None, content: bytes | None, parsed: dict | None, warning: str = "") -> None:
        self.lane = lane
        self.warning = warning  # why the body cannot be read
        self._content = content
        self._parsed = parsed

    def body(self) -> dict | None:
        """The create's members but the socket's own: the body a ``POST /v1/responses`` would carry."""
        if self._content is not None:
            _, self._parsed, self.warning = _read(self._content, (CREATE,), _CREATE_MARKS)
            self._content = None
        if self._parsed is None:
            return None
        return {key: value for key, value in self._parsed.items() if key not in _TRANSPORT}


def create_of(content: bytes, is_text: bool) -> Create | None:
    """The ``response.create`` a client message is, or None for any other (``response.processed``, a ping)."""
    if not is_text:
        return None
    kind, parsed, warning = _read(content, (CREATE,), _CREATE_MARKS)
    if kind != CREATE:
        return None
    unread = parsed is None and not warning  # its type came from its head: the body is parsed when needed
    return Create(_lane(parsed), content if unread else None, parsed, warning)


@dataclass(slots=True)
class _InFlight[R]:
    request: R
    started_at: float
    first_byte_at: float | None = None
    error: Extracted | None = None  # what an error event said of it
    error_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Ended[R]:
    """A response that ended: the request its create made (None: no create of this socket awaited it)."""

    request: R | None
    started_at: float
    first_byte_at: float | None
    ended_at: float
    extracted: Extracted


class ResponsesSocket[R]:
    """The responses in flight on one WebSocket, each with what the adapter made of its create (``R``)."""

    def __init__(self) -> None:
        self._lanes: dict[str | None, deque[_InFlight[R]]] = {}
        self._count = 0

    @property
    def in_flight(self) -> int:
        return self._count

    def begin(self, lane: str | None, request: R, at: float) -> list[Ended[R]]:
        """A create was sent. Returns what it ends: the responses of its lane an error event failed (no ending
        of theirs will come now), and the oldest response in flight when this one is one too many."""
        queue = self._lanes.setdefault(lane, deque())
        failed = [entry for entry in queue if entry.error is not None]
        ended = [self._ended(entry, entry.error_at, entry.error) for entry in failed if entry.error is not None]
        for entry in failed:
            queue.remove(entry)
        queue.append(_InFlight(request, at))
        self._count += 1 - len(failed)
        if self._count > MAX_IN_FLIGHT:
            oldest = min(self._lanes, key=lambda key: self._lanes[key][0].started_at)
            ended.append(self._ended(self._pop(oldest), at, Extracted(error=CROWDED)))
        return ended

    def server_message(self, content: bytes, is_text: bool, at: float) -> Ended[R] | None:
        """Reads one server message; returns the response it ends, if it ends one."""
        if not is_text:
            return None
        kind, event, warning = _read(content, (*ENDINGS, ERROR), _ENDING_MARKS)
        lane = _lane(event)
        queue = self._lanes.get(lane)
        if queue and queue[0].first_byte_at is None:
            queue[0].first_byte_at = at
        if kind == ERROR:
            if queue and queue[-1].error is None:  # the create it refused, or the response it broke
                queue[-1].error, queue[-1].error_at = _extracted(kind, event, warning), at
            return None
        if kind not in ENDINGS:
            return None
        extracted = _extracted(kind, event, warning)
        if not queue:  # a response whose create this socket did not see (evicted, or sent before a reload)
            return Ended(None, at, None, at, extracted)
        entry = self._pop(lane)
        if entry.error is not None and extracted.error is None:  # as an SSE stream with both reads
            extracted = replace(extracted, error=entry.error.error)
        return self._ended(entry, at, extracted)

    def closed(self, reason: str, at: float) -> list[Ended[R]]:
        """The responses still in flight when the socket ended: an error turn each, that says what an error
        event said of it, else ``reason``."""
        ended = [self._ended(entry, entry.error_at, entry.error) if entry.error is not None
                 else self._ended(entry, at, Extracted(error=reason))
                 for queue in self._lanes.values() for entry in queue]
        self._lanes.clear()
        self._count = 0
        return ended

    def _pop(self, lane: str | None) -> _InFlight[R]:
        """The oldest response of a lane: the one a response event ends (a lane runs one at a time)."""
        queue = self._lanes[lane]
        entry = queue.popleft()
        if not queue:
            del self._lanes[lane]
        self._count -= 1
        return entry

    @staticmethod
    def _ended(entry: _InFlight[R], at: float, extracted: Extracted) -> Ended[R]:
        return Ended(entry.request, entry.started_at, entry.first_byte_at, at, extracted)


@dataclass(slots=True)
class Socket[F, R]:
    """A Responses WebSocket being read: its flow (``F``, the adapter's), the flow's comment before its turns, and
    its responses in flight, each with what the adapter made of its create (``R``)."""

    flow: F
    comment: str
    responses: ResponsesSocket[R] = field(default_factory=ResponsesSocket)


def _extracted(kind: str | None, event: dict[str, Any] | None, warning: str) -> Extracted:
    """What an ending or error message said, read as the same event of an SSE stream is."""
    if event is None:  # too large, or not JSON: its type is all there is
        error = "response.failed" if kind == "response.failed" else UNTYPED_ERROR if kind == ERROR else None
        return Extracted(error=error, warning=warning or None)
    accumulator = UsageAccumulator(Dialect.OPENAI_RESPONSES)
    accumulator.feed(event)
    return accumulator.result
