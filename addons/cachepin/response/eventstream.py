"""The AWS event-stream scanner: Bedrock's binary response streams, read as they pass.

Bedrock's streaming APIs (``/converse-stream``, ``/invoke-with-response-stream``)
answer ``application/vnd.amazon.eventstream``, a run of binary messages:
``total length | headers length | prelude CRC | headers | payload | message CRC``,
the lengths and CRCs big-endian u32, the CRCs zlib's CRC-32 (of the first 8
bytes; of everything before the last 4). A header is ``name length (u8) |
name | value type (u8) | value``, whose size the type sets (7, a string, and
6, bytes, carry a u16 length). The messages that matter to the audit are few:

- a Converse stream's ``metadata`` event, whose JSON payload is ``{"usage":
  {...}, "metrics": {...}}``, the last event of a stream;
- an InvokeModel stream's ``chunk`` events, whose JSON payload's ``bytes`` is
  the base64 of one event of the model's own stream (Anthropic's, for Claude);
- exceptions (``:message-type: exception``), named by ``:exception-type``, and
  errors (``:message-type: error``), by ``:error-code``; their payload is a
  message, free text, never read.

The scanner feeds the sink the JSON that holds one of its marks (``usage_mark``,
``error_mark``), as the SSE scanner does, and knows nothing of providers beyond
these event names. Frames span pieces: one unfinished message is carried over,
at most ``MAX_MESSAGE`` bytes (the AWS SDKs' limits: 128 KiB of headers, 16 MiB
of payload). A CRC that does not match, or lengths no encoder writes, mean the
stream cannot be split into messages any more: reading stops with one warning,
and the bytes still reach the client (that is the tap's business). A message
whose headers cannot be read is skipped with a warning: its CRC held, so the
next one starts where it says.
"""

from __future__ import annotations

import binascii
import struct
import zlib
from collections.abc import Iterator

from cachepin.request.json_parse import loads
from cachepin.response.sse import EventSink

MAX_HEADERS = 128 * 1024
MAX_PAYLOAD = 16 * 1024 * 1024
MAX_MESSAGE = 16 + MAX_HEADERS + MAX_PAYLOAD
"""Longest message the decoder accepts (and so carries across pieces): the prelude, both limits, the CRC."""

_PRELUDE = struct.Struct(">III")
_CRC = struct.Struct(">I")
_OVERHEAD = 16  # prelude (12) and message CRC (4)
_STRING, _BYTES = 7, 6  # value types with a u16 length
_FIXED_SIZES = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}  # bools, ints, timestamp, uuid
_BYTES_FIELD = b'"bytes":"'
_KNOWN_BLOCKS = 16  # header blocks whose kind a scanner remembers: Bedrock's streams repeat a handful
_KNOWN_SIZE = 512  # ... each of at most this many bytes, so a hostile stream pins little memory
_CHUNK, _EVENT, _OTHER = "chunk", "event", "other"  # what a message is, unless it is an error


class FramingError(ValueError):
    """The stream cannot be split into messages: a CRC failed, or a length is impossible."""


class HeaderError(ValueError):
    """A message's headers cannot be read (its framing is intact)."""


