"""OpenAI Responses over a WebSocket, for tests: Codex's messages, an upstream that speaks the protocol, a client.

The protocol as docs/providers.md has it: ``GET /v1/responses`` upgraded, then
per turn one ``response.create`` text message (the Responses body plus
``"type"``; a later turn of Codex sends ``previous_response_id`` and only its
new input items), answered by the Responses stream's events, one JSON text
message each, up to ``response.completed``. Every answer is rendered by the
wire kit; both ends are ``wsproto`` (mitmproxy's own WebSocket library) over
plain sockets on 127.0.0.1, with permessage-deflate when asked, as Codex
negotiates it.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from listener import Closed, Listener
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Event,
    Message,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

from cachepin_tools.wire import framing, openai
from cachepin_tools.wire.tokens import Tokens

MODEL = "gpt-5.1-codex"
INSTRUCTIONS = "You are Codex, a coding agent. " * 40
TOOLS = [{"type": "function", "name": "shell", "description": "Runs a command.", "strict": False,
          "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}]
SESSION = "019a7c3e-5b21-7d40-9e8f-0a1b2c3d4e5f"
CODEX_HEADERS = [("openai-beta", "responses_websockets=2026-02-06"), ("originator", "codex_exec"),
                 ("session-id", SESSION), ("thread-id", SESSION), ("x-client-request-id", SESSION),
                 ("authorization", "Bearer sk-ws-secret")]
ENDINGS = ("response.completed", "response.failed", "response.incomplete", "error")


def user(text: str) -> dict:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def assistant(text: str) -> dict:
    return {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}


def codex_bodies(questions: list[str], answers: list[str]) -> list[dict]:
    """The create bodies of a Codex conversation over a WebSocket: the first with its whole input, each later one
    chained to the response before it, with only its new items (Codex's incremental requests)."""
    bodies = []
    for n, question in enumerate(questions):
        body: dict = {"model": MODEL, "instructions": INSTRUCTIONS, "input": [user(question)], "tools": TOOLS,
                      "tool_choice": "auto", "parallel_tool_calls": False, "store": False, "stream": True,
                      "include": ["reasoning.encrypted_content"], "prompt_cache_key": SESSION}
        if n:
            body["previous_response_id"] = f"resp_{n - 1}"
            body["input"] = [assistant(answers[n - 1]), user(question)]
        bodies.append(body)
    return bodies


def create(body: dict, lane: str | None = None) -> bytes:
    """A ``response.create`` client message as Codex writes it: its type first, then the body."""
    return framing.dumps({"type": "response.create", **({"stream_id": lane} if lane else {}), **body}).encode()


def answer(tokens: Tokens, response_id: str, text: str = "Hé, done ✓", lane: str | None = None) -> list[bytes]:
    """The server messages of one response: the Responses stream's events, ``response.completed`` last."""
    pieces = [text[:3], text[3:]]
    events = openai.responses_events(openai.responses_usage(tokens), pieces, MODEL, response_id)
    return [framing.dumps({**data, **({"stream_id": lane} if lane else {})}, framing.RAW_UTF8).encode()
            for _, data in events if isinstance(data, dict)]


def warm(turn: int) -> Tokens:
    """A per-connection cache: the first response writes the prompt (OpenAI reports no writes), later ones read it."""
    return Tokens(2100, read=0, creation=None, output=40) if turn == 0 else Tokens(60 * turn, read=2048,
                                                                                    creation=None, output=40)


@dataclass
class Connection:
    """What one WebSocket connection to the upstream carried."""

    headers: list[tuple[str, str]]
    received: list[bytes] = field(default_factory=list)  # every client message's content, as it arrived
    sent: list[bytes] = field(default_factory=list)  # every server message's content, as written

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


type Script = Callable[[int, dict], list[bytes] | None]
"""The answer to the n-th create of a connection (its parsed message): its messages; None closes the connection."""


def codex_script(turn: int, message: dict) -> list[bytes] | None:
    return [framing.dumps({"type": "codex.rate_limits", "rate_limits": {"limit_reached": False}}).encode(),
            *answer(warm(turn), f"resp_{turn}")]


class ResponsesSocketUpstream:
    """A Responses-over-WebSocket upstream on 127.0.0.1 (any path upgrades); ``connections`` records each one."""

    def __init__(self, script: Script = codex_script) -> None:
        self.script = script
        self.connections: list[Connection] = []
        self._lock = threading.Lock()
        self._listener = Listener("responses-ws-upstream", None)
        self._listener.start(self._serve)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.port}"

    def _serve(self, conn: socket.socket) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        record: Connection | None = None
        text: list[str] = []
        creates = 0
        while True:
            data = conn.recv(65536)
            if not data:
                return
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, Request):
                    record = Connection([(k.decode(), v.decode()) for k, v in event.extra_headers])
                    with self._lock:
                        self.connections.append(record)
                    deflate = [PerMessageDeflate()] if event.extensions else []
                    conn.sendall(ws.send(AcceptConnection(extensions=deflate)))
                elif isinstance(event, TextMessage) and record is not None:
                    text.append(event.data)
                    if not event.message_finished:
                        continue
                    content = "".join(text).encode()
                    text.clear()
                    record.received.append(content)
                    message = json.loads(content)
                    if message.get("type") != "response.create":
                        continue
                    reply = self.script(creates, message)
                    creates += 1
                    if reply is None:
                        raise Closed
                    for out in reply:
                        record.sent.append(out)
                        conn.sendall(ws.send(TextMessage(data=out.decode())))
                elif isinstance(event, CloseConnection):
                    conn.sendall(ws.send(event.response()))
                    return

    def close(self) -> None:
        self._listener.close()
        assert not self._listener.errors, self._listener.errors

    def __enter__(self) -> ResponsesSocketUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ResponsesSocketClient:
    """A client of Responses over a WebSocket (as Codex is): handshake with exactly ``headers``, then messages."""

    def __init__(self, port: int, headers: list[tuple[str, str]], target: str = "/v1/responses",
                 deflate: bool = True) -> None:
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.conn = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.received: list[bytes] = []
        self._events: list[Event] = []
        self.conn.sendall(self.ws.send(Request(
            host=f"127.0.0.1:{port}", target=target, extra_headers=[(k.encode(), v.encode()) for k, v in headers],
            extensions=[PerMessageDeflate()] if deflate else [])))
        accepted = self._next((AcceptConnection, RejectConnection))
        assert isinstance(accepted, AcceptConnection), f"upgrade refused: {accepted}"
        self.deflate = bool(accepted.extensions)

    def send(self, content: bytes) -> None:
        self.conn.sendall(self.ws.send(TextMessage(data=content.decode())))

    def response(self) -> list[bytes]:
        """Server messages up to the one that ends a response."""
        messages = []
        while True:
            messages.append(self.message())
            if json.loads(messages[-1]).get("type") in ENDINGS:
                return messages

    def message(self) -> bytes:
        parts: list[str | bytes] = []
        while True:
            event = self._next((Message,))
            assert isinstance(event, Message)
            parts.append(event.data)
            if event.message_finished:
                content = b"".join(p.encode() if isinstance(p, str) else p for p in parts)
                self.received.append(content)
                return content

    def close(self) -> None:
        """A normal close, waiting for the peer's answer."""
        try:
            self.conn.sendall(self.ws.send(CloseConnection(code=1000)))
            self._next((CloseConnection,))
        except (Closed, OSError):
            pass
        self.conn.close()

    def drop(self) -> None:
        """Hang up without a close frame, as a client that dies does."""
        self.conn.close()

    def _next(self, kinds: tuple[type[Event], ...]) -> Event:
        while True:
            while self._events:
                event = self._events.pop(0)
                if isinstance(event, kinds):
                    return event
                if isinstance(event, CloseConnection):
                    raise Closed(f"the server closed the WebSocket ({event.code})")
            data = self.conn.recv(65536)
            if not data:
                raise Closed("the connection closed")
            self.ws.receive_data(data)
            self._events.extend(self.ws.events())
