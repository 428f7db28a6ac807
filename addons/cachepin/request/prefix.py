"""The cacheable prefix of a request, as an ordered list of blocks.

Providers cache prompts by prefix, in the order tools -> system -> messages
(Anthropic) or as rendered (OpenAI-style). Both the gateway simulator (which
decides what a request reads and writes) and the miss explainer (which names
the first block that changed) need the same view of a request, so it lives
here, once.

A block's ``digest`` covers its content and role but not its ``cache_control``
marker: moving a breakpoint does not change what is cached. Nor does a
volatile block (``volatile.py``) change its digest.

Every turn of a conversation resends the blocks of all turns before it, and
canonical JSON of a 500 KB request costs milliseconds of the proxy's event
loop, so digests and token estimates are remembered by content (see
``_measured``): a turn only pays in full for its new blocks.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from cachepin.request.dialects import Dialect
from cachepin.request.tokens import estimate_tokens
from cachepin.request.volatile import is_volatile_system_text


@dataclass(frozen=True, slots=True)
class Block:
    path: str  # JSON path in the request body, e.g. "system[1]" or "messages[3].content[0]"
    digest: bytes  # 16 bytes of sha256 over role and canonical content
    tokens: int  # estimated tokens of the block
    breakpoint: bool  # the block carries a breakpoint marker (cache_control, prompt_cache_breakpoint)
    ttl: str | None  # when it is a breakpoint: "5m" or "1h" (Anthropic), "30m", "12h" or None (OpenAI: the request's)


_ENCODE: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
MEMO_SIZE = 32_768  # blocks remembered, about 200 bytes each: a few long conversations' worth
_memo: OrderedDict[int, tuple[bytes, int]] = OrderedDict()  # content key -> digest, tokens; oldest first
_VOLATILE = b"\x00volatile"  # what a volatile block's digest covers instead of its text


def _canonical(value: object) -> str:
    """The block's text: a string as is, a text-only block as its text, anything else as sorted JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) <= {"type", "text"} and isinstance(value.get("text"), str):
        return value["text"]
    return _ENCODE(value)


def _frozen(value: object) -> object:
    """A hashable stand-in for a JSON value, equal only for equal JSON (``1``, ``1.0`` and ``true`` differ)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return ("{", *sorted((key, _frozen(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("[", *map(_frozen, value))
    return type(value), value


def _measured(role: str, value: object) -> tuple[bytes, int]:
    """Digest and token estimate of a block's content (``value`` without its top-level cache_control).

    Remembered under Python's hash of the content, which costs a tenth of the
    canonical JSON and the sha256. Two different blocks with the same 64-bit
    hash (odds about 2**-64 a pair) would share a digest and hide a change
    from the explainer: acceptable for a diagnosis, and never a wrong count.
    """
    try:
        key = hash((role, _frozen(value)))
    except RecursionError:  # nested deeper than Python recurses: measure it without remembering
        key = None
    known = _memo.get(key) if key is not None else None
    if key is not None and known is not None:
        _memo.move_to_end(key)
        return known
    text = _canonical(value)
    digest = hashlib.sha256(role.encode("utf-8", "surrogatepass") + b"\x00")
    # A volatile block (volatile.py) keeps its tokens, but its changes are no change of the prefix.
    volatile = role == "system" and is_volatile_system_text(text)
    digest.update(_VOLATILE if volatile else text.encode("utf-8", "surrogatepass"))
    known = digest.digest()[:16], estimate_tokens(text)
    if key is not None:
        _memo[key] = known
        if len(_memo) > MEMO_SIZE:
            _memo.popitem(last=False)
    return known


_MARKERS = ("cache_control", "prompt_cache_breakpoint")  # Anthropic's, and OpenAI's (GPT-5.6+) on content parts
_OPENAI_TTLS = ("30m", "12h")


def _block(path: str, role: str, value: object) -> Block:
    kind = marker = None
    if isinstance(value, dict):
        kind = next((name for name in _MARKERS if name in value), None)
        marker = value.get(kind) if kind else None
        value = {k: v for k, v in value.items() if k not in _MARKERS}
    digest, tokens = _measured(role, value)
    ttl = None
    if isinstance(marker, dict):
        given = marker.get("ttl")
        if kind == "cache_control":
            ttl = "1h" if given == "1h" else "5m"
        else:  # without a ttl of its own an OpenAI breakpoint takes the request's: None
            ttl = given if given in _OPENAI_TTLS else None
    return Block(path, digest, tokens, marker is not None, ttl)


def _content_blocks(path: str, role: str, content: object) -> Iterator[Block]:
    if isinstance(content, list):
        for j, part in enumerate(content):
            yield _block(f"{path}[{j}]", role, part)
    elif content is not None:
        yield _block(path, role, content)


def _anthropic(body: dict) -> Iterator[Block]:
    for i, tool in enumerate(_list(body.get("tools"))):
        yield _block(f"tools[{i}]", "tool", tool)
    yield from _content_blocks("system", "system", body.get("system"))
    for i, message in enumerate(_list(body.get("messages"))):
        if isinstance(message, dict):
            role = str(message.get("role", ""))
            yield from _content_blocks(f"messages[{i}].content", role, message.get("content"))


def _openai_chat(body: dict) -> Iterator[Block]:
    for i, tool in enumerate(_list(body.get("tools"))):
        yield _block(f"tools[{i}]", "tool", tool)
    for i, message in enumerate(_list(body.get("messages"))):
        if isinstance(message, dict):
            role = str(message.get("role", ""))
            rest = {k: v for k, v in message.items() if k not in ("role", "content")}
            yield from _content_blocks(f"messages[{i}].content", role, message.get("content"))
            if rest:  # tool calls, names: part of what the model sees
                yield _block(f"messages[{i}]", role, rest)


def _openai_responses(body: dict) -> Iterator[Block]:
    for i, tool in enumerate(_list(body.get("tools"))):
        yield _block(f"tools[{i}]", "tool", tool)
    if body.get("instructions") is not None:
        yield _block("instructions", "system", body["instructions"])
    items = body.get("input")
    if isinstance(items, str):
        yield _block("input", "user", items)
        return
    for i, item in enumerate(_list(items)):
        if isinstance(item, dict) and "content" in item:
            yield from _content_blocks(f"input[{i}].content", str(item.get("role", "")), item["content"])
        else:
            yield _block(f"input[{i}]", "item", item)


def _gemini(body: dict) -> Iterator[Block]:
    for i, tool in enumerate(_list(body.get("tools"))):
        yield _block(f"tools[{i}]", "tool", tool)
    system = body.get("systemInstruction") or body.get("system_instruction")
    if isinstance(system, dict):
        for j, part in enumerate(_list(system.get("parts"))):
            yield _block(f"systemInstruction.parts[{j}]", "system", part)
    for i, content in enumerate(_list(body.get("contents"))):
        if isinstance(content, dict):
            role = str(content.get("role", "user"))
            for j, part in enumerate(_list(content.get("parts"))):
                yield _block(f"contents[{i}].parts[{j}]", role, part)


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


_BUILDERS = {
    Dialect.ANTHROPIC: _anthropic,
    Dialect.BEDROCK_INVOKE: _anthropic,
    Dialect.OPENAI_CHAT: _openai_chat,
    Dialect.OPENAI_RESPONSES: _openai_responses,
    Dialect.GEMINI: _gemini,
}


def prefix_blocks(dialect: Dialect, body: dict) -> list[Block]:
    """The request's blocks in cache order; empty for dialects without a known layout."""
    builder = _BUILDERS.get(dialect)
    return list(builder(body)) if builder else []
