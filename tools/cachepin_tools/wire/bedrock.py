"""Bedrock Converse (JSON and ConverseStream) and InvokeModelWithResponseStream.

InvokeModel answers the model's own body (``anthropic.message`` for Claude).
The streams are AWS event streams (``eventstream``): each event a message with
the headers ``:event-type``, ``:content-type`` and ``:message-type``, in that
order, and a compact JSON payload that Bedrock pads with a ``"p"`` field (a
prefix of ``a-zA-Z0-9`` whose length varies, so that sizes do not give away the
text). ConverseStream sends ``messageStart``, a ``contentBlockDelta`` per piece,
``contentBlockStop``, ``messageStop`` and last ``metadata`` with the usage;
InvokeModelWithResponseStream wraps each event of the model's own stream in a
``chunk`` whose ``bytes`` is its base64, and adds the invocation metrics to
Anthropic's ``message_stop``. Exceptions are messages of their own
(``:message-type: exception``, named by ``:exception-type``).
"""

from __future__ import annotations

import base64
import string
from collections.abc import Iterable, Mapping
from typing import cast

from cachepin_tools.wire import eventstream
from cachepin_tools.wire.framing import Event, dumps
from cachepin_tools.wire.tokens import Tokens

type Json = dict[str, object]

_PADDING = string.ascii_lowercase + string.ascii_uppercase + string.digits


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


def padding(n: int) -> str:
    """The ``"p"`` of the ``n``-th event: 1 to 62 characters, different from one event to the next."""
    return _PADDING[: 1 + (n * 23) % len(_PADDING)]


def event(kind: str, body: Mapping[str, object], n: int = 0) -> bytes:
    """One event message, its payload padded."""
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return eventstream.message(headers, dumps({**body, "p": padding(n)}).encode())


def converse_stream(used: Mapping[str, object], pieces: Iterable[str], latency_ms: int = 1840) -> list[bytes]:
    """A whole ConverseStream answer, a message per event."""
    events: list[tuple[str, Json]] = [
        ("messageStart", {"role": "assistant"}),
        *(("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}}) for piece in pieces),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": "end_turn"}),
        ("metadata", {"usage": dict(used), "metrics": {"latencyMs": latency_ms}}),
    ]
    return [event(kind, body, n) for n, (kind, body) in enumerate(events)]


def invocation_metrics(tokens: Tokens, latency_ms: int = 1840) -> Json:
    """What Bedrock adds to the last event of an InvokeModel stream (``amazon-bedrock-invocationMetrics``)."""
    out: Json = {"inputTokenCount": tokens.input, "outputTokenCount": tokens.output,
                 "invocationLatency": latency_ms, "firstByteLatency": latency_ms // 4}
    if tokens.read is not None:
        out["cacheReadInputTokenCount"] = tokens.read
    if tokens.creation is not None:
        out["cacheWriteInputTokenCount"] = tokens.creation
    return out


def chunk(data: Mapping[str, object], n: int = 0) -> bytes:
    """One event of the model's own stream, as an InvokeModelWithResponseStream chunk."""
    return event("chunk", {"bytes": base64.b64encode(dumps(dict(data)).encode()).decode()}, n)


def invoke_stream(events: Iterable[Event], metrics: Mapping[str, object]) -> list[bytes]:
    """The model's stream (``anthropic.events``) in chunks, ``metrics`` added to its ``message_stop``."""
    out = []
    for n, (_, data) in enumerate(events):
        body = dict(cast(Mapping[str, object], data))
        if body.get("type") == "message_stop":
            body["amazon-bedrock-invocationMetrics"] = dict(metrics)
        out.append(chunk(body, n))
    return out


def exception(kind: str, message_text: str) -> bytes:
    """An exception in the stream (``throttlingException``, ``modelStreamErrorException``, ...)."""
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return eventstream.message(headers, dumps({"message": message_text}).encode())
