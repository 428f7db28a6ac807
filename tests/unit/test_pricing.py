"""The cost of a turn as billed and without any cache, from the price table, for every provider's usage."""

from __future__ import annotations

import pytest

from cachepin.response.usage import Usage
from cachepin.turns.models import Price, PriceTable
from cachepin.turns.pricing import cost


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
        # test_extract.py's Anthropic body: a 1 h write of 640 tokens, 9000 read
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
        anthropic(10, 0, 0, 10, model="claude-opus-4-9"),
        anthropic(10, 0, 0, 10, model="my-local-llama"),
        anthropic(None, None, None, None),
    ],
    ids=["no-usage", "no-model", "new-version", "local", "no-counts"],
)
def test_unknown_models_and_missing_usage_cost_nothing(used: Usage | None) -> None:
    assert cost(used) is None


def test_claude_codes_default_model_is_priced() -> None:
    """claude-opus-4-8 (Claude Code's default): a 1 h write of 2000 tokens, 30000 read, 40 fresh, 300 out."""
    found = cost(anthropic(40, 2000, 30000, 300, 0, 2000, model="claude-opus-4-8"))
    assert found is not None
    assert (found.billed, found.uncached) == pytest.approx(
        ((40 * 5 + 2000 * 10 + 30000 * 0.5 + 300 * 25) / 1e6, (32040 * 5 + 300 * 25) / 1e6))


def test_gpt56_bills_its_cache_writes() -> None:
    """GPT-5.6 reports cache_write_tokens and bills them at 1.25x input, as creation tokens of the default TTL."""
    found = cost(Usage("openai", "gpt-5.6", 100, 3000, 8000, 50))
    assert found is not None
    assert found.billed == pytest.approx((100 * 4 + 3000 * 5 + 8000 * 0.4 + 50 * 20) / 1e6)


LONG = Price(6.0, 22.5, 0.6, 7.5, 12.0)
TIERED = PriceTable({"house-model": Price(3.0, 15.0, 0.3, 3.75, 6.0, ((200_000, LONG),))})


@pytest.mark.parametrize(
    ("fresh", "created", "read", "tier"),
    [(1000, 0, 199_000, None), (1000, 0, 199_001, LONG), (200_001, None, None, LONG), (0, 150_000, 60_000, LONG)],
    ids=["at-threshold", "above-by-read", "above-by-input", "above-by-write-and-read"],
)
def test_a_long_prompt_is_billed_at_its_tier_whole(fresh: int, created: int | None, read: int | None,
                                                    tier: Price | None) -> None:
    """The prompt (input, written and read tokens) decides the tier, which then prices every token, output too."""
    price = tier or Price(3.0, 15.0, 0.3, 3.75, 6.0)
    found = cost(Usage("anthropic", "house-model", fresh, created, read, 100), TIERED)
    assert found is not None
    billed = fresh * price.input + (created or 0) * price.cache_write_5m + (read or 0) * price.cache_read
    assert found.billed == pytest.approx((billed + 100 * price.output) / 1e6)
    assert found.uncached == pytest.approx(((fresh + (created or 0) + (read or 0)) * price.input
                                            + 100 * price.output) / 1e6)
