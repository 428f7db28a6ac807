"""Which conversation a request belongs to: the session id and where it came from.

First match wins: an id the client already sends in a header, then one in
the body, then the session of the OpenAI Responses response the request
continues, then a fingerprint of the conversation's stable start (a fixed id
from the options beats all of them; the inject addon applies it). The
fingerprint needs no shared state, so every proxy instance, before and after
a restart, derives the same id for the same conversation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TypeGuard

from cachepin.request.chains import ResponseChains
from cachepin.request.dialects import Dialect
from cachepin.request.salt import digest
from cachepin.request.volatile import is_volatile_system_text

# Header names clients and gateways use for a session id, in priority order. Per-request ids (Codex's
# x-client-request-id) are never used: each request would become its own session, all of them cold.
SESSION_HEADERS: tuple[str, ...] = (
    "x-session-id",
    "x-session-affinity",
    "x-claude-code-session-id",
    "session-id",  # Codex
    "session_id",  # older Codex
    "thread-id",  # Codex, next to session-id (the same id for the main thread)
    "x-amp-thread-id",  # Amp
    "x-opencode-session",
    "x-litellm-session-id",
    "helicone-session-id",
    "x-bf-session-id",
    "x-grok-conv-id",
)

MAX_ID_LENGTH = 256
_VALID_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_ID_LENGTH}}}")
VALID_ID_RULE = f"1-{MAX_ID_LENGTH} printable ASCII characters without spaces"  # what is_valid_id takes, in words
_LEGACY_USER_ID = re.compile(r"_session_([^_\s]+)$")
_FINGERPRINT_VERSION = "cachepin-fp-v1"


@dataclass(frozen=True, slots=True)
class Resolution:
    session_id: str | None  # None when nothing identifies the conversation
    source: str  # "option", "header:<name>", "body:<path>", "fingerprint" or "none"
    rejected: tuple[str, ...] = field(default=())  # sources whose value was not a valid id

    def problems(self) -> list[str]:
        """The problem of the refused client ids, for a warning: named by where they were, never by value."""
        if not self.rejected:
            return []
        return [f"ignored the session id in {', '.join(self.rejected)}: not {VALID_ID_RULE}"]


def is_valid_id(value: object) -> TypeGuard[str]:
    """At most 256 printable ASCII characters, no spaces: safe in a header and a log line."""
    return isinstance(value, str) and _VALID_ID.fullmatch(value) is not None


def from_headers(headers: Mapping[str, str], fixed: str = "") -> Resolution:
    """The id the client already sends in a header; ``headers`` is matched case-insensitively.

    ``fixed`` (the ``affinity_session`` option), when set, beats any header.
    """
    if fixed:
        return Resolution(fixed, "option")
    lowered = {name.lower(): value for name, value in headers.items()}
    rejected: list[str] = []
    for name in SESSION_HEADERS:
        value = lowered.get(name)
        if value is None:
            continue
        if is_valid_id(value):
            return Resolution(value, f"header:{name}", tuple(rejected))
        rejected.append(f"header:{name}")
    return Resolution(None, "none", tuple(rejected))


def set_session_headers(headers: MutableMapping[str, str], names: Iterable[str], session_id: str,
                        override: bool) -> list[str]:
    """Sets ``session_id`` in each header of ``names`` but those holding a valid id of the client's (all of them
    with ``override``); returns the names set. One by one: a name repeated in another case (mitmproxy's headers
    ignore case) finds the id set already."""
    injected = []
    for name in names:
        if is_valid_id(headers.get(name)) and not override:
            continue
        headers[name] = session_id
        injected.append(name)
    return injected


def resolve(
    headers: Mapping[str, str],
    body: object,
    dialect: Dialect | None,
    chains: ResponseChains | None = None,
    salt: bytes = b"",
) -> Resolution:
    """The session of one request. ``body`` is the parsed JSON body, or None when unreadable.

    An id the client sends wins; then the session of the response the request
    continues (``chains``); then the fingerprint of the conversation's start,
    keyed with ``salt`` (``salt.proxy_salt``).
    """
    resolution = from_headers(headers)
    if resolution.session_id is not None:
        return resolution
    rejected = list(resolution.rejected)
    if isinstance(body, dict):
        for path, value in _body_ids(body):
            if is_valid_id(value):
                return Resolution(value, f"body:{path}", tuple(rejected))
            rejected.append(f"body:{path}")
        chained = chains.session_of(body) if chains is not None else None
        if chained is not None:
            return Resolution(chained, "body:previous_response_id", tuple(rejected))
        fingerprinted = fingerprint(body, dialect, salt)
        if fingerprinted is not None:
            return Resolution(fingerprinted, "fingerprint", tuple(rejected))
    return Resolution(None, "none", tuple(rejected))


def _body_ids(body: dict) -> Iterator[tuple[str, object]]:
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and "user_id" in metadata:
        session_part = _session_from_user_id(metadata["user_id"])
        if session_part is not None:  # an ordinary user id ("customer-42") names a user, not a conversation
            yield "metadata.user_id", session_part
    if "prompt_cache_key" in body:
        yield "prompt_cache_key", body["prompt_cache_key"]
    if "session_id" in body:
        yield "session_id", body["session_id"]
    conversation = conversation_id(body)
    if conversation is not None:  # OpenAI Responses: the conversation object the request adds to
        yield "conversation", conversation
    request = body.get("request")
    if isinstance(request, dict) and "session_id" in request:  # Gemini CLI through Code Assist
        yield "request.session_id", request["session_id"]


def conversation_id(body: dict) -> object:
    """OpenAI Responses' ``conversation``: an id, or an object with one; None when absent."""
    conversation = body.get("conversation")
    return conversation.get("id") if isinstance(conversation, dict) else conversation


