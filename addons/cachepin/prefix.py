"""The cacheable prefix of a request, as an ordered list of blocks.

Providers cache prompts by prefix, in the order tools -> system -> messages
(Anthropic) or as rendered (OpenAI-style). Both the gateway simulator (which
decides what a request reads and writes) and the miss explainer (which names
the first block that changed) need the same view of a request, so it lives
here, once.

A block's ``digest`` covers its content and role but not its ``cache_control``
marker: moving a breakpoint does not change what is cached.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

from cachepin.dialects import Dialect
from cachepin.tokens import estimate_tokens


@dataclass(frozen=True, slots=True)
class Block:
    path: str  # JSON path in the request body, e.g. "system[1]" or "messages[3].content[0]"
    digest: bytes  # 16 bytes of sha256 over role and canonical content
    tokens: int  # estimated tokens of the block
    breakpoint: bool  # the block carries cache_control
    ttl: str | None  # "5m" or "1h" when it is a breakpoint


def _canonical(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        value = {k: v for k, v in value.items() if k != "cache_control"}
        if set(value) <= {"type", "text"} and isinstance(value.get("text"), str):
            return value["text"]
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _block(path: str, role: str, value: object) -> Block:
    text = _canonical(value)
    digest = hashlib.sha256(f"{role}\x00{text}".encode("utf-8", "surrogatepass")).digest()[:16]
    marker = value.get("cache_control") if isinstance(value, dict) else None
    ttl = None
    if isinstance(marker, dict):
        ttl = "1h" if marker.get("ttl") == "1h" else "5m"
    return Block(path, digest, estimate_tokens(text), marker is not None, ttl)


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
