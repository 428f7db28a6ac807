"""Bedrock Converse (JSON). InvokeModel answers Anthropic's own body: ``anthropic.message``."""

from __future__ import annotations

from collections.abc import Mapping

from cachepin_tools.wire.tokens import Tokens

type Json = dict[str, object]


def converse_usage(tokens: Tokens) -> Json:
    """Additive counts, as Anthropic's; the cache fields only when the record reports them."""
    out: Json = {"inputTokens": tokens.input, "outputTokens": tokens.output,
                 "totalTokens": tokens.prompt + tokens.output}
    if tokens.read is not None:
        out["cacheReadInputTokens"] = tokens.read
    if tokens.creation is not None:
        out["cacheWriteInputTokens"] = tokens.creation
    return out


def converse(used: Mapping[str, object], text: str) -> Json:
    return {"output": {"message": {"role": "assistant", "content": [{"text": text}]}}, "stopReason": "end_turn",
            "usage": dict(used)}
