"""What the simulated caches key on: a request's prompt as ordered blocks, each with its token count.

The simulator exists to check cachepin's figures, its miss explainer's among
them, so this is written from the providers' documented rules alone and
shares no code with the ``cachepin`` package: a bug in the explainer's own
view of a prompt must show up as a disagreement, not be copied here.

The blocks, in cache order (a prefix is cached and read block by block):

- Anthropic Messages: tools -> system -> messages. Each tool definition is a
  block, and so is a string ``system`` or each block of a ``system`` list,
  and a message's string content or each of its content blocks. A block with
  ``cache_control`` is a breakpoint (``"ttl": "1h"`` makes it a one-hour one).
- OpenAI Chat Completions: tools, then per message its content (a string, or
  each part), then its other fields (tool calls, a name) as one more block.
- OpenAI Responses: tools, ``instructions``, then ``input``: a string, or per
  item a message's content (a string, or each part), or the whole item
  (function calls and their outputs, reasoning).

OpenAI caches automatically: its blocks only mark where a cached prefix may
end. A block is the same block again when its role and content are; its
``cache_control`` is not part of it (moving a breakpoint changes what is
written, not what was cached).

Tokens are the documented estimate (README, "The gateway simulator"): one
token per started group of four characters of each block's text, where the
text of a text block or string is that text and anything else (a tool
definition, an image, a tool call) is its compact JSON.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

CHARACTERS_PER_TOKEN = 4
_TEXT_FIELDS = frozenset({"type", "text"})  # a content part made of these only is its text
_BILLING_HEADER = "x-anthropic-billing-header:"  # Claude Code's first system block (docs/providers.md)


class Api(enum.StrEnum):
    """The APIs the simulator speaks; the values are the names its log uses (and cachepin's dialects)."""

    ANTHROPIC = "anthropic"  # POST /v1/messages
    OPENAI_CHAT = "openai-chat"  # POST /v1/chat/completions
    OPENAI_RESPONSES = "openai-responses"  # POST /v1/responses


@dataclass(frozen=True, slots=True)
class Block:
    """One block of a prompt as a cache sees it: what it is, how long it is, and its breakpoint if any."""

    digest: bytes  # 16 bytes identifying role and content
    tokens: int
    ttl: str | None = None  # "5m" or "1h" for a block with cache_control, None for any other

    @property
    def breakpoint(self) -> bool:
        return self.ttl is not None


def estimate_tokens(text: str) -> int:
    """One token per started group of four characters."""
    return -(-len(text) // CHARACTERS_PER_TOKEN)


def prompt_blocks(api: str, body: Mapping[str, object]) -> list[Block]:
    """The blocks of ``body``, a request to ``api`` (an ``Api`` value), in cache order."""
    return list(_LAYOUTS[Api(api)](body))


def _anthropic(body: Mapping[str, object]) -> Iterator[Block]:
    yield from (_block("tool", tool) for tool in _items(body.get("tools")))
    yield from _content("system", body.get("system"))
    for message in _items(body.get("messages")):
        if isinstance(message, dict):
            yield from _content(str(message.get("role", "")), message.get("content"))


def _openai_chat(body: Mapping[str, object]) -> Iterator[Block]:
    yield from (_block("tool", tool) for tool in _items(body.get("tools")))
    for message in _items(body.get("messages")):
        if isinstance(message, dict):
            role = str(message.get("role", ""))
            yield from _content(role, message.get("content"))
            others = {name: value for name, value in message.items() if name not in ("role", "content")}
            if others:
                yield _block(role, others)


def _openai_responses(body: Mapping[str, object]) -> Iterator[Block]:
    yield from (_block("tool", tool) for tool in _items(body.get("tools")))
    if body.get("instructions") is not None:
        yield _block("system", body["instructions"])
    items = body.get("input")
    if isinstance(items, str):
        yield _block("user", items)
        return
    for item in _items(items):
        if isinstance(item, dict) and "content" in item:
            yield from _content(str(item.get("role", "")), item["content"])
        else:
            yield _block("item", item)


_LAYOUTS: dict[Api, Callable[[Mapping[str, object]], Iterator[Block]]] = {
    Api.ANTHROPIC: _anthropic,
    Api.OPENAI_CHAT: _openai_chat,
    Api.OPENAI_RESPONSES: _openai_responses,
}


def _items(value: object) -> list[object]:
    """A JSON array's items; anything else has none (the wire layer answers a 400 for what must be one)."""
    return value if isinstance(value, list) else []


def _content(role: str, content: object) -> Iterator[Block]:
    """A content field: a list is one block per part, any other value (a string) one block, null none."""
    if isinstance(content, list):
        yield from (_block(role, part) for part in content)
    elif content is not None:
        yield _block(role, content)


def _block(role: str, value: object) -> Block:
    ttl = None
    if isinstance(value, dict) and value.get("cache_control") is not None:
        marker = value["cache_control"]
        ttl = "1h" if isinstance(marker, dict) and marker.get("ttl") == "1h" else "5m"
    if isinstance(value, dict):
        value = {name: item for name, item in value.items() if name != "cache_control"}
    text = _text(value)
    # Claude Code's billing header changes every release (and, with cch=, every request), yet its later turns
    # read the cache: the API does not cache by it. Its tokens count; what it says does not.
    said = _BILLING_HEADER if role == "system" and text.startswith(_BILLING_HEADER) else text
    digest = hashlib.sha256(json.dumps([role, said]).encode("ascii")).digest()[:16]
    return Block(digest, estimate_tokens(text), ttl)


def _text(value: object) -> str:
    """What a block says: a string or a text part's text, anything else as compact JSON with sorted keys
    (equal JSON is the same prompt, whatever the order of its keys)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) <= _TEXT_FIELDS and isinstance(text := value.get("text"), str):
        return text
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
