"""A client that sends exactly the header fields it is given and shows the response as it came."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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
