"""Anthropic Messages (and Bedrock InvokeModel, which answers the same body): usage, message, stream, error.

The stream is the documented sequence: ``message_start`` (the usage with one
output token), ``content_block_start``, ``ping``, a ``text_delta`` per piece
of text, ``content_block_stop``, ``message_delta`` (the cumulative usage: the
prompt figures restated and the final output) and ``message_stop``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cachepin_tools.wire.framing import Event
from cachepin_tools.wire.tokens import Tokens

type Json = dict[str, object]

_PROMPT_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def usage(tokens: Tokens, *, service_tier: str | None = None) -> Json:
    """The ``usage`` object; the 5 min / 1 h split only when the record has one."""
    out: Json = {"input_tokens": tokens.input}
    if tokens.creation is not None:
        out["cache_creation_input_tokens"] = tokens.creation
    if tokens.read is not None:
        out["cache_read_input_tokens"] = tokens.read
    if tokens.split:
        out["cache_creation"] = {"ephemeral_5m_input_tokens": tokens.creation_5m or 0,
                                 "ephemeral_1h_input_tokens": tokens.creation_1h or 0}
    out["output_tokens"] = tokens.output
    if service_tier is not None:
        out["service_tier"] = service_tier
    return out


def message(used: Mapping[str, object], text: str, model: str, message_id: str = "msg_wire") -> Json:
    """The non-streaming answer."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": dict(used),
    }


def opening(used: Mapping[str, object], model: str, message_id: str = "msg_wire") -> list[Event]:
    """The events before the text: the message with the usage known at the start, the text block, a ping."""
    start = {**message(used, "", model, message_id), "content": [], "stop_reason": None,
             "usage": {**used, "output_tokens": 1}}
    return [
        ("message_start", {"type": "message_start", "message": start}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
    ]


def text_delta(piece: str) -> Event:
    return "content_block_delta", {"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "text_delta", "text": piece}}


def closing(used: Mapping[str, object]) -> list[Event]:
    """The events after the text: ``message_delta`` restates the prompt figures and gives the final output."""
    cumulative = {name: used[name] for name in _PROMPT_FIELDS if name in used}
    return [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {**cumulative, "output_tokens": used["output_tokens"]}}),
        ("message_stop", {"type": "message_stop"}),
    ]


def events(used: Mapping[str, object], pieces: Iterable[str], model: str, message_id: str = "msg_wire") -> list[Event]:
    """A whole streamed answer whose text is ``pieces``, one delta each."""
    return [*opening(used, model, message_id), *map(text_delta, pieces), *closing(used)]


def error(kind: str, message_text: str) -> Json:
    """An error body, and the ``error`` event of a stream: ``{"type": "error", "error": {type, message}}``."""
    return {"type": "error", "error": {"type": kind, "message": message_text}}
