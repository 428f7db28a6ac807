"""Provider usage objects normalised into :class:`Usage` records (docs/providers.md, "Usage figures").

Every provider counts prompt-cache tokens differently: Anthropic and Bedrock
counts are additive, OpenAI-style ``prompt_tokens`` include the cached part,
Gemini omits zero counters. Reading them all in one place keeps the audit's
sums honest. A figure the provider did not report stays ``None``; a value of
the wrong type is dropped with a warning, never an exception, because a proxy
must not fail a response over bookkeeping.

The provider is named from the dialect plus the shape of the usage object,
never from the host: in reverse mode every gateway has its own host name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from cachepin.request.dialects import Dialect
from cachepin.response.diagnostics import Diagnosis, diagnosis_of
from cachepin.response.usage import Usage

ERROR_MARK = b'"error"'
"""Bytes that every error event contains: the key ``"error":`` or the value ``"type":"error"``.

Inside a JSON string a quote is escaped, so model text never matches.
"""

MAX_TOKENS = 2**53  # far beyond any context window; a float holds every count up to it exactly
ERROR_TYPE = re.compile(r"[A-Za-z0-9_.-]{1,40}")
"""What an error type is: a short identifier from a provider's own vocabulary (``overloaded_error``,
``INVALID_ARGUMENT``, ``429``, ``response.failed``), safe to print in a log line."""

UNTYPED_ERROR = "provider_error"
"""The type of an error the provider gave no type for: a plain-string ``error``, an object with a message only."""

USAGE_MARKS: dict[Dialect, bytes] = {
    # Every count key of the Anthropic and OpenAI families ends in _tokens;
    # OpenAI chunks that only say "usage":null do not match, unlike b'"usage'.
    Dialect.ANTHROPIC: b'_tokens"',
    Dialect.BEDROCK_INVOKE: b'_tokens"',
    Dialect.OPENAI_CHAT: b'_tokens"',
    Dialect.OPENAI_RESPONSES: b'_tokens"',
    Dialect.GEMINI: b'"usageMetadata"',
    Dialect.BEDROCK_CONVERSE: b'"usage"',
}
"""Bytes that every usage-bearing event of a dialect contains, for the SSE scanner's search."""

_MAX_WARNINGS = 8  # distinct warnings kept per response: bounded memory on hostile streams
_RESPONSES_FINAL = ("response.completed", "response.incomplete", "response.failed")  # tuple: "type" may be unhashable


@dataclass(frozen=True, slots=True)
class Extracted:
    """What one response said about its usage, and what went wrong reading it."""

    usage: Usage | None = None
    error: str | None = None  # a provider's error, by its type only (ERROR_TYPE); the adapters add connection errors
    warning: str | None = None  # why figures were dropped or parsing stopped; "; "-joined
    response_id: str | None = None  # the provider's id of the response that reported the usage
    final: bool = False  # the response's last usage report was read: a stream cut after it lost no figure
    diagnosis: Diagnosis | None = None  # the provider's own reason for a cache miss, when asked (diagnostics.py)


