"""Which LLM API a request speaks, told from its method and path alone.

The host is deliberately ignored: in reverse mode every gateway has its own
host name, but the API paths are the providers' own.
"""

from __future__ import annotations

import enum
import re


class Dialect(enum.StrEnum):
    ANTHROPIC = "anthropic"  # /v1/messages (also Bedrock InvokeModel bodies)
    OPENAI_CHAT = "openai-chat"  # /chat/completions (OpenAI, DeepSeek, OpenRouter, xAI, ...)
    OPENAI_RESPONSES = "openai-responses"  # /responses
    GEMINI = "gemini"  # :generateContent / :streamGenerateContent
    BEDROCK_CONVERSE = "bedrock-converse"  # /converse, /converse-stream
    BEDROCK_INVOKE = "bedrock-invoke"  # /invoke, /invoke-with-response-stream


_PATTERNS: tuple[tuple[re.Pattern[str], Dialect], ...] = (
    (re.compile(r"/messages/?$"), Dialect.ANTHROPIC),
    (re.compile(r"/chat/completions/?$"), Dialect.OPENAI_CHAT),
    (re.compile(r"/responses/?$"), Dialect.OPENAI_RESPONSES),
    (re.compile(r":(?:stream)?generateContent$", re.IGNORECASE), Dialect.GEMINI),
    (re.compile(r"/converse(?:-stream)?/?$"), Dialect.BEDROCK_CONVERSE),
    (re.compile(r"/invoke(?:-with-response-stream)?/?$"), Dialect.BEDROCK_INVOKE),
)


def dialect_for(method: str, path: str) -> Dialect | None:
    """The dialect of an LLM API call, or None for anything else.

    Only POSTs count: ``GET /v1/models`` and friends are not conversations.
    The query string is ignored (Gemini streams with ``?alt=sse``, Claude Code
    adds ``?beta=true``).
    """
    if method.upper() != "POST":
        return None
    path = path.split("?", 1)[0].split("#", 1)[0]
    for pattern, dialect in _PATTERNS:
        if pattern.search(path):
            return dialect
    return None


def websocket_dialect_for(method: str, path: str, upgrade: str) -> Dialect | None:
    """The dialect of a WebSocket upgrade to an LLM API path, or None (``upgrade``: the Upgrade header).

    OpenAI Responses also runs over a WebSocket: ``GET /v1/responses`` upgraded,
    then one ``response.create`` message per turn (docs/providers.md); Codex
    uses it first. No other dialect has such a mode. The handshake is a case of
    its own, not a dialect of ``dialect_for``: it carries no body and no
    usage, so the hooks that read POSTs must keep leaving it alone.
    """
    if not is_websocket_upgrade(method, upgrade):
        return None
    return Dialect.OPENAI_RESPONSES if dialect_for("POST", path) is Dialect.OPENAI_RESPONSES else None


def is_websocket_upgrade(method: str, upgrade: str) -> bool:
    """A GET whose Upgrade header (a comma-separated list, case-insensitive) names websocket."""
    return method.upper() == "GET" and "websocket" in (token.strip().lower() for token in upgrade.split(","))
