"""A raw-socket HTTP/1.1 upstream that misbehaves on purpose, on 127.0.0.1 only.

Each request is answered by a script of actions (send these exact bytes,
pause, reset the connection with a TCP RST, hang until released, close), so
a test controls every byte and fault the proxy sees. It records each request
as it arrived (head and de-chunked body), can say when a request's head has
arrived before its body (``on_head``), and echoes websocket messages.
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from listener import Closed, Listener

from cachepin_tools.wire.http1 import response_bytes

# -- actions -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class Pause:
    seconds: float


@dataclass(frozen=True)
class Reset:
    """Abort the connection with a TCP RST (SO_LINGER 0)."""


@dataclass(frozen=True)
class Hang:
    """Send nothing more until the server is closed or ``seconds`` pass, then close."""

    seconds: float = 30.0


@dataclass(frozen=True)
class Close:
    """Close the connection normally (FIN)."""


@dataclass(frozen=True)
class Note:
    """Call ``callback`` at this point of the script: a test learns when bytes before it have left."""

    callback: Callable[[], object]


type Action = Send | Pause | Reset | Hang | Close | Note


# -- requests ----------------------------------------------------------------------------------------


@dataclass
class RawRequest:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes  # de-chunked, still content-encoded
    head: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    @property
    def path(self) -> str:
        return self.target


class _Reader:
    """Buffered reads from a socket that tell a closed connection apart."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buffer = bytearray()

    def _fill(self) -> None:
        data = self.conn.recv(65536)
        if not data:
            raise Closed
        self.buffer += data

    def until(self, mark: bytes, limit: int = 1 << 20) -> bytes:
        while (index := self.buffer.find(mark)) < 0:
            if len(self.buffer) > limit:
                raise Closed
            self._fill()
        out = bytes(self.buffer[: index + len(mark)])
        del self.buffer[: index + len(mark)]
        return out

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        out = bytes(self.buffer[:size])
        del self.buffer[:size]
        return out


def read_request(reader: _Reader, on_head: Callable[[RawRequest], object] | None = None) -> RawRequest:
    """The next request; ``on_head`` is called with it (no body yet) as soon as its head has arrived."""
    head = reader.until(b"\r\n\r\n")
    first, *rest = head[:-4].decode("latin-1").split("\r\n")
    method, target, version = first.split(" ", 2)
    headers = [(name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in rest)]
    request = RawRequest(method, target, version, headers, b"", head)
    if on_head is not None:
        on_head(request)
    if "chunked" in (request.header("transfer-encoding") or "").lower():
        body = bytearray()
        while True:
            size = int(reader.until(b"\r\n")[:-2].split(b";")[0], 16)
            if size == 0:
                reader.until(b"\r\n")
                break
            body += reader.exactly(size)
            reader.exactly(2)
        request.body = bytes(body)
    elif length := int(request.header("content-length") or 0):
        request.body = reader.exactly(length)
    return request


# -- the HTTP/1.1 server -----------------------------------------------------------------------------

Script = Callable[[RawRequest], Sequence[Action]]


def ok_json(body: bytes = b'{"ok":true}') -> list[Action]:
    """A small JSON 200: the default answer, for tests about what reaches the upstream."""
    return [Send(response_bytes(200, [("content-type", "application/json")], body))]


def _reset(conn: socket.socket) -> None:
    raw = conn
    if isinstance(conn, ssl.SSLSocket):
        raw = socket.socket(fileno=conn.detach())
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()


class ScriptedUpstream:
    """Answers each request with ``script(request)``; the default is a small JSON 200.

    ``on_head(request)`` runs when a request's head has arrived, before its body
    is read: a test sees whether the proxy sent the head on while the body was
    still arriving.
    """

    def __init__(self, script: Script | None = None, tls: ssl.SSLContext | None = None,
                 on_head: Callable[[RawRequest], object] | None = None) -> None:
        self.script: Script = script or (lambda request: ok_json())
        self.on_head = on_head
        self.requests: list[RawRequest] = []
        self.websocket_messages: list[str] = []
        self.scheme = "https" if tls else "http"
        self._threads = Listener("scripted", tls)
        self._threads.start(self._serve)

    @property
    def port(self) -> int:
        return self._threads.port

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def errors(self) -> list[BaseException]:
        return self._threads.errors

    def _serve(self, conn: socket.socket) -> None:
        reader = _Reader(conn)
        while True:
            request = read_request(reader, self.on_head)
            self.requests.append(request)
            if (request.header("upgrade") or "").lower() == "websocket":
                self._websocket(conn, reader, request)
                return
            for action in self.script(request):
                match action:
                    case Send(data):
                        conn.sendall(data)
                    case Pause(seconds):
                        if self._threads.released.wait(seconds):
                            return
                    case Reset():
                        _reset(conn)
                        raise Closed
                    case Hang(seconds):
                        self._threads.released.wait(seconds)
                        return
                    case Close():
                        return
                    case Note(callback):
                        callback()

    def _websocket(self, conn: socket.socket, reader: _Reader, request: RawRequest) -> None:
        """Echo every text message back (and note it), until the client closes."""
        from wsproto import ConnectionType, WSConnection
        from wsproto.events import AcceptConnection, CloseConnection, Message, Request, TextMessage

        ws = WSConnection(ConnectionType.SERVER)
        ws.receive_data(request.head + bytes(reader.buffer))
        reader.buffer.clear()
        text: list[str] = []
        while True:
            for event in ws.events():
                if isinstance(event, Request):
                    conn.sendall(ws.send(AcceptConnection()))
                elif isinstance(event, Message):
                    text.append(event.data if isinstance(event.data, str) else event.data.decode())
                    if event.message_finished:
                        message = "".join(text)
                        text.clear()
                        self.websocket_messages.append(message)
                        conn.sendall(ws.send(TextMessage(data=f"echo:{message}")))
                elif isinstance(event, CloseConnection):
                    conn.sendall(ws.send(event.response()))
                    return
            data = conn.recv(65536)
            if not data:
                return
            ws.receive_data(data)

    def close(self) -> None:
        self._threads.close()

    def __enter__(self) -> ScriptedUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


