"""LiteLLM's price database as cachepin prices.

LiteLLM keeps a public, well-kept list of model prices
(``model_prices_and_context_window.json``, shipped inside its PyPI package):
USD per token per model, keyed by LiteLLM's model names. cachepin reads that
format twice, through ``prices_of`` both times so the two agree:
``scripts/update-prices`` turns it into the shipped ``prices.json``, and
``cache_prices`` takes a copy of it as is, for prices fresher than a release.

Only the providers whose responses cachepin reads are taken, under the ids
their APIs answer with: LiteLLM's ``xai/grok-4.3`` is ``grok-4.3``, and
Bedrock's ``anthropic.claude-opus-4-1-20250805-v1:0`` is ``claude-opus-4-1``
(which also prices the Claude models Anthropic's own list no longer carries).
OpenRouter answers with the upstream's ids, so it is priced by them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from cachepin.turns.models import Price, canonical_model, family, match_model

PROVIDERS = ("anthropic", "openai", "gemini", "xai", "deepseek", "moonshot", "vertex_ai-language-models",
             "bedrock_converse", "bedrock")
"""LiteLLM's providers cachepin takes, by preference: a model two of them list takes the first one's price."""
MODES = frozenset({"chat", "responses"})
_BEDROCK_CLAUDE = re.compile(r"anthropic\.claude-.+")  # the on-demand ids, not the regional profiles (+10 %)
_TIER = re.compile(r"(.+)_above_(\d+)k_tokens")
_INPUT, _OUTPUT, _READ, _READ_HIT = ("input_cost_per_token", "output_cost_per_token",
                                     "cache_read_input_token_cost", "input_cost_per_token_cache_hit")
_WRITE = "cache_creation_input_token_cost"
CLAUDE_1H_WRITE = 2.0
"""Anthropic bills a 1 h cache write at twice the base input price, on every Claude model that caches."""
_LONG_WRITES = ("cache_creation_input_token_cost_above_1hr", "cache_creation_input_token_cost_above_12hr")


def is_litellm(data: Mapping[str, object]) -> bool:
    """True for a file in LiteLLM's format: entries priced per token, tagged with a ``litellm_provider``."""
    return any(isinstance(entry, dict) and "litellm_provider" in entry and _INPUT in entry
               for entry in data.values())


def prices_of(data: Mapping[str, object], source: str) -> dict[str, Price]:
    """The prices, in USD per million tokens, of the chat models of ``PROVIDERS`` in a LiteLLM file.

    An entry without per-token input and output prices (priced per second or
    per image, or at 0) is left out; a price that is there but no number is an error
    naming ``source``, the model and the field. A dated id whose price is its
    family's is left out too: it matches the family anyway.
    """
    candidates: list[tuple[int, bool, str, dict[str, Any]]] = []
    for name, entry in data.items():
        if taken(name, entry):
            assert isinstance(entry, dict)
            candidates.append((PROVIDERS.index(entry["litellm_provider"]), "/" in name, name, entry))
    candidates.sort(key=lambda candidate: candidate[:3])  # by preference: provider, then unprefixed names
    prices: dict[str, Price] = {}
    for _, _, name, entry in candidates:
        model = family(name) if entry["litellm_provider"].startswith("bedrock") else canonical_model(name)
        if model not in prices:
            price = _price(f"{source}: model {name!r}", entry, claude=model.startswith("claude-"))
            if price is not None:
                prices[model] = price
    return {model: price for model, price in prices.items() if not _repeats_its_family(model, price, prices)}


def taken(name: str, entry: object) -> bool:
    """Whether ``prices_of`` takes this entry: a chat model of ``PROVIDERS``, under an id cachepin can match."""
    if not isinstance(entry, dict) or entry.get("mode") not in MODES or name.startswith("ft:"):
        return False
    provider = entry.get("litellm_provider")
    if not isinstance(provider, str) or provider not in PROVIDERS:
        return False
    if provider.startswith("bedrock"):  # and not the legacy claude-v2 or claude-instant, whose family is no model
        return _BEDROCK_CLAUDE.fullmatch(name) is not None and any(char.isdigit() for char in family(name))
    return provider != "vertex_ai-language-models" or canonical_model(name).startswith("gemini-")


def _repeats_its_family(model: str, price: Price, prices: Mapping[str, Price]) -> bool:
    """True for a dated id that, left out, would match a family of the same price."""
    base = family(model)
    return (base != model and prices.get(base) == price
            and match_model(model, (key for key in prices if key != model)) == base)


def _price(where: str, entry: Mapping[str, object], *, claude: bool) -> Price | None:
    """One entry's prices; None when it has no per-token input or output price, or both are 0 (LiteLLM's
    entry of a model billed per second or per image, or of a free preview: no price rather than $0).

    A write price that is missing or 0 is no surcharge: a write costs plain
    input (DeepSeek lists 0 and bills cache misses as input). A Claude model
    the database gives no 1 h write price has Anthropic's documented one.
    """
    def cost(name: str) -> float | None:
        return _cost(where, entry, name)

    fresh, output = cost(_INPUT), cost(_OUTPUT)
    if fresh is None or output is None or not fresh + output:
        return None
    read = _first(cost(_READ), cost(_READ_HIT), default=fresh)
    write = cost(_WRITE) or None
    if write is None:
        long_write = fresh
    else:
        long_write = _first(*(cost(name) or None for name in _LONG_WRITES),
                            default=fresh * CLAUDE_1H_WRITE if claude else write)
    base = _rounded(fresh, output, read, write or fresh, long_write)
    thresholds = sorted({int(match[2]) for key in entry if (match := _TIER.fullmatch(key))})
    tiers = tuple((above * 1000, _tier(where, entry, f"_above_{above}k_tokens", base, bool(write)))
                  for above in thresholds)
    return replace(base, tiers=tiers)


def _tier(where: str, entry: Mapping[str, object], suffix: str, base: Price, bills_writes: bool) -> Price:
    """A long-prompt tier: a price the database leaves out keeps the base's ratio to input."""
    def cost(name: str) -> float | None:
        return _cost(where, entry, name + suffix)

    fresh = _first(cost(_INPUT), default=base.input)
    scale = fresh / base.input if base.input else 1.0
    writes = (cost(_WRITE) or None,) if bills_writes else ()
    long_writes = tuple(cost(name) or None for name in _LONG_WRITES) if bills_writes else ()
    return _rounded(fresh, _first(cost(_OUTPUT), default=base.output),
                    _first(cost(_READ), cost(_READ_HIT), default=base.cache_read * scale),
                    _first(*writes, default=base.cache_write_5m * scale),
                    _first(*long_writes, default=base.cache_write_1h * scale))


def _first(*values: float | None, default: float) -> float:
    return next((value for value in values if value is not None), default)


def _rounded(fresh: float, output: float, read: float, write: float, long_write: float) -> Price:
    """Per-token prices times a million carry float noise (3.7499999999999996): six decimals are exact."""
    return Price(round(fresh, 6), round(output, 6), round(read, 6), round(write, 6), round(long_write, 6))


def _cost(where: str, entry: Mapping[str, object], name: str) -> float | None:
    """``entry[name]`` in USD per million tokens; None when absent."""
    value = entry.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: field {name!r} must be a non-negative number (USD per token), got {value!r}")
    return value * 1e6
