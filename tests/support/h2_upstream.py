"""An HTTP/2-only TLS upstream (the ``h2`` library) that answers each stream as a test says.

It sends an answer's DATA frames one by one, may pause between them, and may
reset the stream with RST_STREAM after some of them: what the fault tests
need to see mitmproxy tee and record HTTP/2 streams.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from listener import Listener


@dataclass
class H2Answer:
    """One HTTP/2 response: DATA frames sent one by one; ``reset_after`` frames, then RST_STREAM."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    frames: list[bytes] = field(default_factory=list)
    reset_after: int | None = None
    pause: float = 0.0


@dataclass
class H2Request:
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)


class H2Upstream:
    """An HTTP/2-only TLS upstream (ALPN ``h2``); ``answer(request)`` says what to send back."""

    def __init__(self, tls: ssl.SSLContext, answer: Callable[[H2Request], H2Answer]) -> None:
        tls.set_alpn_protocols(["h2"])
        self.answer = answer
        self.requests: list[H2Request] = []
        self.alpn: list[str | None] = []
        self._threads = Listener("h2", tls)
        self._threads.start(self._serve)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._threads.port}"

    @property
    def errors(self) -> list[BaseException]:
        return self._threads.errors

    def _serve(self, conn: socket.socket) -> None:
        import h2.config
        import h2.connection
        import h2.events

        assert isinstance(conn, ssl.SSLSocket)
        self.alpn.append(conn.selected_alpn_protocol())
        h2conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        h2conn.initiate_connection()
        conn.sendall(h2conn.data_to_send())
        streams: dict[int, tuple[list[tuple[str, str]], bytearray]] = {}
        while True:
            data = conn.recv(65536)
            if not data:
                return
            for event in h2conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    streams[event.stream_id] = (list(event.headers), bytearray())
                elif isinstance(event, h2.events.DataReceived):
                    streams[event.stream_id][1].extend(event.data)
                    h2conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    headers, body = streams.pop(event.stream_id)
                    request = H2Request(headers, bytes(body))
                    self.requests.append(request)
                    self._respond(conn, h2conn, event.stream_id, self.answer(request))
                elif isinstance(event, h2.events.ConnectionTerminated):
                    conn.sendall(h2conn.data_to_send())
                    return
            conn.sendall(h2conn.data_to_send())

    def _respond(self, conn: socket.socket, h2conn, stream_id: int, answer: H2Answer) -> None:
        import h2.errors

        h2conn.send_headers(stream_id, [(":status", str(answer.status)), *answer.headers])
        conn.sendall(h2conn.data_to_send())
        for index, frame in enumerate(answer.frames):
            if answer.reset_after is not None and index == answer.reset_after:
                h2conn.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
                conn.sendall(h2conn.data_to_send())
                return
            if index and answer.pause:
                time.sleep(answer.pause)
            h2conn.send_data(stream_id, frame)
            conn.sendall(h2conn.data_to_send())
        h2conn.end_stream(stream_id)
        conn.sendall(h2conn.data_to_send())

    def close(self) -> None:
        self._threads.close()

    def __enter__(self) -> H2Upstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
