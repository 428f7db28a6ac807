"""Parsers of the addons' option values: each takes what the user typed and returns it checked, or raises
``ValueError`` with a message that names what is accepted (the addons turn it into mitmproxy's
``OptionsError``)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PROTECTED_HEADERS = frozenset({
    "authorization", "x-api-key", "api-key", "x-goog-api-key", "proxy-authorization", "cookie", "host",
    "content-length", "content-type", "content-encoding", "transfer-encoding", "connection", "keep-alive", "te",
    "trailer", "upgrade", "expect", "accept-encoding", "anthropic-version", "anthropic-beta",
    "openai-organization", "openai-project",
})  # setting one of these to a session id would break the request or overwrite its credentials
_PROTECTED_PREFIXES = ("x-amz-",)  # AWS signs these (Bedrock)


def session_headers(names: Sequence[str]) -> list[str]:
    """``affinity_headers``: at least one valid header name, none that carries credentials or framing."""
    names = list(names)
    if not names:
        raise ValueError("affinity_headers must name at least one header")
    for name in names:
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"affinity_headers: {name!r} is not a valid header name")
        if name.lower() in _PROTECTED_HEADERS or name.lower().startswith(_PROTECTED_PREFIXES):
            raise ValueError(f"affinity_headers: {name!r} carries credentials or framing; choose a session header")
    return names


def ttl_scale(text: str) -> float:
    """``cache_ttl_scale``: a number > 0."""
    try:
        scale = float(text)
    except ValueError:
        scale = -1.0
    if not scale > 0:
        raise ValueError(f"cache_ttl_scale must be a number > 0, not {text!r}")
    return scale


def minimums(entries: Sequence[str]) -> dict[str, int]:
    """``cache_minimums``: ``MODEL=TOKENS`` entries."""
    parsed = {}
    for entry in entries:
        model, _, tokens = entry.partition("=")
        if not model or not tokens.isdigit():
            raise ValueError(f"cache_minimums: expected MODEL=TOKENS, not {entry!r}")
        parsed[model.strip()] = int(tokens)
    return parsed


def writable_file(option: str, path: str) -> str:
    """An output file option: its folder must exist and be writable, now rather than at shutdown."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise ValueError(f"{option}: cannot write {path!r}: folder {folder!r} missing or read-only")
    return path
