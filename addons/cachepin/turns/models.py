"""What cachepin knows per model: token prices and the smallest cacheable prefix.

Both tables are matched the same way (``match_model``: dated ids, provider
prefixes and ``*`` wildcards), so a model is known to both or to neither.

Prices change more often than code, so the built-in table is only a starting
point: a JSON file (the ``cache_prices`` option) overrides or adds models, and
a model the table does not know gets no price at all rather than a guess.

The built-in table is as of 2025-11, taken from the providers' public price
pages, written from memory of those pages (no browsing was possible): check
the figures against the pages before relying on them, and override them with
a ``cache_prices`` file when they drift.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens, one figure per kind of token the usage record counts."""

    input: float
    output: float
    cache_read: float
    cache_write_5m: float
    cache_write_1h: float


def _anthropic(base: float, output: float) -> Price:
    """Anthropic derives its cache prices from base input: read 0.1x, write 1.25x (5 min) or 2x (1 h)."""
    return Price(base, output, round(base * 0.1, 6), round(base * 1.25, 6), round(base * 2, 6))


def _discounted(base: float, output: float, cache_read: float) -> Price:
    """Providers that discount cache reads but bill no write surcharge: a write costs plain input."""
    return Price(base, output, cache_read, base, base)


# Long-context tiers (Sonnet above 200k tokens, Gemini Pro above 200k) and
# batch or priority pricing are not modelled: a turn is priced at the base tier.
# Claude 4.6 entries assume the 4.5 prices of their tier: verify them.
_BUILTIN: dict[str, Price] = {
    # Anthropic
    "claude-opus-4-6": _anthropic(5.0, 25.0),
    "claude-opus-4-5": _anthropic(5.0, 25.0),
    "claude-opus-4-1": _anthropic(15.0, 75.0),
    "claude-opus-4": _anthropic(15.0, 75.0),
    "claude-sonnet-4-6": _anthropic(3.0, 15.0),
    "claude-sonnet-4-5": _anthropic(3.0, 15.0),
    "claude-sonnet-4": _anthropic(3.0, 15.0),
    "claude-3-7-sonnet": _anthropic(3.0, 15.0),
    "claude-haiku-4-5": _anthropic(1.0, 5.0),
    "claude-3-5-haiku": _anthropic(0.8, 4.0),
    "claude-3-haiku": _anthropic(0.25, 1.25),
    # OpenAI: "cached input" is the read price; writes are not billed extra.
    "gpt-5.1": _discounted(1.25, 10.0, 0.125),
    "gpt-5.1-codex": _discounted(1.25, 10.0, 0.125),
    "gpt-5.1-codex-mini": _discounted(0.25, 2.0, 0.025),
    "gpt-5": _discounted(1.25, 10.0, 0.125),
    "gpt-5-chat-latest": _discounted(1.25, 10.0, 0.125),
    "gpt-5-codex": _discounted(1.25, 10.0, 0.125),
    "gpt-5-mini": _discounted(0.25, 2.0, 0.025),
    "gpt-5-nano": _discounted(0.05, 0.4, 0.005),
    "gpt-5-pro": _discounted(15.0, 120.0, 15.0),  # no cache discount
    "gpt-4.1": _discounted(2.0, 8.0, 0.5),
    "gpt-4.1-mini": _discounted(0.4, 1.6, 0.1),
    "gpt-4.1-nano": _discounted(0.1, 0.4, 0.025),
    "gpt-4o": _discounted(2.5, 10.0, 1.25),
    "gpt-4o-2024-05-13": _discounted(5.0, 15.0, 5.0),  # the first snapshot: dearer, no discount
    "gpt-4o-mini": _discounted(0.15, 0.6, 0.075),
    "o1": _discounted(15.0, 60.0, 7.5),
    "o1-mini": _discounted(1.1, 4.4, 0.55),
    "o3": _discounted(2.0, 8.0, 0.5),
    "o3-mini": _discounted(1.1, 4.4, 0.55),
    "o3-pro": _discounted(20.0, 80.0, 20.0),  # no cache discount
    "o4-mini": _discounted(1.1, 4.4, 0.275),
    # DeepSeek (V3.2 prices): cache hit vs cache miss input, same for both models.
    "deepseek-chat": _discounted(0.28, 0.42, 0.028),
    "deepseek-reasoner": _discounted(0.28, 0.42, 0.028),
    # Gemini implicit caching: reads at 0.1x (the 2.5 launch was 0.25x; the
    # pages later showed 0.1x), no write charge; storage fees do not apply.
    "gemini-3-pro-preview": _discounted(2.0, 12.0, 0.2),
    "gemini-2.5-pro": _discounted(1.25, 10.0, 0.125),
    "gemini-2.5-flash": _discounted(0.3, 2.5, 0.03),
    "gemini-2.5-flash-lite": _discounted(0.1, 0.4, 0.01),
}

_VENDOR_PREFIX = re.compile(r"^(?:[a-z]+\.)?anthropic\.")  # Bedrock: "us.anthropic.claude-..."
_VERSION_SUFFIX = re.compile(
    r"(?:[-@](?:\d{8}|\d{4}-\d{2}-\d{2}|\d{2}-\d{2}(?:-\d{4})?|\d{2}-\d{4}|v\d+(?::\d+)?|latest|preview|exp))+"
)


def canonical_model(model: str) -> str:
    """The provider's own model id, whatever gateway spelling it arrived in.

    OpenRouter and Gemini prefix a namespace (``anthropic/``, ``models/``),
    Bedrock a region and vendor (``us.anthropic.``), and OpenRouter writes
    Claude versions with dots (``claude-sonnet-4.5``).
    """
    name = _VENDOR_PREFIX.sub("", model.strip().lower().rsplit("/", 1)[-1])
    return name.replace(".", "-") if name.startswith("claude-") else name


