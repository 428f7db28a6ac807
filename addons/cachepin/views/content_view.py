"""The text of mitmweb's "cachepin usage" content view: a response's cache figures at a glance.

For a stored SSE body it also reassembles the streamed text, which is what a
person debugging a conversation wants to read instead of hundreds of deltas.
This is UI code, run only when someone looks at a flow, so it may parse every
event; the proxy's hot path never calls it.
"""

from __future__ import annotations

import json

from cachepin.request.dialects import Dialect
from cachepin.response.readers import is_event_stream, usage_from_body
from cachepin.response.usage import COUNT_FIELDS, SPLIT_FIELDS


def _event_text(event: object) -> str:
    if not isinstance(event, dict):
        return ""
    delta = event.get("delta")
    if event.get("type") == "content_block_delta" and isinstance(delta, dict):  # Anthropic
        return str(delta.get("text") or "")
    if event.get("type") == "response.output_text.delta":  # OpenAI Responses
        return str(delta or "")
    choices = event.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):  # OpenAI Chat
        chunk = choices[0].get("delta")
        return str(chunk.get("content") or "") if isinstance(chunk, dict) else ""
    candidates = event.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):  # Gemini
        parts = (candidates[0].get("content") or {}).get("parts") or []
        return "".join(str(p.get("text") or "") for p in parts if isinstance(p, dict))
    return ""


def stream_text(body: bytes) -> str:
    """The text a stream carried, concatenated from its deltas."""
    pieces = []
    for line in body.splitlines():
        if not line.startswith(b"data:"):
            continue
        try:
            pieces.append(_event_text(json.loads(line[5:])))
        except ValueError:
            continue
    return "".join(pieces)


def render(dialect: Dialect, content_type: str, body: bytes) -> str:
    """A YAML-ish summary: provider, model, the four counts (``n/a`` when not reported), problems."""
    extracted = usage_from_body(dialect, content_type, body)
    usage = extracted.usage
    lines = [f"dialect: {dialect.value}"]
    if usage is not None:
        split = SPLIT_FIELDS if usage.cache_creation_5m is not None or usage.cache_creation_1h is not None else ()
        figures = {"provider": usage.provider, "model": usage.model,
                   **{name: getattr(usage, name) for name in (*COUNT_FIELDS, *split)}}
        lines += [f"{key}: {'n/a' if value is None else value}" for key, value in figures.items()]
    else:
        lines.append("usage: not reported")
    if extracted.error:
        lines.append(f"error: {extracted.error}")
    if extracted.warning:
        lines.append(f"warning: {extracted.warning}")
    if is_event_stream(content_type):
        lines += ["text: |", *("  " + line for line in stream_text(body).splitlines() or [""])]
    return "\n".join(lines) + "\n"
