"""The accept loop and connection threads of a test server on 127.0.0.1, and their orderly end.

The scripted HTTP/1.1 upstream and the HTTP/2 upstream differ only in what
they do with a connection; both need the same guarantees around it: daemon
threads, an optional TLS handshake per connection, a bug in a test's script
kept for the test to see, and ``close()`` releasing hung handlers, closing
every socket and joining every thread, so no test leaves a server behind.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable


class Closed(Exception):
    """The peer closed the connection (or sent more than a test server reads): stop serving it."""


class Listener:
    """Accepts connections on a free port and serves each in its own thread with ``serve(conn)``."""

    def __init__(self, name: str, tls: ssl.SSLContext | None) -> None:
        self.name = name
        self.tls = tls
        self.released = threading.Event()  # set by close(): paused and hung handlers return
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.conns: set[socket.socket] = set()
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.errors: list[BaseException] = []
        self._serve: Callable[[socket.socket], None] | None = None
        self.acceptor = threading.Thread(target=self._accept, name=f"{name}-accept", daemon=True)

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def start(self, serve: Callable[[socket.socket], None]) -> None:
        self._serve = serve
        self.acceptor.start()

    def _accept(self) -> None:
        while not self.released.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._run, args=(conn,), name=f"{self.name}-conn", daemon=True)
            with self.lock:
                self.threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket) -> None:
        assert self._serve is not None
        conn.settimeout(30)
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            with self.lock:
                self.conns.add(conn)
            self._serve(conn)
        except (Closed, OSError, ssl.SSLError):
            pass
        except Exception as error:  # a bug in a test script: keep it for the test to see
            self.errors.append(error)
        finally:
            with self.lock:
                self.conns.discard(conn)
            quietly(conn.close)

    def close(self) -> None:
        self.released.set()
        quietly(self.listener.close)
        self.acceptor.join(5)
        with self.lock:
            conns, threads = list(self.conns), list(self.threads)
        for conn in conns:
            quietly(conn.shutdown, socket.SHUT_RDWR)
        for thread in threads:
            thread.join(5)


def quietly(fn: Callable[..., object], *args: object) -> None:
    """Call ``fn``, ignoring the OSError of a socket that is already gone."""
    try:
        fn(*args)
    except OSError:
        pass
