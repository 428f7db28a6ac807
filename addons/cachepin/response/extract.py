"""Provider usage objects normalised into :class:`Usage` records (wire-formats.md section 3).

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

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from cachepin.request.dialects import Dialect
from cachepin.response.usage import Usage

ERROR_MARK = b'"error"'
"""Bytes that every error event contains: the key ``"error":`` or the value ``"type":"error"``.

Inside a JSON string a quote is escaped, so model text never matches.
"""

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
_MAX_ERROR_CHARS = 200  # provider messages may quote the request; keep them short
_RESPONSES_FINAL = ("response.completed", "response.incomplete", "response.failed")  # tuple: "type" may be unhashable


@dataclass(frozen=True, slots=True)
class Extracted:
    """What one response said about its usage, and what went wrong reading it."""

    usage: Usage | None = None
    error: str | None = None  # the provider's error event, "type: message"
    warning: str | None = None  # why figures were dropped or parsing stopped; "; "-joined
    response_id: str | None = None  # the provider's id of the response that reported the usage


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
        if isinstance(value, float) and value.is_integer() and value >= 0:
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.warnings.append(f"{where}.{key} dropped: not a non-negative integer ({type(value).__name__})")
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


def _first_choice(event: dict) -> dict:
    choices = event.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    return first if isinstance(first, dict) else {}


def _chat_usage(event: dict) -> object:
    """Moonshot puts the final usage at ``choices[0].usage`` instead of the top level."""
    usage = event.get("usage")
    return usage if usage is not None else _first_choice(event).get("usage")


def _is_openrouter(holder: dict, usage: dict) -> bool:
    """OpenRouter's usage accounting always adds ``cost``; its bodies name the upstream provider."""
    return "cost" in usage or "is_byok" in usage or isinstance(holder.get("provider"), str)


def _chat(event: dict, usage: dict, r: _Reader) -> Usage:
    model = _model(event.get("model"))
    prompt = r.count(usage, "prompt_tokens", "usage")
    output = r.count(usage, "completion_tokens", "usage")
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
    write = r.count(details, "cache_write_tokens", "usage.prompt_tokens_details")
    # Creation is 0 when the cache is reported but writes are not (only
    # GPT-5.6+ and OpenRouter report them); a dropped write stays unknown.
    creation = write if "cache_write_tokens" in details or read is None else 0
    return Usage(
        provider="openrouter" if _is_openrouter(event, usage) else "openai",
        model=model,
        input_tokens=r.minus(prompt, "input_tokens", read, write),
        cache_creation_input_tokens=creation,
        cache_read_input_tokens=read,
        output_tokens=output,
    )


def _responses(response: dict, usage: dict, r: _Reader) -> Usage:
    details = r.details(usage, "input_tokens_details", "usage")
    read = r.count(details, "cached_tokens", "usage.input_tokens_details")
    write = r.count(details, "cache_write_tokens", "usage.input_tokens_details")
    return Usage(
        provider="openrouter" if _is_openrouter(response, usage) else "openai",
        model=_model(response.get("model")),
        input_tokens=r.minus(r.count(usage, "input_tokens", "usage"), "input_tokens", read, write),
        cache_creation_input_tokens=write,
        cache_read_input_tokens=read,
        output_tokens=r.count(usage, "output_tokens", "usage"),
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


def _short(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"


def _describe(error: dict) -> str:
    """``type: message`` of a provider error object; nothing else, as it may echo the prompt."""
    kind = next((error[k] for k in ("type", "status", "code") if isinstance(error.get(k), str | int)), None)
    message = error.get("message")
    parts = [str(kind) if kind is not None else None, message if isinstance(message, str) else None]
    return _short(": ".join(p for p in parts if p) or "error")


def _error_of(event: dict) -> str | None:
    """The error an event reports: Anthropic ``error`` events, Responses failures, a top-level ``error``."""
    if event.get("type") == "response.failed":
        response = event.get("response")
        error = response.get("error") if isinstance(response, dict) else None
        return _describe(error) if isinstance(error, dict) else "response.failed"
    error = event.get("error")
    if isinstance(error, dict):
        return _describe(error)
    if isinstance(error, str):
        return _short(error)
    if event.get("type") == "error":  # Responses streams put code and message at the top level
        return _describe({k: v for k, v in event.items() if k != "type"})
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
        self._merges_deltas = dialect in (Dialect.ANTHROPIC, Dialect.BEDROCK_INVOKE)
        self._usage: dict | None = None  # the last usage object; Anthropic: merged
        self._holder: dict = {}  # the object that carried it (model, provider hints)
        self._error: str | None = None
        self._warnings: list[str] = []

    def warn(self, message: str) -> None:
        """Records a problem found while reading this response (deduplicated, bounded)."""
        if message not in self._warnings and len(self._warnings) < _MAX_WARNINGS:
            self._warnings.append(message)

    def feed(self, event: object) -> None:
        """Takes one parsed event; anything that is not a usage or error event is ignored."""
        if not isinstance(event, dict):
            return
        if self._error is None:
            self._error = _error_of(event)
        holder, usage = _usage_holder(self.dialect, event)
        if usage is None or holder is None:
            return
        if not isinstance(usage, dict):
            self.warn("usage dropped: not an object")
        elif self._merges_deltas and event.get("type") == "message_delta" and self._usage is not None:
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
                         response_id if isinstance(response_id, str) and len(response_id) <= 256 else None)


def usage_from_json(dialect: Dialect, obj: object) -> Extracted:
    """The usage of a whole JSON response body (a JSON array is read as a list of events)."""
    accumulator = UsageAccumulator(dialect)
    for event in obj if isinstance(obj, list) else [obj]:
        accumulator.feed(event)
    return accumulator.result
