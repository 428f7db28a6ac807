"""LiteLLM's price database read as cachepin prices: which entries are taken, under which ids, at what prices.

``tests/tools/test_prices.py`` runs the whole database sample through
``scripts/update-prices``; these pin each rule of ``prices_of`` on its own.
"""

from __future__ import annotations

import math

import pytest

from cachepin.turns.litellm import CLAUDE_1H_WRITE, MODES, PROVIDERS, is_litellm, prices_of, taken
from cachepin.turns.models import Price

M = 1e-6  # LiteLLM prices per token
SOURCE = "model_prices.json"


def entry(provider: str, input_cost: float = 1.0, output_cost: float = 2.0, mode: str = "chat",
          **costs: object) -> dict:
    """A database entry priced in USD per million tokens (``costs`` per token, as the database writes them)."""
    return {"litellm_provider": provider, "mode": mode, "input_cost_per_token": input_cost * M,
            "output_cost_per_token": output_cost * M, **costs}


def priced(name: str, database_entry: dict) -> Price | None:
    """The price ``prices_of`` gives the model ``name`` alone is read as (None: not taken)."""
    prices = prices_of({name: database_entry}, SOURCE)
    assert len(prices) <= 1
    return next(iter(prices.values()), None)


# --- is_litellm ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "expected"), [
    ({"claude-opus-4-8": entry("anthropic")}, True),
    ({"sample_spec": {"litellm_provider": "one of https://docs.litellm.ai/docs/providers",
                      "input_cost_per_token": 0}}, True),  # the database's own first entry is enough
    ({"gpt-4o": {"input": 2.5, "output": 10.0}}, False),  # an override file
    ({"generated_at": "2027-01-01T00:00:00Z", "source": {}, "models": {"gpt-4o": {"input": 2.5}}}, False),
    ({"gpt-4o": {"litellm_provider": "openai"}}, False),  # no per-token price
    ({"gpt-4o": {"input_cost_per_token": 1e-6}}, False),  # no provider
    ({"gpt-4o": 2.5}, False),
    ({}, False),
])
def test_a_litellm_file_is_told_by_its_entries(data: dict, expected: bool) -> None:
    assert is_litellm(data) is expected


# --- taken ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "database_entry", "expected"), [
    ("claude-opus-4-8", entry("anthropic"), True),
    ("gpt-5", entry("openai", mode="responses"), True),
    ("text-embedding-3-small", entry("openai", mode="embedding"), False),
    ("gpt-image-2", entry("openai", mode="image_generation"), False),
    ("gpt-4o", {**entry("openai"), "mode": None}, False),
    ("ft:gpt-4o-2024-08-06", entry("openai"), False),  # a fine-tune: its id is the customer's
    ("ollama/llama3", entry("ollama"), False),  # a provider whose responses cachepin does not read
    ("mystery", {k: v for k, v in entry("openai").items() if k != "litellm_provider"}, False),
    ("odd", {**entry("openai"), "litellm_provider": ["openai"]}, False),
    ("not-an-entry", "chat", False),
    ("anthropic.claude-opus-4-1-20250805-v1:0", entry("bedrock_converse"), True),
    ("anthropic.claude-3-5-sonnet-20240620-v1:0", entry("bedrock"), True),
    ("us.anthropic.claude-opus-4-1-20250805-v1:0", entry("bedrock_converse"), False),  # a regional profile (+10 %)
    ("anthropic.claude-v2:1", entry("bedrock"), False),  # legacy: its family, "claude", is no model
    ("anthropic.claude-instant-v1", entry("bedrock"), False),
    ("meta.llama3-70b-instruct-v1:0", entry("bedrock"), False),  # Bedrock, but no Claude
    ("gemini-2.0-flash", entry("vertex_ai-language-models"), True),
    ("vertex_ai/claude-opus-4-8", entry("vertex_ai-language-models"), False),  # Vertex only for Gemini
    ("xai/grok-4.3", entry("xai"), True),
])
def test_only_chat_models_of_the_providers_cachepin_reads_are_taken(name: str, database_entry: object,
                                                                     expected: bool) -> None:
    assert taken(name, database_entry) is expected
    assert (priced(name, database_entry) is not None) is expected  # type: ignore[arg-type]


def test_the_providers_and_modes() -> None:
    """The order is the preference: a provider's own list before a cloud's copy of it."""
    assert PROVIDERS.index("gemini") < PROVIDERS.index("vertex_ai-language-models")
    assert PROVIDERS.index("anthropic") < PROVIDERS.index("bedrock_converse") < PROVIDERS.index("bedrock")
    assert MODES == {"chat", "responses"}


