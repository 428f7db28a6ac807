"""Which thread of its session a request belongs to, and whether it continues a conversation at all.

A session is what the inject addon pins (one client session, one upstream
account). Inside it a client runs several conversations, each with its own
cached prefix: the main one, each sub-agent (Claude Code's ``Agent`` tool
sends the parent's session id with another system prompt and tool list), side
calls on other models (title calls), a conversation restarted after
compaction. Each is a thread, and each thread's first request has to write
the cache, so a first request that reads nothing is no miss.

A thread is named by what the client sends (an agent or thread header),
else by its lineage: a hash of what a provider caches first (the model
family, the tools, the system prompt without volatile blocks, the first user
message). Whether a request continues a conversation is in the request
itself (earlier model turns in its history), so a continuation that reads
nothing is a miss even on a proxy that never saw the turns before it.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cachepin.request.dialects import Dialect
from cachepin.request.salt import digest
from cachepin.request.session import conversation_id, is_valid_id, stable_start

# (thread header, its parent header), in priority order.
THREAD_HEADERS: tuple[tuple[str, str | None], ...] = (
    ("x-claude-code-agent-id", "x-claude-code-parent-agent-id"),  # Claude Code, when it sends them
    ("thread-id", "x-codex-parent-thread-id"),  # Codex
)  # Amp's x-amp-thread-id names its whole session (a session signal only): sub-agents and side calls share it
PARENT_SESSION_HEADER = "x-parent-session-id"  # opencode: a child session names its parent session
_LINEAGE_VERSION = "cachepin-lineage-v1"
_DATED = re.compile(r"(?:[-@]\d{8}|-latest)$")


class Position(enum.StrEnum):
    START = "start"  # no earlier model turn in the request: a conversation begins
    CONTINUATION = "continuation"  # the request resends earlier model turns


@dataclass(frozen=True, slots=True)
class Thread:
    thread_id: str
    source: str  # "header:<name>", "lineage", or "model" (the ledger's: nothing else known, one per model)
    parent: str | None = None  # the parent agent, thread or session, when the client names it


def model_family(model: str | None) -> str:
    """The model as a cache knows it: a dated or ``-latest`` alias is the same model."""
    return _DATED.sub("", (model or "").strip().lower())


def thread_of(headers: Mapping[str, str], body: dict | None, dialect: Dialect, salt: bytes = b"") -> Thread | None:
    """The thread a request belongs to, None when neither headers nor body tell (then the ledger keeps one
    thread per model); ``headers`` are matched case-insensitively, a lineage is keyed with ``salt``."""
    lowered = {name.lower(): value for name, value in headers.items()}
    parent_session = lowered.get(PARENT_SESSION_HEADER)
    for name, parent_name in THREAD_HEADERS:
        value = lowered.get(name)
        if is_valid_id(value):
            parent = lowered.get(parent_name) if parent_name else None
            return Thread(value, f"header:{name}", parent if is_valid_id(parent) else None)
    parent = parent_session if is_valid_id(parent_session) else None
    conversation = conversation_id(body) if body is not None and dialect is Dialect.OPENAI_RESPONSES else None
    if is_valid_id(conversation):  # each request resends only its new input: the lineage would change every turn
        return Thread(conversation, "body:conversation", parent)
    if body is not None:
        model = body.get("model")
        try:
            return Thread(lineage(body, dialect, model if isinstance(model, str) else None, salt), "lineage", parent)
        except RecursionError:  # nested deeper than Python recurses: one thread per model, as without a body
            return None
    return None


def lineage(body: dict, dialect: Dialect, model: str | None, salt: bytes = b"") -> str:
    """A stable id of what a provider caches first: the same for every request of one conversation."""
    system, first_user = stable_start(body, dialect)
    canonical = json.dumps([_LINEAGE_VERSION, model_family(model), _tools(body, dialect), system, first_user],
                           sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "ln_" + digest(salt, canonical)[:16]


def _tools(body: dict, dialect: Dialect) -> list:
    """The tool list, where the dialect keeps it: Bedrock Converse in ``toolConfig``, the others at the top."""
    holder = body.get("toolConfig") if dialect is Dialect.BEDROCK_CONVERSE else body
    tools = holder.get("tools") if isinstance(holder, dict) else None
    return tools if isinstance(tools, list) else []


def position_of(body: dict | None, dialect: Dialect) -> Position | None:
    """Whether the request resends earlier model turns; None when the body cannot tell.

    A model turn counts only before the last item: a trailing assistant message
    is a prefill, part of a first request.
    """
    if body is None:
        return None
    if dialect is Dialect.OPENAI_RESPONSES:
        if body.get("previous_response_id"):
            return Position.CONTINUATION
        items = body.get("input")
        if isinstance(items, str):
            return Position.START
        return _position(items, _is_responses_model_item)
    if dialect is Dialect.GEMINI:
        return _position(body.get("contents"), lambda item: item.get("role") == "model")
    if dialect is Dialect.OPENAI_CHAT:
        return _position(body.get("messages"), lambda item: item.get("role") in ("assistant", "tool", "function"))
    return _position(body.get("messages"), lambda item: item.get("role") == "assistant")


def _is_responses_model_item(item: dict) -> bool:
    """Responses input items the model produced, or tool results answering them."""
    kind = item.get("type")
    return item.get("role") == "assistant" or (isinstance(kind, str) and kind != "message")


def _position(items: object, is_model_turn: Callable[[dict], bool]) -> Position | None:
    if not isinstance(items, list):
        return None
    continues = any(isinstance(item, dict) and is_model_turn(item) for item in items[:-1])
    return Position.CONTINUATION if continues else Position.START
