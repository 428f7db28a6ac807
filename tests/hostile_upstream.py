"""Upstreams for reliability tests that misbehave on purpose, on 127.0.0.1 only.

``HostileUpstream`` is a raw-socket HTTP/1.1 server: each request is answered
by a script of actions (send these exact bytes, pause, reset the connection
with a TCP RST, hang until released, close), so a test controls every byte
and fault the proxy sees. It records each request as it arrived (head and
de-chunked body) and can echo websocket messages. ``H2Upstream`` does the same
over TLS with HTTP/2 (the ``h2`` library). ``TestPKI`` makes a throwaway CA and
server certificates with ``cryptography``.

Every server runs in daemon threads, and ``close()`` releases hung handlers,
closes every socket and joins every thread.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mitmproxy import http
from mitmproxy.log import MitmLogHandler
from mitmproxy.test import taddons

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


type Action = Send | Pause | Reset | Hang | Close


def response_bytes(status: int, headers: Sequence[tuple[str, str]], body: bytes = b"",
                   reason: str | None = None, framing: str = "length") -> bytes:
    """A whole HTTP/1.1 response: ``framing`` is "length" (adds Content-Length), "chunked" or "none"."""
    lines = [f"HTTP/1.1 {status} {reason or _REASONS.get(status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if framing == "length":
        lines.append(f"content-length: {len(body)}")
    elif framing == "chunked":
        lines.append("transfer-encoding: chunked")
        body = chunk(body) + chunk(b"") if body else chunk(b"")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked_head(status: int, headers: Sequence[tuple[str, str]]) -> bytes:
    """The head of a chunked response, for scripts that send the body piece by piece with ``chunk``."""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", *(f"{n}: {v}" for n, v in headers),
             "transfer-encoding: chunked"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One chunk of chunked transfer coding; ``chunk(b"")`` is the last one."""
    return b"%x\r\n%s\r\n" % (len(data), data)


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 529: "Overloaded"}


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


class _Closed(Exception):
    pass


class _Reader:
    """Buffered reads from a socket that tell a closed connection apart."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buffer = bytearray()

    def _fill(self) -> None:
        data = self.conn.recv(65536)
        if not data:
            raise _Closed
        self.buffer += data

    def until(self, mark: bytes, limit: int = 1 << 20) -> bytes:
        while (index := self.buffer.find(mark)) < 0:
            if len(self.buffer) > limit:
                raise _Closed
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


def read_request(reader: _Reader) -> RawRequest:
    head = reader.until(b"\r\n\r\n")
    first, *rest = head[:-4].decode("latin-1").split("\r\n")
    method, target, version = first.split(" ", 2)
    headers = [(name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in rest)]
    request = RawRequest(method, target, version, headers, b"", head)
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
    return [Send(response_bytes(200, [("content-type", "application/json")], body))]


class _Threads:
    """The accept loop and connection threads of one server, and their orderly end."""

    def __init__(self, name: str, tls: ssl.SSLContext | None) -> None:
        self.name = name
        self.tls = tls
        self.released = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.conns: set[socket.socket] = set()
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.errors: list[BaseException] = []
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
        conn.settimeout(30)
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            with self.lock:
                self.conns.add(conn)
            self._serve(conn)
        except (_Closed, OSError, ssl.SSLError):
            pass
        except Exception as error:  # a bug in a test script: keep it for the test to see
            self.errors.append(error)
        finally:
            with self.lock:
                self.conns.discard(conn)
            _quietly(conn.close)

    def close(self) -> None:
        self.released.set()
        _quietly(self.listener.close)
        self.acceptor.join(5)
        with self.lock:
            conns, threads = list(self.conns), list(self.threads)
        for conn in conns:
            _quietly(conn.shutdown, socket.SHUT_RDWR)
        for thread in threads:
            thread.join(5)


def _quietly(fn: Callable[..., object], *args: object) -> None:
    try:
        fn(*args)
    except OSError:
        pass


def _reset(conn: socket.socket) -> None:
    raw = conn
    if isinstance(conn, ssl.SSLSocket):
        raw = socket.socket(fileno=conn.detach())
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()


class HostileUpstream:
    """Answers each request with ``script(request)``; the default is a small JSON 200."""

    def __init__(self, script: Script | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.script: Script = script or (lambda request: ok_json())
        self.requests: list[RawRequest] = []
        self.websocket_messages: list[str] = []
        self.scheme = "https" if tls else "http"
        self._threads = _Threads("hostile", tls)
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
            request = read_request(reader)
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
                        raise _Closed
                    case Hang(seconds):
                        self._threads.released.wait(seconds)
                        return
                    case Close():
                        return

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

    def __enter__(self) -> HostileUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the HTTP/2 server -------------------------------------------------------------------------------


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
        self._threads = _Threads("h2", tls)
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


# -- certificates ------------------------------------------------------------------------------------


class TestPKI:
    """A throwaway CA in ``folder`` (``ca.pem``) and server certificates it signs."""

    __test__ = False  # not a pytest test class

    def __init__(self, folder: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._x509, self._hashes, self._serialization, self._ec, self._oid = x509, hashes, serialization, ec, NameOID
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cachepin test CA")])
        now = datetime.datetime.now(datetime.UTC)
        self._ca_name = name
        self._ca = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self._ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._ca_key.public_key()), critical=False)
            .sign(self._ca_key, hashes.SHA256())
        )
        self.ca_pem = folder / "ca.pem"
        self.ca_pem.write_bytes(self._ca.public_bytes(serialization.Encoding.PEM))

    def server_context(self, names: Sequence[str] = ("127.0.0.1", "localhost")) -> ssl.SSLContext:
        """A server SSLContext with a fresh certificate for ``names`` (IP addresses or DNS names)."""
        x509, hashes, serialization = self._x509, self._hashes, self._serialization
        key = self._ec.generate_private_key(self._ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        alt: list[x509.GeneralName] = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(self._oid.COMMON_NAME, names[0])]))
            .issuer_name(self._ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()),
                           critical=False)
            .sign(self._ca_key, hashes.SHA256())
        )
        stem = self.folder / f"server-{x509.random_serial_number()}"
        cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
        return context


def client_context(*ca_files: Path | str, alpn: Sequence[str] = ()) -> ssl.SSLContext:
    """A client SSLContext that trusts only ``ca_files``."""
    context = ssl.create_default_context(cafile=str(ca_files[0]))
    for extra in ca_files[1:]:
        context.load_verify_locations(cafile=str(extra))
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


# -- client side and log helpers ---------------------------------------------------------------------


@dataclass
class Exchange:
    """What a client got back: the status, the header fields as sent, the de-chunked (still encoded) body."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def exchange(port: int, method: str, target: str, headers: Sequence[tuple[str, str]], body: bytes | None = None,
             timeout: float = 20.0, host: str = "127.0.0.1") -> Exchange:
    """One request with exactly ``headers`` (no Host or Accept-Encoding added), read to the end."""
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read()
        return Exchange(response.status, response.reason, list(response.getheaders()), data)
    finally:
        conn.close()