# --- ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "provider", "model"), [
    ("xai/grok-4.3", "xai", "grok-4.3"),  # the id xAI's API answers with
    ("gemini/gemini-2.5-pro", "gemini", "gemini-2.5-pro"),
    ("deepseek/deepseek-chat", "deepseek", "deepseek-chat"),
    ("moonshot/kimi-k3", "moonshot", "kimi-k3"),
    ("claude-opus-4-8", "anthropic", "claude-opus-4-8"),
    ("anthropic.claude-opus-4-1-20250805-v1:0", "bedrock_converse", "claude-opus-4-1"),  # Bedrock: its family
])
def test_models_are_priced_under_the_ids_their_apis_answer_with(name: str, provider: str, model: str) -> None:
    assert list(prices_of({name: entry(provider)}, SOURCE)) == [model]


def test_a_model_two_providers_list_takes_the_preferred_ones_price() -> None:
    database = {
        "gemini-2.5-pro": entry("vertex_ai-language-models", 9.0, 9.0),  # listed first, preferred less
        "gemini/gemini-2.5-pro": entry("gemini", 1.25, 10.0),
        "anthropic.claude-opus-4-8-20261101-v1:0": entry("bedrock", 7.0, 7.0),
        "claude-opus-4-8": entry("anthropic", 5.0, 25.0),
    }
    prices = prices_of(database, SOURCE)
    assert prices["gemini-2.5-pro"].input == 1.25
    assert prices["claude-opus-4-8"].input == 5.0


def test_a_dated_id_at_its_familys_price_is_left_out_and_one_at_another_price_kept() -> None:
    database = {"claude-opus-4-8": entry("anthropic", 5.0, 25.0),
                "claude-opus-4-8-20261101": entry("anthropic", 5.0, 25.0),  # matches the family anyway
                "gpt-4o": entry("openai", 2.5, 10.0),
                "gpt-4o-2024-05-13": entry("openai", 5.0, 15.0)}  # the older snapshot cost more
    assert sorted(prices_of(database, SOURCE)) == ["claude-opus-4-8", "gpt-4o", "gpt-4o-2024-05-13"]


# --- prices --------------------------------------------------------------------------------------


def test_per_token_prices_become_exact_prices_per_million() -> None:
    """3.75e-6 * 1e6 is 3.7499999999999996 in floats: six decimals are exact."""
    price = priced("claude-x-1", entry("anthropic", 3.0, 15.0, cache_read_input_token_cost=0.3 * M,
                                       cache_creation_input_token_cost=3.75e-6,
                                       cache_creation_input_token_cost_above_1hr=6 * M))
    assert price == Price(3.0, 15.0, 0.3, 3.75, 6.0)


@pytest.mark.parametrize(("costs", "expected"), [
    ({}, Price(1.0, 2.0, 1.0, 1.0, 1.0)),  # no cache prices: reads and writes cost plain input
    ({"cache_read_input_token_cost": 0.1 * M}, Price(1.0, 2.0, 0.1, 1.0, 1.0)),
    ({"input_cost_per_token_cache_hit": 0.1 * M}, Price(1.0, 2.0, 0.1, 1.0, 1.0)),  # DeepSeek's name for it
    ({"cache_read_input_token_cost": 0.1 * M, "input_cost_per_token_cache_hit": 0.5 * M},
     Price(1.0, 2.0, 0.1, 1.0, 1.0)),
    ({"cache_creation_input_token_cost": 0.0}, Price(1.0, 2.0, 1.0, 1.0, 1.0)),  # 0: no surcharge, not free
    ({"cache_creation_input_token_cost": 1.25 * M}, Price(1.0, 2.0, 1.0, 1.25, 1.25)),  # no long write: the write
    ({"cache_creation_input_token_cost": 1.25 * M, "cache_creation_input_token_cost_above_12hr": 3 * M},
     Price(1.0, 2.0, 1.0, 1.25, 3.0)),  # OpenAI's 12 h write
    ({"cache_creation_input_token_cost": 1.25 * M, "cache_creation_input_token_cost_above_1hr": 0.0,
      "cache_creation_input_token_cost_above_12hr": 3 * M}, Price(1.0, 2.0, 1.0, 1.25, 3.0)),
])
def test_cache_prices_default_to_plain_input(costs: dict, expected: Price) -> None:
    assert priced("gpt-x", entry("openai", **costs)) == expected


