"""Dialects come from method and path, never from the host."""

from __future__ import annotations

import pytest

from cachepin.request.dialects import Dialect, dialect_for


@pytest.mark.parametrize(
    "method, path, expected",
    [
        ("POST", "/v1/messages", Dialect.ANTHROPIC),
        ("POST", "/v1/messages?beta=true", Dialect.ANTHROPIC),
        ("POST", "/anthropic/v1/messages", Dialect.ANTHROPIC),
        ("post", "/v1/chat/completions", Dialect.OPENAI_CHAT),
        ("POST", "/api/v1/chat/completions", Dialect.OPENAI_CHAT),
        ("POST", "/v1/responses", Dialect.OPENAI_RESPONSES),
        ("POST", "/v1beta/models/gemini-2.5-pro:generateContent", Dialect.GEMINI),
        ("POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", Dialect.GEMINI),
        ("POST", "/model/anthropic.claude-sonnet-4-5/converse", Dialect.BEDROCK_CONVERSE),
        ("POST", "/model/anthropic.claude-sonnet-4-5/converse-stream", Dialect.BEDROCK_CONVERSE),
        ("POST", "/model/anthropic.claude-sonnet-4-5/invoke", Dialect.BEDROCK_INVOKE),
        ("POST", "/model/anthropic.claude-sonnet-4-5/invoke-with-response-stream", Dialect.BEDROCK_INVOKE),
        ("GET", "/v1/messages", None),
        ("GET", "/v1/models", None),
        ("POST", "/v1/messages/count_tokens", None),
        ("POST", "/v1/messages/batches", None),
        ("POST", "/v1/embeddings", None),
        ("POST", "/upload", None),
    ],
)
def test_dialect_for(method: str, path: str, expected: Dialect | None) -> None:
    assert dialect_for(method, path) == expected