LEVEL_LOG_ADDON = '''"""Test-only addon: every log record of the mitmdump process, with its level, to one file."""
import logging

class _LevelFile(logging.Handler):
    def emit(self, record):
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        if record.exc_info:
            text += "\\n" + logging.Formatter().formatException(record.exc_info)
        with open(PATH, "a", encoding="utf-8", errors="replace") as file:
            file.write(f"{record.levelname} {record.name} {text}\\n")

PATH = %r
logging.getLogger().addHandler(_LevelFile(logging.DEBUG))
addons = []
'''


def level_log_addon(folder: Path) -> tuple[Path, Path]:
    """A ``-s`` script that logs every record as ``LEVEL logger message`` to a file; returns (script, log)."""
    log = folder / "levels.log"
    script = folder / "level_log.py"
    script.write_text(LEVEL_LOG_ADDON % str(log))
    log.touch()
    return script, log


# -- in-process harness: the addons driven as mitmproxy drives them ----------------------------------


@contextlib.contextmanager
def captured_logs() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


@contextlib.contextmanager
def harness(*addons: object) -> Iterator[taddons.context]:
    """mitmproxy's test context, whose log handler is removed again after (its loop closes with it)."""
    with taddons.context(*addons) as tctx:
        try:
            yield tctx
        finally:
            for handler in list(logging.getLogger().handlers):
                if isinstance(handler, MitmLogHandler) and getattr(handler, "master", None) is tctx.master:
                    handler.uninstall()


def problems(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.levelno >= logging.WARNING]


def fields(headers: list[tuple[str, str]]) -> http.Headers:
    return http.Headers([(k.encode(), v.encode()) for k, v in headers])


def make_request(method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> http.Request:
    request = http.Request.make(method, f"https://api.example.com{path}")
    request.headers = fields(headers)  # after make(): make() drops a Content-Encoding it cannot encode b"" with
    request.raw_content = body  # as it travels: already encoded when a content-encoding header says so
    return request


def make_response(status: int, headers: list[tuple[str, str]]) -> http.Response:
    response = http.Response.make(status)
    response.headers = fields(headers)
    return response


def run_hook(name: str, flow: http.HTTPFlow, *addons: object) -> None:
    """Call hook ``name`` on every addon that has it, in order, as mitmproxy does (exceptions propagate)."""
    for addon in addons:
        method = getattr(addon, name, None)
        if method is not None:
            method(flow)


def drive(inject: object, audit: object, flow: http.HTTPFlow, response: http.Response,
          chunks: list[bytes]) -> list[bytes] | None:
    """The hooks in mitmproxy's order; returns what the client got when the response was streamed."""
    run_hook("requestheaders", flow, inject, audit)
    run_hook("request", flow, inject, audit)
    body = b"".join(chunks)
    response.raw_content = None  # at responseheaders only the head has arrived
    flow.response = response
    run_hook("responseheaders", flow, inject, audit)
    if callable(response.stream):
        delivered = []
        for piece in [*chunks, b""]:
            out = response.stream(piece)
            assert out is piece, "the tap must hand back the very chunk object"
            delivered.append(out)
    else:
        response.raw_content = body
        delivered = None
    run_hook("response", flow, inject, audit)
    return delivered


def connections_closed(output: str) -> bool:
    """mitmdump's log shows every client connection closed again: stopping it now cuts nothing off.

    mitmproxy prints an asyncio traceback of its own when it is stopped while a connection handler is
    still finishing, whatever the addons do; tests wait for this before they stop mitmdump.
    """
    return output.count("] client connect") == output.count("] client disconnect")