@pytest.mark.parametrize(("costs", "expected"), [
    ({"cache_creation_input_token_cost": 3.75 * M}, Price(3.0, 15.0, 3.0, 3.75, 3.0 * CLAUDE_1H_WRITE)),
    ({"cache_creation_input_token_cost": 3.75 * M, "cache_creation_input_token_cost_above_1hr": 7 * M},
     Price(3.0, 15.0, 3.0, 3.75, 7.0)),  # the database's own 1 h price wins
    ({}, Price(3.0, 15.0, 3.0, 3.0, 3.0)),  # no write price at all: no surcharge, whatever the TTL
])
def test_a_claude_model_without_a_1h_write_price_has_anthropics(costs: dict, expected: Price) -> None:
    assert CLAUDE_1H_WRITE == 2.0
    assert priced("claude-x-1", entry("anthropic", 3.0, 15.0, **costs)) == expected


@pytest.mark.parametrize(("input_cost", "output_cost", "extra"), [
    (0.0, 0.0, {"output_cost_per_second": 0.002}),  # billed per second
    (0.0, 0.0, {}),  # a free preview: no price rather than $0
])
def test_an_entry_without_a_per_token_price_is_left_out(input_cost: float, output_cost: float, extra: dict) -> None:
    assert priced("gemini/lyria-3.5", entry("gemini", input_cost, output_cost, **extra)) is None


@pytest.mark.parametrize("missing", ["input_cost_per_token", "output_cost_per_token"])
def test_an_entry_missing_input_or_output_is_left_out(missing: str) -> None:
    database_entry = entry("openai")
    del database_entry[missing]
    assert priced("gpt-image-1", database_entry) is None


def test_one_free_side_is_still_a_price() -> None:
    assert priced("gpt-x", entry("openai", 0.0, 2.0)) == Price(0.0, 2.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize(("field", "value"), [
    ("input_cost_per_token", "cheap"),
    ("output_cost_per_token", -1e-6),
    ("cache_read_input_token_cost", math.nan),
    ("cache_creation_input_token_cost", math.inf),
    ("cache_creation_input_token_cost_above_1hr", True),
    ("input_cost_per_token_above_200k_tokens", [1e-6]),
])
def test_a_price_that_is_no_number_names_the_file_model_and_field(field: str, value: object) -> None:
    database_entry = entry("anthropic", cache_creation_input_token_cost=1.25 * M,
                           input_cost_per_token_above_200k_tokens=2 * M) | {field: value}
    with pytest.raises(ValueError, match=rf"^model_prices\.json: model 'claude-x-1': field '{field}' must be a "
                                         rf"non-negative number \(USD per token\), got "):
        prices_of({"claude-x-1": database_entry}, SOURCE)


def test_an_entry_not_taken_is_not_checked() -> None:
    """A broken price in an embedding or another provider's entry does not refuse the whole file."""
    database = {"text-embedding-9": entry("openai", mode="embedding") | {"input_cost_per_token": "cheap"},
                "gpt-x": entry("openai")}
    assert list(prices_of(database, SOURCE)) == ["gpt-x"]


# --- long-prompt tiers ---------------------------------------------------------------------------


def test_a_tier_above_a_threshold_in_thousands() -> None:
    price = priced("gemini/gemini-x", entry("gemini", 1.25, 10.0, cache_read_input_token_cost=0.125 * M,
                                            input_cost_per_token_above_200k_tokens=2.5 * M,
                                            output_cost_per_token_above_200k_tokens=15 * M,
                                            cache_read_input_token_cost_above_200k_tokens=0.25 * M))
    assert price == Price(1.25, 10.0, 0.125, 1.25, 1.25, ((200_000, Price(2.5, 15.0, 0.25, 2.5, 2.5)),))


def test_a_tier_price_left_out_keeps_the_bases_ratio_to_input() -> None:
    """The database gives the tier's input only: its read and writes scale with it, its output stays."""
    price = priced("gpt-x", entry("openai", 4.0, 20.0, cache_read_input_token_cost=0.4 * M,
                                  cache_creation_input_token_cost=5 * M,
                                  cache_creation_input_token_cost_above_12hr=10 * M,
                                  input_cost_per_token_above_272k_tokens=8 * M))
    assert price is not None
    assert price.tiers == ((272_000, Price(8.0, 20.0, 0.8, 10.0, 20.0)),)


def test_tiers_are_sorted_by_threshold() -> None:
    price = priced("gpt-x", entry("openai", 1.0, 2.0, input_cost_per_token_above_272k_tokens=3 * M,
                                  input_cost_per_token_above_128k_tokens=2 * M))
    assert price is not None
    assert [above for above, _ in price.tiers] == [128_000, 272_000]
    assert [tier.input for _, tier in price.tiers] == [2.0, 3.0]
