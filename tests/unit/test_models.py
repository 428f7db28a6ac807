"""The model tables: the shipped prices and cache rules, the entry a model id matches, the price files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cachepin.response.usage import Usage
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
from cachepin.turns.price_files import load_prices
from cachepin.turns.pricing import Cost, cost

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


# --- price files (cache_prices) -------------------------------------------------------------


def write(tmp_path: Path, content: object, name: str = "prices.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def test_override_merges_over_the_builtins(tmp_path: Path) -> None:
    table = load_prices(
        write(
            tmp_path,
            {
                "claude-sonnet-4-5": {"input": 2.0, "output": 10},  # a negotiated discount: cache fields kept
                "anthropic/claude-opus-4.5": {"cache_write_1h": 9.0},  # gateway spelling of a known id
                "my-llama-*": {"input": 0.1, "output": 0.2},  # new: cache prices default to input
                "qwen3-coder": {"input": 0.4, "output": 1.6, "cache_read": 0.04},
            },
        )
    )
    assert table.get("claude-sonnet-4-5-20250929") == Price(2.0, 10.0, 0.3, 3.75, 6.0)
    assert table.get("claude-opus-4-5") == Price(5.0, 25.0, 0.5, 6.25, 9.0)
    assert table.get("my-llama-3-8b") == Price(0.1, 0.2, 0.1, 0.1, 0.1)
    assert table.get("qwen3-coder") == Price(0.4, 1.6, 0.04, 0.4, 0.4)
    assert table.get("gpt-4o") == DEFAULT_PRICES.get("gpt-4o")  # untouched
    assert DEFAULT_PRICES.get("claude-sonnet-4-5") == SONNET  # the built-ins are not modified
    assert cost(Usage("x", "my-llama-3-8b", 1000, None, 0, 0), table) == Cost(0.0001, 0.0001)


def test_override_tiers(tmp_path: Path) -> None:
    table = load_prices(write(tmp_path, {"house-model": {
        "input": 1.0, "output": 2.0, "tiers": [{"above": 1000, "input": 2.0}, {"above": 10, "output": 3.0}]}}))
    assert table.get("house-model") == Price(1.0, 2.0, 1.0, 1.0, 1.0, (
        (10, Price(1.0, 3.0, 1.0, 1.0, 1.0)), (1000, Price(2.0, 2.0, 1.0, 1.0, 1.0))))
    without = load_prices(write(tmp_path, {"gpt-5.6": {"tiers": []}}))
    assert DEFAULT_PRICES.get("gpt-5.6").tiers and without.get("gpt-5.6").tiers == ()  # type: ignore[union-attr]


def test_override_of_an_empty_file_object_keeps_the_builtins(tmp_path: Path) -> None:
    table = load_prices(write(tmp_path, {}))
    assert table.get("claude-sonnet-4-5") == SONNET


def test_a_generated_data_file_is_accepted(tmp_path: Path) -> None:
    data = {"generated_at": "2027-01-01T00:00:00Z", "source": {},
            "models": {"claude-opus-4-8": {"input": 4.0, "output": 20.0, "cache_read": 0.4, "cache_write_5m": 5.0,
                                           "cache_write_1h": 8.0}}}
    table = load_prices(write(tmp_path, data))
    assert table.get("claude-opus-4-8") == Price(4.0, 20.0, 0.4, 5.0, 8.0)


def test_litellms_own_database_is_accepted(tmp_path: Path) -> None:
    """A fresher copy of the database the shipped table comes from: its models replace the shipped ones whole."""
    database = {
        "sample_spec": {"litellm_provider": "one of https://docs.litellm.ai/docs/providers", "input_cost_per_token": 0},
        "claude-opus-4-8": {"litellm_provider": "anthropic", "mode": "chat", "input_cost_per_token": 4e-06,
                            "output_cost_per_token": 2e-05, "cache_read_input_token_cost": 4e-07,
                            "cache_creation_input_token_cost": 5e-06,
                            "cache_creation_input_token_cost_above_1hr": 8e-06},
        "xai/grok-9": {"litellm_provider": "xai", "mode": "chat", "input_cost_per_token": 1e-06,
                       "output_cost_per_token": 2e-06},
    }
    table = load_prices(write(tmp_path, database, "model_prices_and_context_window.json"))
    assert table.get("claude-opus-4-8") == Price(4.0, 20.0, 0.4, 5.0, 8.0)
    assert table.get("grok-9") == Price(1.0, 2.0, 1.0, 1.0, 1.0)
    assert table.get("claude-sonnet-4-5") == SONNET  # models the copy lacks keep the shipped price


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"prices\.json: not valid JSON: .* line 1 column 2"),
        ("[1, 2]", r"prices\.json: expected an object mapping model ids to prices, got an array"),
        ({"gpt-4o": 2.5}, r"prices\.json: model 'gpt-4o': expected an object of prices, got a number"),
        ({"gpt-4o": {"inptu": 2.5}}, r"model 'gpt-4o': unknown field 'inptu'; expected some of input, output"),
        ({"gpt-4o": {"input": -1}}, r"model 'gpt-4o': field 'input' must be a non-negative number .* got -1"),
        ({"gpt-4o": {"input": "2.5"}}, r"model 'gpt-4o': field 'input' must be a non-negative number .* got '2\.5'"),
        ({"gpt-4o": {"output": True}}, r"model 'gpt-4o': field 'output' must be a non-negative number"),
        ({"gpt-4o": {"output": None}}, r"model 'gpt-4o': field 'output' must be a non-negative number"),
        ('{"gpt-4o": {"input": NaN}}', r"model 'gpt-4o': field 'input' must be a non-negative number .* got nan"),
        ({"new-model": {"input": 1.0}}, r"model 'new-model': field 'output' is required for a model the built-in"),
        ({"new-model": {"cache_read": 1.0}}, r"model 'new-model': field 'input' is required"),
        ({"gpt-4o": {"tiers": {"above": 1}}}, r"model 'gpt-4o': field 'tiers' must be a list of objects"),
        ({"gpt-4o": {"tiers": [{"input": 1.0}]}}, r"model 'gpt-4o': tiers\[0\]: field 'above' must be a number"),
        ({"gpt-4o": {"tiers": [{"above": 9}, {"above": 9}]}}, r"tiers\[1\]: field 'above' .* once per tier"),
        ({"gpt-4o": {"tiers": [{"above": 9, "input": -2}]}}, r"tiers\[0\]: field 'input' must be a non-negative"),
        ({"claude-x": {"litellm_provider": "anthropic", "mode": "chat", "input_cost_per_token": "cheap"}},
         r"model 'claude-x': field 'input_cost_per_token' must be a non-negative number \(USD per token\)"),
        ({"llama": {"litellm_provider": "ollama", "mode": "chat", "input_cost_per_token": 0}},
         r"a LiteLLM price file without any chat model of anthropic, openai"),
    ],
    ids=["syntax", "array", "scalar", "typo", "negative", "string", "bool", "null", "nan", "no-output", "no-input",
         "tiers-object", "tier-above", "tier-twice", "tier-negative", "litellm-string", "litellm-none"],
)
def test_bad_price_files_say_what_to_fix(tmp_path: Path, content: object, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        load_prices(write(tmp_path, content))
    assert str(tmp_path / "prices.json") in str(raised.value)


@pytest.mark.parametrize("problem", ["missing", "directory", "binary"])
def test_unreadable_price_files(tmp_path: Path, problem: str) -> None:
    path = tmp_path / "prices.json"
    if problem == "directory":
        path.mkdir()
    if problem == "binary":
        path.write_bytes(b"\xff\xfe\x00{")
    with pytest.raises(ValueError, match=r"prices\.json: (cannot read the price file|the price file is not UTF-8)"):
        load_prices(path)


def test_overrides_stack_on_a_given_base(tmp_path: Path) -> None:
    base = PriceTable({"house-model": Price(1.0, 2.0, 0.1, 1.0, 1.0)})
    table = load_prices(write(tmp_path, {"house-model": {"output": 3.0}}), base)
    assert table.get("house-model") == Price(1.0, 3.0, 0.1, 1.0, 1.0)
    assert table.get("claude-sonnet-4-5") is None


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