class _Reader:
    """Reads counts out of provider objects, noting every value it had to drop."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def count(self, obj: object, key: str, where: str) -> int | None:
        """A token count, or None: a wrong value must not turn into a plausible figure.

        Integral floats (``12.0``) pass: some JSON encoders write every number as a float.
        """
        value = obj.get(key) if isinstance(obj, dict) else None
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer() and 0 <= value <= MAX_TOKENS:
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.warnings.append(f"{where}.{key} dropped: not a non-negative integer ({type(value).__name__})")
            return None
        if value > MAX_TOKENS:  # no model reads this much; prices and packed turns could not hold it
            self.warnings.append(f"{where}.{key} dropped: {str(value)[:24]}... is no token count")
            return None
        return value

    def zero_default(self, obj: object, key: str, where: str) -> int | None:
        """Gemini (proto3 JSON) omits counters that are zero."""
        if not isinstance(obj, dict) or key not in obj:
            return 0
        return self.count(obj, key, where)

    def minus(self, total: int | None, where: str, *parts: int | None) -> int | None:
        """``total`` less the parts it includes; an unreported part counts as 0."""
        if total is None:
            return None
        rest = total - sum(p for p in parts if p is not None)
        if rest < 0:
            self.warnings.append(f"{where} dropped: cached tokens exceed the prompt total")
            return None
        return rest

    def details(self, obj: dict, key: str, where: str) -> dict:
        value = obj.get(key)
        if value is not None and not isinstance(value, dict):
            self.warnings.append(f"{where}.{key} dropped: not an object")
        return value if isinstance(value, dict) else {}


def _model(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _anthropic(provider: str, holder: dict, usage: dict, r: _Reader) -> Usage:
    split = r.details(usage, "cache_creation", "usage")
    return Usage(
        provider=provider,
        model=_model(holder.get("model")),
        input_tokens=r.count(usage, "input_tokens", "usage"),
        cache_creation_input_tokens=r.count(usage, "cache_creation_input_tokens", "usage"),
        cache_read_input_tokens=r.count(usage, "cache_read_input_tokens", "usage"),
        output_tokens=r.count(usage, "output_tokens", "usage"),
        cache_creation_5m=r.count(split, "ephemeral_5m_input_tokens", "usage.cache_creation"),
        cache_creation_1h=r.count(split, "ephemeral_1h_input_tokens", "usage.cache_creation"),
    )


def _first_of(event: dict, key: str) -> dict:
    """The first object of a list field (``choices``, ``candidates``), or an empty one."""
    items = event.get(key)
    first = items[0] if isinstance(items, list) and items else None
    return first if isinstance(first, dict) else {}


def _chat_usage(event: dict) -> object:
    """Moonshot puts the final usage at ``choices[0].usage`` instead of the top level."""
    usage = event.get("usage")
    return usage if usage is not None else _first_of(event, "choices").get("usage")


def _is_openrouter(holder: dict, usage: dict) -> bool:
    """OpenRouter's usage accounting always adds ``cost``; its bodies name the upstream provider."""
    return "cost" in usage or "is_byok" in usage or isinstance(holder.get("provider"), str)


def _billed_output(usage: dict, prompt: int | None, output: int | None, details_key: str, r: _Reader) -> int | None:
    """The output as billed: with the reasoning tokens when the provider counts them outside it.

    OpenAI counts reasoning inside ``completion_tokens`` / ``output_tokens``;
    xAI counts it beside them and bills it as output, so its ``total_tokens`` is
    prompt + completion + reasoning. That sum, with some reasoning, is the only
    evidence used: the host says nothing in reverse mode, and the two ways of
    counting cannot both add up once there is reasoning.
    """
    reasoning = r.count(r.details(usage, details_key, "usage"), "reasoning_tokens", f"usage.{details_key}")
    if not reasoning or prompt is None or output is None:
        return output
    return output + reasoning if r.count(usage, "total_tokens", "usage") == prompt + output + reasoning else output


def _chat(event: dict, usage: dict, r: _Reader) -> Usage:
    model = _model(event.get("model"))
    prompt = r.count(usage, "prompt_tokens", "usage")
    output = _billed_output(usage, prompt, r.count(usage, "completion_tokens", "usage"), "completion_tokens_details", r)
    details = r.details(usage, "prompt_tokens_details", "usage")
    if "prompt_cache_hit_tokens" in usage or "prompt_cache_miss_tokens" in usage:
        return Usage(
            provider="deepseek",
            model=model,
            input_tokens=r.count(usage, "prompt_cache_miss_tokens", "usage"),
            cache_creation_input_tokens=None,
            cache_read_input_tokens=r.count(usage, "prompt_cache_hit_tokens", "usage"),
            output_tokens=output,
        )
    if event.get("usage") is None or "cached_tokens" in usage:
        read = r.count(usage, "cached_tokens", "usage")
        if read is None:
            read = r.count(details, "cached_tokens", "usage.prompt_tokens_details")
        return Usage(
            provider="moonshot",
            model=model,
            input_tokens=r.minus(prompt, "input_tokens", read),
            cache_creation_input_tokens=None,
            cache_read_input_tokens=read,
            output_tokens=output,
        )
    read = r.count(details, "cached_tokens", "usage.prompt_tokens_details")
    # Only GPT-5.6+ and OpenRouter report writes: otherwise they are not reported (None), as in _responses.
    write = r.count(details, "cache_write_tokens", "usage.prompt_tokens_details")
    return Usage(
        provider="openrouter" if _is_openrouter(event, usage) else "openai",
        model=model,
        input_tokens=r.minus(prompt, "input_tokens", read, write),
        cache_creation_input_tokens=write,
        cache_read_input_tokens=read,
        output_tokens=output,
    )


