"""The price files ``cache_prices`` accepts, told apart by their content: an override object, a generated data
file (both merged field by field over the shipped table), or a copy of LiteLLM's database (its models replace
the shipped ones whole)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cachepin.response.usage import Usage
from cachepin.turns.models import DEFAULT_PRICES, Price, PriceTable
from cachepin.turns.price_files import load_prices
from cachepin.turns.pricing import Cost, cost

SONNET = Price(3.0, 15.0, 0.3, 3.75, 6.0)
M = 1e-6  # LiteLLM prices per token


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


def test_a_litellm_entry_replaces_the_shipped_price_whole_where_an_override_merges(tmp_path: Path) -> None:
    """The same model without cache prices: the override keeps the shipped ones, LiteLLM's copy does not."""
    litellm = {"claude-sonnet-4-5": {"litellm_provider": "anthropic", "mode": "chat", "input_cost_per_token": 2 * M,
                                     "output_cost_per_token": 10 * M}}
    replaced = load_prices(write(tmp_path, litellm, "model_prices_and_context_window.json"))
    merged = load_prices(write(tmp_path, {"claude-sonnet-4-5": {"input": 2.0, "output": 10.0}}))
    assert replaced.get("claude-sonnet-4-5") == Price(2.0, 10.0, 2.0, 2.0, 2.0)  # none listed: plain input
    assert merged.get("claude-sonnet-4-5") == Price(2.0, 10.0, 0.3, 3.75, 6.0)


def test_a_litellm_file_is_told_by_its_content_not_its_name(tmp_path: Path) -> None:
    database = {"xai/grok-9": {"litellm_provider": "xai", "mode": "chat", "input_cost_per_token": 1 * M,
                               "output_cost_per_token": 2 * M}}
    assert load_prices(write(tmp_path, database, "my-prices.json")).get("grok-9") == Price(1.0, 2.0, 1.0, 1.0, 1.0)


def test_a_litellm_file_stacks_on_a_given_base(tmp_path: Path) -> None:
    base = PriceTable({"house-model": Price(1.0, 2.0, 0.1, 1.0, 1.0)})
    database = {"xai/grok-9": {"litellm_provider": "xai", "mode": "chat", "input_cost_per_token": 1 * M,
                               "output_cost_per_token": 2 * M}}
    table = load_prices(write(tmp_path, database), base)
    assert table.get("house-model") == Price(1.0, 2.0, 0.1, 1.0, 1.0)
    assert table.get("grok-9") == Price(1.0, 2.0, 1.0, 1.0, 1.0)
    assert table.get("claude-sonnet-4-5") is None


@pytest.mark.parametrize("entry", [
    {"litellm_provider": "openai", "mode": "image_generation", "input_cost_per_token": 1 * M,
     "output_cost_per_token": 2 * M},  # no chat model
    {"litellm_provider": "gemini", "mode": "chat", "input_cost_per_token": 0.0, "output_cost_per_token": 0.0,
     "output_cost_per_second": 0.002},  # priced per second
], ids=["image-model", "per-second"])
def test_a_litellm_file_that_prices_no_chat_model_is_refused(tmp_path: Path, entry: dict) -> None:
    with pytest.raises(ValueError, match=r"prices\.json: a LiteLLM price file without any chat model of anthropic, "
                                         r"openai, gemini, xai, deepseek, moonshot"):
        load_prices(write(tmp_path, {"some-model": entry}))
