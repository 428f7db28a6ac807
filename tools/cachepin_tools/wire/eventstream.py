"""AWS event-stream messages (``application/vnd.amazon.eventstream``), the framing of Bedrock's streams.

A message is ``total length | headers length | prelude CRC | headers |
payload | message CRC``: the lengths and CRCs big-endian u32, each CRC
``zlib.crc32`` of what precedes it (the prelude's of the first 8 bytes). A
header is ``name length (u8) | name | value type (u8) | value``; Bedrock's are
strings (type 7, a u16 length before the UTF-8). ``header`` also writes the
other types, and ``prelude`` a bare prelude, for tests that need odd or broken
messages with every CRC right.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping

BOOL_TRUE, BOOL_FALSE, BYTE, INT16, INT32, INT64, BYTES, STRING, TIMESTAMP, UUID = range(10)
"""The value types of the format."""


def header(name: str, kind: int, value: bytes = b"") -> bytes:
    """One header; ``value`` as the type stores it (``BYTES`` and ``STRING`` get their u16 length here)."""
    encoded = name.encode()
    if kind in (BYTES, STRING):
        value = struct.pack(">H", len(value)) + value
    return bytes([len(encoded)]) + encoded + bytes([kind]) + value


def string_headers(headers: Mapping[str, str]) -> bytes:
    return b"".join(header(name, STRING, value.encode()) for name, value in headers.items())


def prelude(total: int, headers_length: int) -> bytes:
    """The 12 bytes that open a message, CRC included."""
    lengths = struct.pack(">II", total, headers_length)
    return lengths + struct.pack(">I", zlib.crc32(lengths))


def message(headers: Mapping[str, str] | Iterable[bytes], payload: bytes = b"") -> bytes:
    """One whole message: string headers from a mapping, or headers already encoded (``header``)."""
    block = string_headers(headers) if isinstance(headers, Mapping) else b"".join(headers)
    head = prelude(12 + len(block) + len(payload) + 4, len(block)) + block + payload
    return head + struct.pack(">I", zlib.crc32(head))