def _responses(response: dict, usage: dict, r: _Reader) -> Usage:
    details = r.details(usage, "input_tokens_details", "usage")
    read = r.count(details, "cached_tokens", "usage.input_tokens_details")
    write = r.count(details, "cache_write_tokens", "usage.input_tokens_details")
    prompt = r.count(usage, "input_tokens", "usage")
    output = _billed_output(usage, prompt, r.count(usage, "output_tokens", "usage"), "output_tokens_details", r)
    return Usage(
        provider="openrouter" if _is_openrouter(response, usage) else "openai",
        model=_model(response.get("model")),
        input_tokens=r.minus(prompt, "input_tokens", read, write),
        cache_creation_input_tokens=write,
        cache_read_input_tokens=read,
        output_tokens=output,
    )


def _gemini(event: dict, meta: dict, r: _Reader) -> Usage:
    where = "usageMetadata"
    read = r.zero_default(meta, "cachedContentTokenCount", where)
    candidates = r.zero_default(meta, "candidatesTokenCount", where)
    thoughts = r.zero_default(meta, "thoughtsTokenCount", where)
    output = None if candidates is None or thoughts is None else candidates + thoughts
    return Usage(
        provider="gemini",
        model=_model(event.get("modelVersion")),
        input_tokens=r.minus(r.zero_default(meta, "promptTokenCount", where), "input_tokens", read),
        cache_creation_input_tokens=None,
        cache_read_input_tokens=read,
        output_tokens=output,
    )


def _converse(event: dict, usage: dict, r: _Reader) -> Usage:
    split: dict[str, int | None] = {}
    details = usage.get("cacheDetails")
    for item in details if isinstance(details, list) else []:
        ttl = item.get("ttl") if isinstance(item, dict) else None
        if ttl in ("5m", "1h"):
            split[ttl] = r.count(item, "inputTokens", f"usage.cacheDetails[{ttl}]")
    return Usage(
        provider="bedrock",
        model=_model(event.get("model")),
        input_tokens=r.count(usage, "inputTokens", "usage"),
        cache_creation_input_tokens=r.count(usage, "cacheWriteInputTokens", "usage"),
        cache_read_input_tokens=r.count(usage, "cacheReadInputTokens", "usage"),
        output_tokens=r.count(usage, "outputTokens", "usage"),
        cache_creation_5m=split.get("5m"),
        cache_creation_1h=split.get("1h"),
    )


def _usage_holder(dialect: Dialect, event: dict) -> tuple[dict | None, object]:
    """The object whose usage an event reports, and that usage (None when it reports none)."""
    match dialect:
        case Dialect.ANTHROPIC | Dialect.BEDROCK_INVOKE if event.get("type") == "message_start":
            message = event.get("message")
            return (message, message.get("usage")) if isinstance(message, dict) else (None, None)
        case Dialect.OPENAI_CHAT:
            return event, _chat_usage(event)
        case Dialect.OPENAI_RESPONSES:
            holder = event.get("response") if event.get("type") in _RESPONSES_FINAL else event
            return (holder, holder.get("usage")) if isinstance(holder, dict) else (None, None)
        case Dialect.GEMINI:
            return event, event.get("usageMetadata")
        case _:
            return event, event.get("usage")


_NORMALISERS: dict[Dialect, Callable[[dict, dict, _Reader], Usage]] = {
    Dialect.ANTHROPIC: partial(_anthropic, "anthropic"),
    Dialect.BEDROCK_INVOKE: partial(_anthropic, "bedrock"),
    Dialect.OPENAI_CHAT: _chat,
    Dialect.OPENAI_RESPONSES: _responses,
    Dialect.GEMINI: _gemini,
    Dialect.BEDROCK_CONVERSE: _converse,
}


_TYPE_FIELDS = ("type", "status", "code")  # Anthropic and OpenAI, Gemini, OpenRouter and Responses


def _error_type(error: object, fields: tuple[str, ...] = _TYPE_FIELDS) -> str | None:
    """The first of ``fields`` that holds an identifier, or None.

    Only fields a provider fills from its own vocabulary: the message is free
    text that may quote the request, its prompt or its API key, so no part of
    it is ever taken, not even the text before a colon.
    """
    if not isinstance(error, dict):
        return None
    for field in fields:
        value = error.get(field)
        if isinstance(value, str | int) and not isinstance(value, bool) and ERROR_TYPE.fullmatch(str(value)):
            return str(value)
    return None


