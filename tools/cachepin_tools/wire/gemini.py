"""Gemini ``generateContent`` / ``streamGenerateContent``: usage metadata and response chunks.

A stream (``?alt=sse``) is a run of whole responses, each with the usage so
far; zero counters are left out, as Gemini leaves them out. Frame it with
``framing.GEMINI``.
"""

from __future__ import annotations

from collections.abc import Mapping

from cachepin_tools.wire.tokens import Tokens

type Json = dict[str, object]


def usage_metadata(tokens: Tokens) -> Json:
    """``promptTokenCount`` includes the cached part; the output divides into candidates and thoughts."""
    out: Json = {"promptTokenCount": tokens.prompt}
    if tokens.read:
        out["cachedContentTokenCount"] = tokens.read
    out["candidatesTokenCount"] = tokens.output - tokens.reasoning
    if tokens.reasoning:
        out["thoughtsTokenCount"] = tokens.reasoning
    out["totalTokenCount"] = tokens.prompt + tokens.output
    return out


def response(used: Mapping[str, object] | None, text: str, model: str, finish: str | None = None) -> Json:
    """A whole answer, or one chunk of a stream; ``used`` None: a chunk before the usage is known.

    ``finish`` (e.g. ``"STOP"``) is the ``finishReason`` a whole answer and a stream's last chunk carry.
    """
    candidate: Json = {"content": {"role": "model", "parts": [{"text": text}]}}
    if finish is not None:
        candidate["finishReason"] = finish
    out: Json = {"candidates": [candidate]}
    if used is not None:
        out["usageMetadata"] = dict(used)
    out["modelVersion"] = model
    return out
