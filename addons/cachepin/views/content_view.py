"""The text of mitmweb's "cachepin usage" content view: a response's cache figures at a glance.

For a stored SSE body it also reassembles the streamed text, which is what a
person debugging a conversation wants to read instead of hundreds of deltas.
This is UI code, run only when someone looks at a flow, so it may parse every
event; the proxy's hot path never calls it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from cachepin.request.dialects import Dialect
from cachepin.response.readers import is_event_stream, usage_from_body
from cachepin.response.usage import COUNT_FIELDS, SPLIT_FIELDS
from cachepin.turns.pricing import Cost
from cachepin.turns.turn import Turn

TURN_KEY = "cachepin_turn"
"""``flow.metadata`` key of the turn a response made (``turn_facts``), saved with the flow by ``-w``. (A
response streamed through without ``store_streamed_bodies`` has no body, and mitmproxy shows no content view
for it at all: its comment says the same.)"""


def turn_facts(session_id: str, turn: Turn, cost: Cost | None) -> dict[str, object]:
    """What the view shows of a flow's turn, as plain JSON values (flow metadata is saved with the flow)."""
    facts: dict[str, object] = {"session_id": session_id, "turn": turn.index, "verdict": turn.verdict.value,
                                "thread": turn.thread, "provider": turn.provider, "model": turn.model,
                                **{name: getattr(turn, name) for name in COUNT_FIELDS}}
    if turn.miss is not None:
        facts["reason"] = f"{turn.miss.reason.value} ({turn.miss.detail})"
    if turn.provider_diagnosis is not None:
        facts["provider_reason"] = turn.provider_diagnosis.reason
    if cost is not None:
        facts["cost_usd"] = cost.as_dict()
    return facts


def _turn_lines(facts: Mapping[str, object]) -> list[str]:
    """The audit's side of the figures: verdict, turn, thread, session, reason and cost."""
    names = ("verdict", "turn", "thread", "session_id", "reason", "provider_reason")
    lines = [f"{name}: {_value(facts[name])}" for name in names if name in facts]
    cost = facts.get("cost_usd")
    if isinstance(cost, dict):
        lines += ["cost_usd:", *(f"  {basis}: {value}" for basis, value in cost.items())]
    return lines


def _value(value: object) -> str:
    return "n/a" if value is None else json.dumps(value) if isinstance(value, str) and "\n" in value else str(value)


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


def render(dialect: Dialect, content_type: str, body: bytes, facts: Mapping[str, object] | None = None) -> str:
    """A YAML-ish summary: provider, model, the four counts (``n/a`` when not reported), problems, and the turn
    the audit made of it (``facts``), before a stream's text."""
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
    if facts:
        lines += _turn_lines(facts)
    if is_event_stream(content_type):
        lines += ["text: |", *("  " + line for line in stream_text(body).splitlines() or [""])]
    return "\n".join(lines) + "\n"