def _error_of(event: dict) -> str | None:
    """The type of the error an event reports (Anthropic ``error`` events, Responses failures and error
    events, a top-level ``error``), or None when it reports none."""
    if event.get("type") == "response.failed":
        response = event.get("response")
        return _error_type(response.get("error") if isinstance(response, dict) else None) or "response.failed"
    error = event.get("error")
    if isinstance(error, dict | str):  # a string is a message only (xAI: "Incorrect API key provided: xai-…")
        return _error_type(error) or UNTYPED_ERROR
    if event.get("type") == "error":  # Responses streams put code and message at the top level
        return _error_type(event, ("code",)) or UNTYPED_ERROR
    return None


class UsageAccumulator:
    """The usage of one response, from its events in order (a JSON body is a single event).

    Anthropic streams report usage in ``message_start`` and again, cumulatively,
    in ``message_delta``: a field present later *replaces* the earlier value,
    because adding them double-counts. Every other dialect reports its whole
    usage at once, so the last report wins. Only the raw usage objects are
    kept, so memory does not grow with the stream.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.usage_mark = USAGE_MARKS[dialect]
        self.error_mark = ERROR_MARK
        # Every Gemini event restates usageMetadata in full; elsewhere a late
        # line with the mark need not carry usage, so each one is parsed.
        self.latest_only = dialect is Dialect.GEMINI
        self.final_mark = b'"finishReason"' if self.latest_only else None  # see _is_final
        self._merges_deltas = dialect in (Dialect.ANTHROPIC, Dialect.BEDROCK_INVOKE)
        self._usage: dict | None = None  # the last usage object; Anthropic: merged
        self._holder: dict = {}  # the object that carried it (model, provider hints)
        self._error: str | None = None
        self._warnings: list[str] = []
        self._final = False
        self.changes = 0  # counts what may have changed ``result``: a stream's reader republishes it on change

    def warn(self, message: str) -> None:
        """Records a problem found while reading this response (deduplicated, bounded)."""
        if message not in self._warnings and len(self._warnings) < _MAX_WARNINGS:
            self._warnings.append(message)
            self.changes += 1

    def feed(self, event: object) -> None:
        """Takes one parsed event; anything that is not a usage or error event is ignored."""
        if not isinstance(event, dict):
            return
        self.changes += 1
        if self._error is None:
            self._error = _error_of(event)
        holder, usage = _usage_holder(self.dialect, event)
        if usage is None or holder is None:
            return
        if not isinstance(usage, dict):
            self.warn("usage dropped: not an object")
            return
        self._final = self._final or _is_final(self.dialect, event)
        if self._merges_deltas and event.get("type") == "message_delta" and self._usage is not None:
            self._usage.update((k, v) for k, v in usage.items() if v is not None)
        else:
            self._usage, self._holder = dict(usage), holder

    @property
    def result(self) -> Extracted:
        """The usage so far; cheap enough to read while a stream is still running."""
        reader = _Reader()
        usage = None
        if self._usage is not None:
            usage = _NORMALISERS[self.dialect](self._holder, self._usage, reader)
        warnings = list(dict.fromkeys(self._warnings + reader.warnings))[:_MAX_WARNINGS]
        response_id = self._holder.get("id")
        return Extracted(usage, self._error, "; ".join(warnings) or None,
                         response_id if isinstance(response_id, str) and len(response_id) <= 256 else None,
                         self._final and usage is not None, diagnosis_of(self.dialect, self._holder))


def _is_final(dialect: Dialect, event: dict) -> bool:
    """Whether a usage-bearing event is the response's last word on usage (what a stream sends last).

    A client may hang up as soon as it has the final event (the OpenAI SDK
    closes the connection at ``[DONE]``), before the proxy reads the end of
    the body: a turn whose final usage was read is complete all the same.
    """
    match dialect:
        case Dialect.ANTHROPIC | Dialect.BEDROCK_INVOKE:
            return event.get("type") in ("message_delta", "message")  # a stream's last usage; a JSON body
        case Dialect.OPENAI_RESPONSES:
            return event.get("type") in _RESPONSES_FINAL or event.get("object") == "response"
        case Dialect.GEMINI:
            return bool(_first_of(event, "candidates").get("finishReason"))
        case Dialect.OPENAI_CHAT:  # OpenAI's usage chunk has no choices; others' last chunk has a finish_reason
            return not event.get("choices") or bool(_first_of(event, "choices").get("finish_reason"))
        case _:  # Converse: the whole body
            return True


def usage_from_json(dialect: Dialect, obj: object) -> Extracted:
    """The usage of a whole JSON response body (a JSON array is read as a list of events)."""
    accumulator = UsageAccumulator(dialect)
    for event in obj if isinstance(obj, list) else [obj]:
        accumulator.feed(event)
    return accumulator.result