def match_model(model: str | None, known: Iterable[str]) -> str | None:
    """The key of ``known`` that describes ``model``, or None.

    An exact id wins; otherwise the longest key that ``model`` extends by
    date or version tags only (``-20250929``, ``@20250929``, ``-v1:0``,
    ``-2024-08-06``, ``-preview-09-2025``, ``-latest``), so dated snapshots
    find their family while ``claude-opus-4-7`` does not silently take the
    price of ``claude-opus-4``. A key ending in ``*`` matches any id that
    starts with the rest, for callers who do want a whole family.
    """
    if not model:
        return None
    name = canonical_model(model)
    best: str | None = None
    best_len = -1
    for key in known:
        if key == name:
            return key
        if key.endswith("*"):
            stem = key[:-1]
            hit = name.startswith(stem)
        else:
            stem = key
            hit = name.startswith(stem) and _VERSION_SUFFIX.fullmatch(name, len(stem)) is not None
        if hit and len(stem) > best_len:
            best, best_len = key, len(stem)
    return best


class PriceTable:
    """Prices by model id; lookups accept dated, namespaced and gateway-spelled ids."""

    __slots__ = ("_prices",)

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._prices = {canonical_model(model): price for model, price in prices.items()}

    def get(self, model: str | None) -> Price | None:
        """The price of ``model`` (see ``match_model``), None when unknown."""
        key = match_model(model, self._prices)
        return None if key is None else self._prices[key]

    def merged(self, overrides: Mapping[str, object], *, source: str) -> PriceTable:
        """A new table with ``overrides`` applied field by field.

        A model this table already lists (by exact id) keeps the fields the
        override leaves out; a new model needs ``input`` and ``output``, and its
        cache prices default to ``input`` (no discount, no surcharge). Errors
        name ``source``, the model and the field, so the user can fix the file.
        """
        prices = dict(self._prices)
        for model, given in overrides.items():
            key = canonical_model(model)
            values = _checked(f"{source}: model {model!r}", given)
            if key in prices:
                prices[key] = replace(prices[key], **values)
                continue
            missing = [name for name in ("input", "output") if name not in values]
            if missing:
                raise ValueError(
                    f"{source}: model {model!r}: field {missing[0]!r} is required"
                    " for a model the built-in table does not list"
                )
            defaults = dict.fromkeys(("cache_read", "cache_write_5m", "cache_write_1h"), values["input"])
            prices[key] = Price(**(defaults | values))
        return PriceTable(prices)


_FIELDS = tuple(f.name for f in fields(Price))


def _checked(where: str, given: object) -> dict[str, float]:
    """One model's override as floats, or a ValueError that says what to fix."""
    if not isinstance(given, dict):
        raise ValueError(f"{where}: expected an object of prices, got {_json_type(given)}")
    unknown = sorted(set(given) - set(_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}; expected some of {', '.join(_FIELDS)}")
    for name, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ValueError(
                f"{where}: field {name!r} must be a non-negative number (USD per million tokens), got {value!r}"
            )
    return {name: float(value) for name, value in given.items()}

DEFAULT_PRICES = PriceTable(_BUILTIN)


def _json_type(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def load_prices(path: str | Path, base: PriceTable = DEFAULT_PRICES) -> PriceTable:
    """``base`` with the overrides of the JSON file at ``path`` merged over it.

    The file maps model ids to prices in USD per million tokens, e.g.
    ``{"claude-sonnet-4-5": {"input": 3.0, "output": 15.0, "cache_read": 0.3,
    "cache_write_5m": 3.75, "cache_write_1h": 6.0}}``. Any problem raises
    ValueError naming the file (and the model and field when it is about one).
    """
    source = str(path)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"{source}: cannot read the price file: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise ValueError(f"{source}: the price file is not UTF-8 text") from error
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise ValueError(f"{source}: not valid JSON: {error.msg} at {where}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected an object mapping model ids to prices, got {_json_type(data)}")
    return base.merged(data, source=source)


MINIMUM_TOKENS: Mapping[str, int] = MappingProxyType(
    {
        # Anthropic (wire-formats.md 4.1). Sonnet 4.6 was seen caching only from
        # 2048; the documented 1024 stays until confirmed: override it if needed.
        "claude-opus-4-6": 4096,
        "claude-opus-4-5": 4096,
        "claude-haiku-4-5": 4096,
        "claude-sonnet-4-6": 1024,
        "claude-sonnet-4-5": 1024,
        "claude-opus-4-1": 1024,
        "claude-opus-4": 1024,
        "claude-sonnet-4": 1024,
        "claude-3-7-sonnet": 1024,
        "claude-3-5-haiku": 2048,
        "claude-3-haiku": 2048,
        # OpenAI caches any model's prompt from 1024 tokens (4.2).
        "gpt-*": 1024,
        "o1*": 1024,
        "o3*": 1024,
        "o4*": 1024,
        # Gemini (1024-4096 by model and docs version) and DeepSeek are left
        # out: an unknown model gets no below_minimum judgement at all.
    }
)
"""Smallest cacheable prefix per model, in tokens; matched like prices (``prices.match_model``)."""


def minimum_tokens(model: str | None, overrides: Mapping[str, int] | None = None) -> int | None:
    """The smallest cacheable prefix of ``model``; None when unknown (no judgement then).

    Any matching override beats the built-in table, even a broad ``claude*``
    against a built-in exact id: overrides describe the upstream actually used.
    """
    for source in (overrides or {}, MINIMUM_TOKENS):
        table = {canonical_model(name): tokens for name, tokens in source.items()}
        key = match_model(model, table)
        if key is not None:
            return table[key]
    return None
