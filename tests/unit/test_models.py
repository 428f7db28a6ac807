"""The model tables: the entry a model id matches, the price override file, the minimum cacheable prefixes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cachepin.response.usage import Usage
from cachepin.turns.models import (
    _BUILTIN,
    DEFAULT_PRICES,
    Price,
    PriceTable,
    canonical_model,
    load_prices,
    match_model,
    minimum_tokens,
)
from cachepin.turns.pricing import Cost, cost

SONNET = Price(3.0, 15.0, 0.3, 3.75, 6.0)


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
        ("Claude-Haiku-4-5-20251001", "claude-haiku-4-5"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # exact beats prefix
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("openai/gpt-5-mini", "gpt-5-mini"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("gemini-2.5-pro-preview-06-05", "gemini-2.5-pro"),
        ("gemini-2.5-flash-preview-09-2025", "gemini-2.5-flash"),
        ("deepseek-chat", "deepseek-chat"),
    ],
)
def test_known_models_match_their_family(model: str, key: str) -> None:
    assert match_model(model, _BUILTIN) == key
    assert DEFAULT_PRICES.get(model) is _BUILTIN[key]


@pytest.mark.parametrize(
    "model",
    [
        None,
        "",
        "claude-opus-4-7",  # a new version is not its predecessor
        "claude-sonnet-4-9-20270101",
        "gpt-4o-realtime-preview",  # a variant, not a snapshot
        "gpt-5-turbo",
        "o3-deep-research",
        "llama-3.3-70b-instruct",
        "anthropic/claude-3.7-sonnet:thinking",
    ],
)
def test_unknown_models_match_nothing(model: str | None) -> None:
    assert DEFAULT_PRICES.get(model) is None


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


def test_builtin_table_is_consistent() -> None:
    assert len(_BUILTIN) >= 30
    for key, price in _BUILTIN.items():
        assert canonical_model(key) == key and DEFAULT_PRICES.get(key) is price
        assert min(price.input, price.output, price.cache_read) > 0
        assert price.cache_read <= price.input <= price.cache_write_5m <= price.cache_write_1h
        if key.startswith("claude-"):  # Anthropic: read 0.1x, write 1.25x (5 min) or 2x (1 h)
            assert (price.cache_read, price.cache_write_5m, price.cache_write_1h) == pytest.approx(
                (price.input * 0.1, price.input * 1.25, price.input * 2)
            )


# --- override file ----------------------------------------------------------------------------


def write(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "prices.json"
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


def test_override_of_an_empty_file_object_keeps_the_builtins(tmp_path: Path) -> None:
    table = load_prices(write(tmp_path, {}))
    assert table.get("claude-sonnet-4-5") == SONNET


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
    ],
    ids=["syntax", "array", "scalar", "typo", "negative", "string", "bool", "null", "nan", "no-output", "no-input"],
)
def test_bad_override_files_say_what_to_fix(tmp_path: Path, content: object, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        load_prices(write(tmp_path, content))
    assert str(tmp_path / "prices.json") in str(raised.value)


@pytest.mark.parametrize("problem", ["missing", "directory", "binary"])
def test_unreadable_override_files(tmp_path: Path, problem: str) -> None:
    path = tmp_path / "prices.json"
    if problem == "directory":
        path.mkdir()
    if problem == "binary":
        path.write_bytes(b"\xff\xfe\x00{")
    with pytest.raises(ValueError, match=r"prices\.json: (cannot read|the price file is not UTF-8)"):
        load_prices(path)


def test_overrides_stack_on_a_given_base(tmp_path: Path) -> None:
    base = PriceTable({"house-model": Price(1.0, 2.0, 0.1, 1.0, 1.0)})
    table = load_prices(write(tmp_path, {"house-model": {"output": 3.0}}), base)
    assert table.get("house-model") == Price(1.0, 3.0, 0.1, 1.0, 1.0)
    assert table.get("claude-sonnet-4-5") is None


# --- minimum cacheable prefixes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "minimum"),
    [("gpt-4.1-mini-2025-04-14", 1024), ("o4-mini", 1024), ("anthropic/claude-haiku-4.5", 4096), (None, None)],
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
