"""The model tables: the shipped prices and cache rules, the entry a model id matches, long-prompt tiers."""

from __future__ import annotations

import json

import pytest

from cachepin.turns.models import (
    CACHE_RULES,
    DEFAULT_PRICES,
    PRICES_FILE,
    RULES_FILE,
    CacheRule,
    Price,
    PriceTable,
    cache_rule,
    canonical_model,
    family,
    match_model,
    minimum_tokens,
)

SONNET = Price(3.0, 15.0, 0.3, 3.75, 6.0)
SHIPPED = json.loads(PRICES_FILE.read_text(encoding="utf-8"))
RULES = json.loads(RULES_FILE.read_text(encoding="utf-8"))


def shipped(key: str) -> Price:
    """The price ``prices.json`` gives ``key``, read from the file rather than through the runtime's loader."""
    fields = dict(SHIPPED["models"][key])
    tiers = tuple((tier["above"], Price(**{name: value for name, value in tier.items() if name != "above"}))
                  for tier in fields.pop("tiers", []))
    return Price(**fields, tiers=tiers)


# --- the shipped data files ---------------------------------------------------------------


def test_the_shipped_prices_say_when_and_where_they_come_from() -> None:
    assert SHIPPED["generated_at"].endswith("Z")
    source = SHIPPED["source"]
    assert source["package"] == "litellm" and source["version"] and source["registry"] == "PyPI"
    assert source["url"].endswith("model_prices_and_context_window.json")
    assert len(DEFAULT_PRICES) == len(SHIPPED["models"]) >= 150


@pytest.mark.parametrize(
    "model",
    ["claude-opus-4-8", "claude-sonnet-4-6", "claude-haiku-4-5", "gpt-5.6", "gpt-5.5", "o3", "gemini-2.5-pro",
     "gemini-3.1-pro-preview", "grok-4.3", "deepseek-chat", "deepseek-v4-pro", "kimi-k3", "claude-opus-4-1"],
)
def test_every_provider_cachepin_reads_has_current_prices(model: str) -> None:
    assert DEFAULT_PRICES.get(model) == shipped(model)


def test_claude_codes_default_model_has_anthropics_prices() -> None:
    """claude-opus-4-8: $5 / $25, writes 1.25x (5 min) and 2x (1 h), reads 0.1x (platform.claude.com pricing)."""
    assert DEFAULT_PRICES.get("claude-opus-4-8") == Price(5.0, 25.0, 0.5, 6.25, 10.0)


def test_the_shipped_prices_are_consistent() -> None:
    for key in SHIPPED["models"]:
        price = shipped(key)
        assert canonical_model(key) == key and DEFAULT_PRICES.get(key) == price
        assert price.input > 0 and price.output > 0
        assert price.cache_read <= price.input <= price.cache_write_5m <= price.cache_write_1h
        assert [above for above, _ in price.tiers] == sorted({above for above, _ in price.tiers})
        if key.startswith("claude-"):  # Anthropic: write 1.25x (5 min) or 2x (1 h), read at most 0.1x
            assert (price.cache_write_5m, price.cache_write_1h) == pytest.approx((price.input * 1.25, price.input * 2))
            assert price.cache_read <= price.input * 0.1 + 1e-9


def test_the_shipped_cache_rules_cite_their_sources() -> None:
    assert RULES["taken_at"] == "2026-12-03"
    for key, rule in RULES["models"].items():
        assert canonical_model(key) == key and rule["source"] in RULES["sources"]
    assert set(CACHE_RULES) == set(RULES["models"])


