"""Content codings the tests compress with: zstd from wherever this Python has it, and raw deflate.

``Content-Encoding: deflate`` is zlib-wrapped by the standard, yet servers send raw deflate too, so the
decoders must take both; ``zlib.compress`` makes the first, ``raw_deflate`` the second.
"""

from __future__ import annotations

import sys
import zlib

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

__all__ = ["raw_deflate", "zstd"]


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()
