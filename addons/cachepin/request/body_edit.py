"""The body changes cachepin may make, each one member added as text where the body has none.

There are two, both opt-in: ``prompt_cache_key`` for OpenAI-style requests
(``affinity_prompt_cache_key``: OpenAI routes its own prompt cache by this body
field, not by headers) and the provider's cache diagnostics
(``cache_diagnostics``, ``diagnostics_edit.py``). A member is spliced in as
text right after an opening brace, so every other byte of the client's body
stays exactly as it was sent.
"""

from __future__ import annotations

import json
import re

from cachepin.request.body import parse_json_object

OPENAI_MAX_KEY_LENGTH = 64
_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _spliced(raw: bytes, start: int, name: str, value: object) -> bytes:
    """``raw`` with ``"name":value`` first in the object whose opening brace ends at byte ``start``."""
    member = json.dumps(name).encode("ascii") + b":" + json.dumps(value, separators=(",", ":")).encode("ascii")
    empty_object = raw[start:].lstrip().startswith(b"}")
    return raw[:start] + member + (b"" if empty_object else b",") + raw[start:]


def with_member(raw: bytes, name: str, value: object) -> bytes | None:
    """``raw`` (a JSON object without member ``name``) with it added, or None if it is no object."""
    stripped = raw.lstrip()
    if not stripped.startswith(b"{"):
        return None
    return _spliced(raw, len(raw) - len(stripped) + 1, name, value)


def with_prompt_cache_key(raw: bytes, key: str) -> bytes | None:
    """``raw`` (a JSON object without ``prompt_cache_key``) with the key added, or None if it is no object."""
    return with_member(raw, "prompt_cache_key", key)


def with_nested_member(raw: bytes, parent: str, name: str, value: object) -> bytes | None:
    """``raw`` with ``"name":value`` added inside the object that is its member ``parent`` (which has no ``name``).

    None when ``raw`` is no UTF-8 JSON object, or ``parent`` is not in it exactly once or holds no object: the
    place to splice at must be beyond doubt.
    """
    try:
        text = raw.decode("utf-8")
        start = _member_object(text, parent)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return None if start is None else _spliced(raw, len(text[:start].encode("utf-8")), name, value)


def _member_object(text: str, name: str) -> int | None:
    """The index just after the opening brace of top-level member ``name``'s object; None when there is none,
    more than one, or it holds another value. Raises ``ValueError`` for text that is no JSON object."""
    index = _skip(text, 0)
    if text[index:index + 1] != "{":
        return None
    index = _skip(text, index + 1)
    if text[index:index + 1] == "}":
        return None
    found: int | None = None
    seen = 0
    while True:
        if text[index:index + 1] != '"':
            raise ValueError("expected a member name")
        key, index = _DECODER.raw_decode(text, index)
        index = _skip(text, index)
        if text[index:index + 1] != ":":
            raise ValueError("expected a colon")
        index = _skip(text, index + 1)
        if key == name:
            seen += 1
            found = index + 1 if text[index:index + 1] == "{" else None
        _, index = _DECODER.raw_decode(text, index)
        index = _skip(text, index)
        separator = text[index:index + 1]
        if separator == "}":
            return found if seen == 1 and _skip(text, index + 1) == len(text) else None
        if separator != ",":
            raise ValueError("expected a comma")
        index = _skip(text, index + 1)


def _skip(text: str, index: int) -> int:
    """The index of the first character at or after ``index`` that is no JSON whitespace."""
    space = _SPACE.match(text, index)
    return space.end() if space else index


GZIP_MAGIC = b"\x1f\x8b"


def coding_round_trips(content_encoding: str, raw: bytes) -> bool:
    """Whether the edited body, re-encoded in the declared coding, keeps the container the client sent.

    mitmproxy's gzip decoder also takes zlib streams: such a body labelled
    gzip decodes, but re-encoding it after the edit would send real gzip, a
    change beyond the key. Both deflate forms (zlib and raw) are what HTTP
    means by ``deflate``; br and zstd decode only what they are.
    """
    return content_encoding.strip().lower() != "gzip" or raw.startswith(GZIP_MAGIC)


def exact_body(decoded: bytes | None, coding: str, raw: bytes) -> bytes | None:
    """The decoded body when an edit of it goes upstream in exactly the coding the client sent, else None.

    ``decoded`` is the body decoded strictly (None when it does not decode), ``raw`` the bytes as sent: setting a
    request's content re-encodes it in ``coding``, so a lying or unknown coding, or zlib labelled gzip, would
    change more than the member added.
    """
    return decoded if decoded is not None and coding_round_trips(coding, raw) else None


def prompt_cache_key_edit(decoded: bytes | None, coding: str, raw: bytes, body: dict | None,
                          session_id: str) -> tuple[bytes | None, list[str]]:
    """The body with ``prompt_cache_key`` added where that changes nothing else, and the problems worth a warning.

    ``decoded``, ``coding`` and ``raw`` are as for ``exact_body``; ``body`` is the parse already made, or None to
    parse ``decoded``. A body that is no JSON object, or already has a key, is left alone without a word.
    """
    if body is None:
        body = parse_json_object(decoded)
    if body is None or "prompt_cache_key" in body or decoded is None:
        return None, []
    exact = exact_body(decoded, coding, raw)
    if exact is None:
        return None, [f"prompt_cache_key not added: the body is labelled {coding!r} but is not in that format, "
                      "and re-encoding it would change more than the key"]
    if len(session_id) > OPENAI_MAX_KEY_LENGTH:
        return None, [f"session id is {len(session_id)} characters, over OpenAI's {OPENAI_MAX_KEY_LENGTH} for "
                      "prompt_cache_key; not added"]
    return with_prompt_cache_key(exact, session_id), []
