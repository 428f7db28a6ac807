"""The one body change cachepin may make: adding ``prompt_cache_key`` to an OpenAI-style request.

OpenAI routes its own prompt cache by this body field, not by headers. The key
is spliced in as text right after the opening brace, so every other byte of
the client's body stays exactly as it was sent.
"""

from __future__ import annotations

import json

OPENAI_MAX_KEY_LENGTH = 64


def with_prompt_cache_key(raw: bytes, key: str) -> bytes | None:
    """``raw`` (a JSON object without ``prompt_cache_key``) with the key added, or None if it is no object."""
    stripped = raw.lstrip()
    if not stripped.startswith(b"{"):
        return None
    start = len(raw) - len(stripped) + 1
    member = b'"prompt_cache_key":' + json.dumps(key).encode("ascii")
    empty_object = raw[start:].lstrip().startswith(b"}")
    return raw[:start] + member + (b"" if empty_object else b",") + raw[start:]


GZIP_MAGIC = b"\x1f\x8b"


def coding_round_trips(content_encoding: str, raw: bytes) -> bool:
    """Whether the edited body, re-encoded in the declared coding, keeps the container the client sent.

    mitmproxy's gzip decoder also takes zlib streams: such a body labelled
    gzip decodes, but re-encoding it after the edit would send real gzip, a
    change beyond the key. Both deflate forms (zlib and raw) are what HTTP
    means by ``deflate``; br and zstd decode only what they are.
    """
    return content_encoding.strip().lower() != "gzip" or raw.startswith(GZIP_MAGIC)