class MessageDecoder:
    """Splits an event stream, cut at arbitrary points, into its messages, checking both CRCs.

    An unfinished message is carried over in a bytearray until the bytes its
    prelude announces have arrived, then copied once; everything else is
    sliced from the piece that holds it. The messages come from a generator:
    each is read before the next is checked, so a break in the framing costs
    none of the messages before it.
    """

    def __init__(self) -> None:
        self._carry = bytearray()
        self._wanted = 12  # bytes the carried message needs before it can be read further
        self.offset = 0  # where in the stream the carried bytes (or the next piece) begin

    @property
    def pending(self) -> int:
        """Bytes of an unfinished message held back."""
        return len(self._carry)

    def feed(self, data: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The messages ``data`` completes, each as (headers block, payload), in order; then ``FramingError``
        where the framing breaks, if it does (the messages before it are read all the same)."""
        if self._carry:
            self._carry += data
            if len(self._carry) < self._wanted:
                return
            data = bytes(self._carry)
            self._carry.clear()
        pos, size = 0, len(data)
        self._wanted = 12
        while size - pos >= 12:
            total, headers_size, prelude_crc = _PRELUDE.unpack_from(data, pos)
            if zlib.crc32(data[pos : pos + 8]) != prelude_crc:
                raise FramingError(f"prelude CRC mismatch at byte {self.offset + pos}")
            if not (_OVERHEAD + headers_size <= total <= MAX_MESSAGE and headers_size <= MAX_HEADERS
                    and total - _OVERHEAD - headers_size <= MAX_PAYLOAD):
                raise FramingError(f"impossible lengths at byte {self.offset + pos} "
                                   f"(message {total} bytes, headers {headers_size})")
            end = pos + total
            if end > size:
                self._wanted = total
                break
            if zlib.crc32(data[pos : end - 4]) != _CRC.unpack_from(data, end - 4)[0]:
                raise FramingError(f"message CRC mismatch at byte {self.offset + pos}")
            headers_end = pos + 12 + headers_size
            message = data[pos + 12 : headers_end], data[headers_end : end - 4]
            pos = end
            yield message
        self.offset += pos
        if pos < size:
            self._carry += memoryview(data)[pos:]


def string_headers(block: bytes) -> dict[str, str]:
    """The string-valued headers of a headers block (the only type Bedrock's names and kinds use); values of the
    other types are skipped by their size. Raises ``HeaderError``."""
    headers: dict[str, str] = {}
    pos, end = 0, len(block)
    while pos < end:
        name_end = pos + 1 + block[pos]
        if name_end >= end:
            raise HeaderError("a header is cut short")
        name, kind, pos = block[pos + 1 : name_end], block[name_end], name_end + 1
        if kind in (_STRING, _BYTES):
            if pos + 2 > end:
                raise HeaderError("a header is cut short")
            value_end = pos + 2 + int.from_bytes(block[pos : pos + 2])
            if kind == _STRING:
                headers[name.decode("utf-8", "replace")] = block[pos + 2 : value_end].decode("utf-8", "replace")
        elif kind in _FIXED_SIZES:
            value_end = pos + _FIXED_SIZES[kind]
        else:
            raise HeaderError(f"unknown header value type {kind}")
        if value_end > end:
            raise HeaderError("a header is cut short")
        pos = value_end
    return headers


def _kind(headers: dict[str, str]) -> str | tuple[str, str | None]:
    """What a message is: a chunk, another event, an error (with its type: ``:exception-type`` or, for a
    ``:message-type`` of ``error``, ``:error-code``), or something else, which is ignored."""
    match headers.get(":message-type", "event"):
        case "exception":
            return "error", headers.get(":exception-type")
        case "error":
            return "error", headers.get(":error-code")
        case "event":
            return _CHUNK if headers.get(":event-type") == "chunk" else _EVENT
        case _:
            return _OTHER


class EventStreamScanner:
    """Finds the usage and errors of an event stream, fed the (content-decoded) stream in pieces.

    The same interface as ``sse.SseScanner``, so one tap drives either.
    """

    def __init__(self, sink: EventSink) -> None:
        self._sink = sink
        self._usage_mark = sink.usage_mark
        self._error_mark = sink.error_mark
        self._decoder: MessageDecoder | None = MessageDecoder()
        self._kinds: dict[bytes, str | tuple[str, str | None]] = {}

    def feed(self, data: bytes) -> None:
        if self._decoder is None or not data:
            return
        try:
            for headers, payload in self._decoder.feed(data):
                self._message(headers, payload)
        except FramingError as exc:
            self._decoder = None
            self._sink.warn(f"the AWS event stream is corrupt ({exc}): the rest of it was not read")

    def flush(self) -> None:
        """Nothing is held back unparsed: a message is read as soon as it is complete."""

    def close(self) -> None:
        """Ends the stream: a message cut short is lost, and said so."""
        if self._decoder is not None and self._decoder.pending:
            self._sink.warn(f"the AWS event stream ended inside a message ({self._decoder.pending} bytes of it "
                            f"unread)")
            self._decoder = MessageDecoder()

    def _message(self, block: bytes, payload: bytes) -> None:
        kind = self._kinds.get(block)
        if kind is None:
            try:
                kind = _kind(string_headers(block))
            except HeaderError as exc:
                self._sink.warn(f"an AWS event-stream message was skipped: {exc}")
                return
            if len(self._kinds) < _KNOWN_BLOCKS and len(block) <= _KNOWN_SIZE:
                self._kinds[block] = kind  # most messages are events whose headers were seen before
        if isinstance(kind, tuple):
            self._sink.feed({"error": {"type": kind[1]}})
            return
        event = self._chunk_event(payload) if kind == _CHUNK else payload if kind == _EVENT else None
        if event is not None and (self._usage_mark in event or self._error_mark in event):
            self._parse(event)

    def _chunk_event(self, payload: bytes) -> bytes | None:
        """The model's own event that a chunk carries, base64-decoded from its ``bytes`` field."""
        start = payload.find(_BYTES_FIELD) + len(_BYTES_FIELD)
        end = payload.find(b'"', start) if start >= len(_BYTES_FIELD) else -1
        field = payload[start:end]
        encoded: object = field
        if end < 0 or b"\\" in field:  # spaced or escaped JSON (``\/``): parse it properly
            parsed = self._json(payload, "a chunk")
            encoded = parsed.get("bytes") if isinstance(parsed, dict) else None
        if not isinstance(encoded, str | bytes):
            return None
        try:
            return binascii.a2b_base64(encoded, strict_mode=True)
        except (binascii.Error, ValueError):
            self._sink.warn("an AWS event-stream chunk's bytes are not base64")
            return None

    def _parse(self, event: bytes) -> None:
        parsed = self._json(event, "an event holding usage or an error")
        if parsed is not None:
            self._sink.feed(parsed)

    def _json(self, data: bytes, what: str) -> object:
        try:
            return loads(data)
        except (ValueError, RecursionError):
            self._sink.warn(f"{what} of the AWS event stream is not valid JSON")
            return None
