"""Incremental content decoding of a response body copy, one decoder per flow.

A stream callable sees the body exactly as it travels: still gzip-, br- or
zstd-encoded (mitmproxy only decodes ``.content``). The usage tap decodes a
*copy* chunk by chunk here; the client keeps the original bytes.

Memory is bounded per call, not only per stream: every codec is driven with
an output limit of ``_PIECE`` bytes per step, and the output of one input
chunk is capped at ``max_output`` (default :data:`MAX_OUTPUT_PER_CHUNK`). A
chunk that expands beyond the cap is treated as a decompression bomb.
"""

from __future__ import annotations

import sys
import types
import zlib
from collections.abc import Callable
from typing import Any

import brotli

zstd: types.ModuleType | None
try:
    if sys.version_info >= (3, 14):
        from compression import zstd
    else:
        from backports import zstd
except ImportError:  # mitmproxy 12 releases before PR #8397 shipped `zstandard` instead of this API
    zstd = None

MAX_OUTPUT_PER_CHUNK = 32 * 1024 * 1024
"""Most bytes one input chunk may decode to.

mitmproxy hands over at most about 64 KiB per call (HTTP/1 reads; HTTP/2 DATA
frames are 16 KiB). Text streams compress 5-30:1, so an honest chunk decodes
to a few MiB at most; reaching 32 MiB needs a ratio above 500:1, which only a
bomb has. The cap also bounds the CPU time one chunk can cost the event loop.
"""

_PIECE = 1024 * 1024  # output limit of one codec step
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_WINDOW_LOG_MAX = 23  # RFC 9659: the zstd content coding uses windows of at most 8 MiB
_CODEC_ERRORS = (zlib.error, brotli.error, EOFError) + ((zstd.ZstdError,) if zstd else ())


class DecodeError(ValueError):
    """The body cannot be decoded: unknown coding, corrupt, truncated or a bomb."""


class _Budget:
    """The output one input chunk may still produce, shared by chained codecs."""

    __slots__ = ("left", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, piece: bytes) -> bytes:
        self.left -= len(piece)
        if self.left < 0:
            raise DecodeError(f"a chunk decodes to more than {self.limit} bytes (decompression bomb?)")
        return piece


def _joined(pieces: list[bytes]) -> bytes:
    """Avoids the copy of ``join`` in the usual case of a single piece."""
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


class _Zlib:
    """gzip (``wbits=47`` also accepts a zlib header) and deflate, several members in a row."""

    def __init__(self, name: str, wbits: int) -> None:
        self.name = name
        self._wbits = wbits
        self._d = zlib.decompressobj(wbits)
        self._mid_stream = False

    def decode(self, data: bytes, budget: _Budget) -> bytes:
        pieces: list[bytes] = []
        while data or self._mid_stream:
            if self._d.eof:
                self._d = zlib.decompressobj(self._wbits)
            self._mid_stream = True
            piece = budget.spend(self._d.decompress(data, _PIECE))
            pieces.append(piece)
            if self._d.eof:
                self._mid_stream = False
                data = self._d.unused_data
                continue
            data = self._d.unconsumed_tail
            # A full piece may leave output pending inside zlib with no input
            # left (a long match half copied): only a short piece means done.
            if not data and len(piece) < _PIECE:
                break
        return _joined(pieces) if pieces else b""

    def finish(self) -> bytes:
        if self._mid_stream:
            raise DecodeError(f"{self.name}: compressed body is truncated")
        return b""


class _Brotli:
    name = "br"

    def __init__(self) -> None:
        self._d = brotli.Decompressor()
        self._fed = False

    def decode(self, data: bytes, budget: _Budget) -> bytes:
        if not data:
            return b""
        self._fed = True
        pieces = [budget.spend(self._d.process(data, output_buffer_limit=_PIECE))]
        while not self._d.can_accept_more_data():
            pieces.append(budget.spend(self._d.process(b"", output_buffer_limit=_PIECE)))
        return _joined(pieces)

    def finish(self) -> bytes:
        if self._fed and not self._d.is_finished():
            raise DecodeError("br: compressed body is truncated")
        return b""


