"""A recording LLM upstream for tests: it answers with known usage figures and keeps every request.

It speaks just enough of the Anthropic Messages, OpenAI Chat Completions and
Responses APIs (JSON and SSE, optionally gzipped, with a delay between events,
or cut off mid-stream) for the official SDKs to be satisfied, so tests can
compare what the proxy reports and forwards with exactly what was sent and
received. It is a script of the scripted upstream (one HTTP/1.1 test server
for the whole suite), and every answer is rendered by the wire kit.
"""

from __future__ import annotations

import gzip
import json
import ssl
import time
from dataclasses import dataclass

from codings import zstd
from scripted_upstream import Action, Close, Note, Pause, RawRequest, ScriptedUpstream, Send

from cachepin_tools.wire import anthropic, framing, openai
from cachepin_tools.wire.framing import Event, FlushedGzip
from cachepin_tools.wire.http1 import chunk, chunked_head, response_bytes
from cachepin_tools.wire.tokens import Tokens

ANTHROPIC = Tokens(12, read=0, creation=1538, output=85)
CHAT = Tokens(204, read=4096, output=52)  # 4300 prompt tokens, 4096 of them cached
RESPONSES = Tokens(288, read=6912, creation=None, output=140, reasoning=64)  # 7200 input tokens
ANTHROPIC_USAGE = anthropic.usage(ANTHROPIC)
OPENAI_USAGE = openai.chat_usage(CHAT)
JSON = [("content-type", "application/json")]
SSE = [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache")]


@dataclass
class Behaviour:
    """What the upstream answers; tests change it between requests."""

    anthropic: Tokens = ANTHROPIC
    chat: Tokens = CHAT
    responses: Tokens = RESPONSES
    event_delay: float = 0.0
    gzip_sse: bool = False
    status: int = 200
    text: str = "Hello from the fake upstream."
    cut_after: int | None = None  # SSE: drop the connection after this many events, without ending the body
    end_delay: float = 0.0  # SSE: wait this long after the last event before ending the body



class FakeUpstream:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.behaviour = Behaviour()
        self.last_event_sent_at: float | None = None
        self.sent: list[bytes] = []  # every response body as written: content-encoded, without chunk framing
        self._server = ScriptedUpstream(self._answer, tls)

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def records(self) -> list[RawRequest]:
        """Every request as it arrived."""
        return self._server.requests

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> FakeUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _answer(self, request: RawRequest) -> list[Action]:
        path = request.target.split("?", 1)[0]
        if request.method != "POST":
            if path.startswith("/v1/models"):
                return self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
            return self._json(404, openai.error("not found", "not_found"))
        try:
            body = json.loads(_decoded(request))
        except ValueError:
            return self._json(400, anthropic.error("invalid_request_error", "bad json"))
        behaviour = self.behaviour
        if behaviour.status != 200:
            return self._json(behaviour.status, anthropic.error("overloaded_error", "Overloaded"))
        model, stream, text = body.get("model", "fake-model"), bool(body.get("stream")), behaviour.text
        if path.endswith("/messages"):
            used = anthropic.usage(behaviour.anthropic)
            if stream:
                return self._sse(request, anthropic.events(used, words(text), model, "msg_fake"))
            return self._json(200, anthropic.message(used, text, model, "msg_fake"))
        if path.endswith("/chat/completions"):
            if stream:
                asked = bool((body.get("stream_options") or {}).get("include_usage"))
                used = openai.chat_usage(behaviour.chat) if asked else None
                return self._sse(request, openai.chat_events(used, words(text), model, "chatcmpl-fake",
                                                             role_chunk=False))
            return self._json(200, openai.completion(openai.chat_usage(behaviour.chat), text, model, "chatcmpl-fake"))
        if path.endswith("/responses"):
            used = openai.responses_usage(behaviour.responses)
            if stream:
                return self._sse(request, openai.responses_events(used, words(text), model, "resp_fake"))
            return self._json(200, openai.response(used, text, model, "resp_fake"))
        return self._json(404, openai.error("not found", "not_found"))

    def _json(self, status: int, obj: object) -> list[Action]:
        data = framing.dumps(obj).encode()
        self.sent.append(data)
        return [Send(response_bytes(status, JSON, data))]

    def _sse(self, request: RawRequest, events: list[Event]) -> list[Action]:
        """Each event its own chunk, ``event_delay`` apart; noted when it has left, for timing tests."""
        behaviour = self.behaviour
        gzipped = behaviour.gzip_sse and "gzip" in (request.header("accept-encoding") or "")
        encoder = FlushedGzip(gzipped)
        actions: list[Action] = [Send(chunked_head(200, [*SSE, ("content-encoding", "gzip")] if gzipped else SSE))]
        body = bytearray()
        for index, data in enumerate(framing.frames(events)):
            if index == behaviour.cut_after:
                self.sent.append(bytes(body))
                return [*actions, Close()]
            if index and behaviour.event_delay:
                actions.append(Pause(behaviour.event_delay))
            piece = encoder.encode(data)
            body += piece
            actions += [Send(chunk(piece)), Note(self._event_sent)]
        tail = encoder.close()
        body += tail
        self.sent.append(bytes(body))  # known before any byte is sent: a client that has it all sees it here
        if behaviour.end_delay:
            actions.append(Pause(behaviour.end_delay))
        return [*actions, Send((chunk(tail) if tail else b"") + chunk(b""))]

    def _event_sent(self) -> None:
        self.last_event_sent_at = time.monotonic()


def words(text: str) -> list[str]:
    """The pieces a text is streamed in: each word with a space after it (what the tests' expected texts show)."""
    return [word + " " for word in text.split(" ")]


def _decoded(request: RawRequest) -> bytes:
    """The request body without its content-encoding (Codex sends zstd, some clients gzip)."""
    coding = (request.header("content-encoding") or "").lower()
    if coding == "gzip":
        return gzip.decompress(request.body)
    if coding == "zstd":
        return zstd.decompress(request.body)
    return request.body