# --- model matching -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),  # Vertex
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5"),  # Bedrock inference profile
        ("anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),  # OpenRouter
        ("anthropic/claude-opus-4.8", "claude-opus-4-8"),
        ("Claude-Haiku-4-5-20251001", "claude-haiku-4-5"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # exact beats prefix: the first snapshot is dearer
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("openai/gpt-5-mini", "gpt-5-mini"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("gpt-5.6-sol", "gpt-5.6-sol"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("gemini-2.5-pro-preview-06-05", "gemini-2.5-pro"),
        ("x-ai/grok-4.3", "grok-4.3"),
        ("deepseek-chat", "deepseek-chat"),
        ("moonshotai/kimi-k2.5", "kimi-k2.5"),
    ],
)
def test_known_models_match_their_family(model: str, key: str) -> None:
    assert match_model(model, SHIPPED["models"]) == key
    assert DEFAULT_PRICES.get(model) == shipped(key)


@pytest.mark.parametrize(
    "model",
    [
        None,
        "",
        "claude-opus-4-9",  # a new version is not its predecessor
        "claude-sonnet-4-9-20270101",
        "gpt-4o-realtime-preview",  # a variant, not a snapshot (and a realtime model: not a chat price)
        "gpt-5-turbo",
        "llama-3.3-70b-instruct",
        "anthropic/claude-3.7-sonnet:thinking",
        "lyria-3.5",  # LiteLLM prices it at $0 per token (it is billed otherwise): no price, rather than $0
    ],
)
def test_unknown_models_match_nothing(model: str | None) -> None:
    assert DEFAULT_PRICES.get(model) is None


def test_a_lookup_is_remembered() -> None:
    table = PriceTable({"house-model": SONNET})
    assert table.get("house-model-20260101") is table.get("house-model-20260101") is SONNET
    assert table.get("other") is None and table.get("other") is None


@pytest.mark.parametrize(
    ("model", "known", "key"),
    [
        ("llama-3.3-70b", ["llama-*"], "llama-*"),
        ("llama-3.3-70b", ["llama-*", "llama-3.3-*"], "llama-3.3-*"),
        ("llama-3.3-70b", ["llama-3.3-70b", "llama-*"], "llama-3.3-70b"),
        ("mistral-large", ["llama-*"], None),
    ],
)
def test_wildcard_keys_match_a_family(model: str, known: list[str], key: str | None) -> None:
    assert match_model(model, known) == key


@pytest.mark.parametrize(
    ("model", "canonical"),
    [
        ("  Claude-Sonnet-4.5 ", "claude-sonnet-4-5"),
        ("eu.anthropic.claude-opus-4-5-20251101-v1:0", "claude-opus-4-5-20251101-v1:0"),
        ("arn:aws:bedrock:us-east-1:1:inference-profile/global.anthropic.claude-haiku-4-5", "claude-haiku-4-5"),
        ("gpt-4.1", "gpt-4.1"),
    ],
)
def test_canonical_model(model: str, canonical: str) -> None:
    assert canonical_model(model) == canonical


@pytest.mark.parametrize(
    ("model", "base"),
    [
        ("anthropic.claude-opus-4-1-20250805-v1:0", "claude-opus-4-1"),
        ("claude-haiku-4-5@20251001", "claude-haiku-4-5"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gemini-2.5-pro-preview-06-05", "gemini-2.5-pro"),
        ("claude-opus-4-8", "claude-opus-4-8"),
        ("claude-3-5-haiku", "claude-3-5-haiku"),
        ("grok-code-fast-1-0825", "grok-code-fast-1-0825"),  # not a tag cachepin knows: kept
    ],
)
def test_family_drops_date_and_version_tags(model: str, base: str) -> None:
    assert family(model) == base


# --- long-prompt tiers --------------------------------------------------------------------------


def test_a_price_tier_applies_above_its_threshold() -> None:
    long = Price(6.0, 22.5, 0.6, 7.5, 12.0)
    longer = Price(8.0, 30.0, 0.8, 10.0, 16.0)
    price = Price(3.0, 15.0, 0.3, 3.75, 6.0, ((200_000, long), (500_000, longer)))
    assert [price.at(tokens) for tokens in (0, 200_000, 200_001, 500_000, 500_001)] == [
        price, price, long, long, longer]


# --- cache rules: minimum cacheable prefixes, default TTLs, breakpoints --------------------------


@pytest.mark.parametrize(
    ("model", "minimum"),
    [
        ("gpt-4.1-mini-2025-04-14", 1024),
        ("o4-mini", 1024),
        ("anthropic/claude-haiku-4.5", 4096),
        ("claude-opus-4-8", 1024),  # Claude Code's default, lower than Opus 4.5-4.7
        ("claude-opus-4-7-20260416", 2048),
        ("claude-opus-4-6", 4096),
        ("claude-sonnet-4-6", 1024),
        ("models/gemini-2.5-pro", 2048),
        ("gemini-3.1-pro-preview", 4096),
        ("gemini-2.5-flash-lite", None),  # not documented: no judgement
        ("deepseek-chat", None),
        (None, None),
    ],
)
def test_minimum_lookup(model: str | None, minimum: int | None) -> None:
    assert minimum_tokens(model) == minimum


@pytest.mark.parametrize(
    "model, overrides, expected",
    [("claude-sonnet-4-6", {"claude*": 64}, 64), ("gpt-5", {"*": 100}, 100), ("claude-sonnet-4-6", {}, 1024),
     ("claude-sonnet-4-6", {"gpt*": 64}, 1024), ("unknown-model", {}, None)],
)
def test_overrides_beat_the_built_in_minimums(model: str, overrides: dict[str, int], expected: int | None) -> None:
    assert minimum_tokens(model, overrides) == expected


@pytest.mark.parametrize(
    ("model", "rule"),
    [
        ("gpt-4o", CacheRule(1024, 300.0, False)),  # in-memory retention, any prefix readable
        ("gpt-5.5", CacheRule(1024, 300.0, False)),
        ("gpt-5.6", CacheRule(1024, 1800.0, True)),  # GPT-5.6 and later: 30 min, read only at breakpoints
        ("gpt-5.6-terra", CacheRule(1024, 1800.0, True)),
        ("openai/gpt-6-sol", CacheRule(1024, 1800.0, True)),
        ("claude-opus-4-8", CacheRule(1024, None, False)),  # the request's markers always say the TTL
        ("llama-3.3-70b", CacheRule()),
    ],
)
def test_cache_rules(model: str, rule: CacheRule) -> None:
    assert cache_rule(model) == rule
