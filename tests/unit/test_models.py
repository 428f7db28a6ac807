"""Prices: model matching, the override file, and the cost of a turn with and without the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cachepin.response.usage import Usage
from cachepin.turns.models import _BUILTIN, DEFAULT_PRICES, Price, PriceTable, canonical_model, load_prices, match_model
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


# --- cost of a turn ---------------------------------------------------------------------------


def anthropic(
    fresh: int | None,
    created: int | None,
    read: int | None,
    output: int | None,
    five: int | None = None,
    hour: int | None = None,
    model: str | None = "claude-sonnet-4-5-20250929",
) -> Usage:
    return Usage("anthropic", model, fresh, created, read, output, five, hour)


@pytest.mark.parametrize(
    ("used", "billed", "uncached"),
    [
        # the wire-formats example: a 1 h write of 640 tokens, 9000 read
        (anthropic(12, 640, 9000, 85, 0, 640), 12 * 3 + 9000 * 0.3 + 640 * 6 + 85 * 15, 9652 * 3 + 85 * 15),
        # unsplit creation is priced as 5 min writes
        (anthropic(12, 640, 9000, 85), 12 * 3 + 9000 * 0.3 + 640 * 3.75 + 85 * 15, 9652 * 3 + 85 * 15),
        (anthropic(12, 640, 9000, 85, 640, 0), 12 * 3 + 9000 * 0.3 + 640 * 3.75 + 85 * 15, 9652 * 3 + 85 * 15),
        (anthropic(0, 1000, 0, 0, 400, 600), 400 * 3.75 + 600 * 6, 1000 * 3),  # mixed TTLs
        (anthropic(0, 1000, 0, 0, None, 600), 400 * 3.75 + 600 * 6, 1000 * 3),  # only the 1 h part reported
        (anthropic(0, None, 0, 0, 400, 600), 400 * 3.75 + 600 * 6, 1000 * 3),  # total missing, split present
        (anthropic(100, None, None, 50), 100 * 3 + 50 * 15, 100 * 3 + 50 * 15),  # nothing about the cache
        (anthropic(0, 0, 0, 0), 0, 0),
    ],
    ids=["1h", "unsplit", "5m", "mixed", "1h-only", "split-only", "no-cache", "zeros"],
)
def test_anthropic_cost(used: Usage, billed: float, uncached: float) -> None:
    found = cost(used)
    assert found is not None
    assert found.billed == pytest.approx(billed / 1e6)
    assert found.uncached == pytest.approx(uncached / 1e6)
    assert found.saving == pytest.approx((uncached - billed) / 1e6)


@pytest.mark.parametrize(
    ("used", "billed", "uncached"),
    [
        # OpenAI chat: prompt_tokens 4300 of which 4096 cached, arrives as input 204 + read 4096
        (
            Usage("openai", "gpt-4o-2024-08-06", 204, 0, 4096, 52),
            204 * 2.5 + 4096 * 1.25 + 52 * 10,
            4300 * 2.5 + 52 * 10,
        ),
        # OpenRouter: 9100 prompt tokens, 7800 cached, 1200 written (no write surcharge for OpenAI models)
        (Usage("openrouter", "openai/gpt-4.1", 100, 1200, 7800, 60), 1300 * 2 + 7800 * 0.5 + 60 * 8, 9100 * 2 + 60 * 8),
        # DeepSeek hit/miss: no creation figure at all
        (
            Usage("deepseek", "deepseek-chat", 40, None, 2560, 30),
            40 * 0.28 + 2560 * 0.028 + 30 * 0.42,
            2600 * 0.28 + 30 * 0.42,
        ),
        # Gemini: promptTokenCount 5000 of which 3072 cached; output = candidates + thoughts
        (
            Usage("gemini", "gemini-2.5-flash", 1928, None, 3072, 65),
            1928 * 0.3 + 3072 * 0.03 + 65 * 2.5,
            5000 * 0.3 + 65 * 2.5,
        ),
    ],
    ids=["openai", "openrouter", "deepseek", "gemini"],
)
def test_other_providers_cost(used: Usage, billed: float, uncached: float) -> None:
    found = cost(used)
    assert found is not None
    assert (found.billed, found.uncached) == pytest.approx((billed / 1e6, uncached / 1e6))


def test_a_cold_turn_saves_a_negative_amount() -> None:
    found = cost(anthropic(10, 5000, 0, 100))
    assert found is not None and found.saving == pytest.approx(-5000 * 0.75 / 1e6)
    assert found.as_dict() == {"billed": 0.02028, "uncached": 0.01653, "saving": -0.00375}


@pytest.mark.parametrize(
    "used",
    [
        None,
        anthropic(10, 0, 0, 10, model=None),
        anthropic(10, 0, 0, 10, model="claude-opus-4-7"),
        anthropic(10, 0, 0, 10, model="my-local-llama"),
        anthropic(None, None, None, None),
    ],
    ids=["no-usage", "no-model", "new-version", "local", "no-counts"],
)
def test_unknown_models_and_missing_usage_cost_nothing(used: Usage | None) -> None:
    assert cost(used) is None


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