class _Zstd:
    name = "zstd"

    def __init__(self) -> None:
        if zstd is None:
            raise DecodeError("zstd: this mitmproxy has no zstd decoder (compression.zstd / backports.zstd)")
        self._d = self._new()
        self._mid_frame = False

    @staticmethod
    def _new() -> Any:  # a ZstdDecompressor, of a module that may be missing (see the import above)
        assert zstd is not None  # __init__ checked
        return zstd.ZstdDecompressor(options={zstd.DecompressionParameter.window_log_max: _ZSTD_WINDOW_LOG_MAX})

    def decode(self, data: bytes, budget: _Budget) -> bytes:
        pieces: list[bytes] = []
        while data or self._mid_frame:
            if self._d.eof:  # streaming compressors may emit several frames
                self._d = self._new()
            self._mid_frame = True
            pieces.append(budget.spend(self._d.decompress(data, _PIECE)))
            if self._d.eof:
                self._mid_frame = False
                data = self._d.unused_data
            elif self._d.needs_input:
                break
            else:
                data = b""
        return _joined(pieces) if pieces else b""

    def finish(self) -> bytes:
        if self._mid_frame:
            raise DecodeError("zstd: compressed body is truncated")
        return b""


class _HeadSniffer:
    """Holds back the first two bytes of a layer until they choose its codec.

    Two codings can only be told from the body: an empty header over a gzip
    body (some edges drop the header) and ``deflate``, which servers send
    either zlib-wrapped (RFC 9110) or raw. The chunks may be cut anywhere,
    even after one byte.
    """

    def __init__(self, name: str, choose: Callable[[bytes], _Zlib | None]) -> None:
        self.name = name
        self._choose = choose
        self._head = b""
        self._decided = False
        self._inner: _Zlib | None = None

    def decode(self, data: bytes, budget: _Budget) -> bytes:
        if not self._decided:
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return b""
            self._decide(data)
        return self._inner.decode(data, budget) if self._inner else data

    def _decide(self, head: bytes) -> None:
        self._head = b""
        self._decided = True
        self._inner = self._choose(head)

    def finish(self) -> bytes:
        """A body shorter than two bytes is decided on what there is."""
        head = self._head
        if not self._decided and head:
            self._decide(head)
            if self._inner:
                head = self._inner.decode(head, _Budget(_PIECE))
        return head + self._inner.finish() if self._inner else head


def _sniff_gzip(head: bytes) -> _Zlib | None:
    return _Zlib("gzip", 47) if head.startswith(_GZIP_MAGIC) else None


def _sniff_deflate(head: bytes) -> _Zlib:
    """RFC 1950 header check (method 8, window <= 32 KiB, 16-bit checksum), else raw deflate."""
    if len(head) < 2:
        return _Zlib("deflate", -15)
    zlib_wrapped = head[0] & 0x0F == 8 and head[0] >> 4 <= 7 and ((head[0] << 8) | head[1]) % 31 == 0
    return _Zlib("deflate", 15 if zlib_wrapped else -15)


type _Codec = _Zlib | _Brotli | _Zstd | _HeadSniffer

_CODECS: dict[str, Callable[[], _Codec]] = {
    "gzip": lambda: _Zlib("gzip", 47),
    "x-gzip": lambda: _Zlib("gzip", 47),
    "deflate": lambda: _HeadSniffer("deflate", _sniff_deflate),
    "br": _Brotli,
    "zstd": _Zstd,
}


class IncrementalDecoder:
    """Decodes one body chunk by chunk, for the ``Content-Encoding`` it was sent with.

    Several codings (``gzip, br``) are undone last-applied first. An empty
    header means identity unless the body starts with the gzip magic. After a
    :class:`DecodeError` the decoder is spent.
    """

    def __init__(self, content_encoding: str = "", max_output: int = MAX_OUTPUT_PER_CHUNK) -> None:
        names = [n.strip().lower() for n in content_encoding.split(",")]
        names = [n for n in names if n and n != "identity"]
        unknown = [n for n in names if n not in _CODECS]
        if unknown:
            raise DecodeError(f"unsupported content encoding {unknown[0][:40]!r}")
        self._codecs = [_CODECS[n]() for n in reversed(names)]
        if not content_encoding.strip():
            self._codecs = [_HeadSniffer("gzip", _sniff_gzip)]
        self._max_output = max_output

    def decode(self, chunk: bytes) -> bytes:
        """The decoded bytes of ``chunk``; often empty, as codecs buffer."""
        if not self._codecs:
            return chunk
        return self._run(chunk, finishing=False)

    def finish(self) -> bytes:
        """Ends the body: bytes still held back, or DecodeError if it was cut short."""
        return self._run(b"", finishing=True)

    def _run(self, data: bytes, finishing: bool) -> bytes:
        budget = _Budget(self._max_output)
        for codec in self._codecs:
            try:
                data = codec.decode(data, budget) if data else b""
                if finishing:
                    data += codec.finish()
            except _CODEC_ERRORS as exc:
                raise DecodeError(f"{codec.name}: corrupt data ({exc})"[:160]) from exc
        return data