def _session_from_user_id(user_id: object) -> object:
    """Only the session part of Claude Code's ``metadata.user_id``, never device or account."""
    if not isinstance(user_id, str):
        return None
    if user_id.lstrip().startswith("{"):
        try:
            parsed = json.loads(user_id)
        except ValueError:
            return None
        return parsed.get("session_id") if isinstance(parsed, dict) else None
    match = _LEGACY_USER_ID.search(user_id)
    return match.group(1) if match else None


def fingerprint(body: dict, dialect: Dialect | None, salt: bytes = b"") -> str | None:
    """A keyed hash of the system prompt and first user message: stable while the conversation grows.

    The model, tools, cache_control markers and later turns are left out, so
    a conversation keeps its id when the client switches models or moves its
    cache breakpoint. None when the body holds neither part.
    """
    system, first_user = stable_start(body, dialect)
    if not system and not first_user:
        return None
    canonical = json.dumps(
        [_FINGERPRINT_VERSION, system, first_user], ensure_ascii=False, separators=(",", ":")
    )
    return f"fp_{digest(salt, canonical)[:32]}"


def stable_start(body: dict, dialect: Dialect | None) -> tuple[list[str], list[str]]:
    """The texts of the system prompt (volatile blocks left out) and of the first user message."""
    return _STABLE_START.get(dialect, _anthropic_start)(body)


def _texts(content: object) -> list[str]:
    """Content as a list of strings, the same whether sent as a string or as blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    if isinstance(content, dict):
        if isinstance(content.get("text"), str):
            return [content["text"]]
        if "parts" in content:
            return _texts(content["parts"])
        rest = {k: v for k, v in content.items() if k != "cache_control"}
        return [json.dumps(rest, sort_keys=True, ensure_ascii=False)]
    if isinstance(content, list):
        return [text for item in content for text in _texts(item)]
    return [json.dumps(content)]


def _first(messages: object, roles: tuple[str, ...]) -> object:
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, dict) and message.get("role", "user") in roles:
            return message.get("content", message.get("parts"))
    return None


def _anthropic_start(body: dict) -> tuple[list[str], list[str]]:
    system = [t for t in _texts(body.get("system")) if not is_volatile_system_text(t)]
    return system, _texts(_first(body.get("messages"), ("user",)))


def _openai_chat_start(body: dict) -> tuple[list[str], list[str]]:
    system: list[str] = []
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict) or message.get("role") not in ("system", "developer"):
            break
        system.extend(_texts(message.get("content")))
    return system, _texts(_first(messages, ("user",)))


def _openai_responses_start(body: dict) -> tuple[list[str], list[str]]:
    items = body.get("input")
    first_user = [items] if isinstance(items, str) else _texts(_first(items, ("user",)))
    return _texts(body.get("instructions")), first_user


def _gemini_start(body: dict) -> tuple[list[str], list[str]]:
    system = body.get("systemInstruction", body.get("system_instruction"))
    return _texts(system), _texts(_first(body.get("contents"), ("user",)))


_STABLE_START: dict[Dialect | None, Callable[[dict], tuple[list[str], list[str]]]] = {
    Dialect.ANTHROPIC: _anthropic_start,
    Dialect.BEDROCK_INVOKE: _anthropic_start,
    Dialect.BEDROCK_CONVERSE: _anthropic_start,
    Dialect.OPENAI_CHAT: _openai_chat_start,
    Dialect.OPENAI_RESPONSES: _openai_responses_start,
    Dialect.GEMINI: _gemini_start,
}
