"""The normalised usage record: four additive counts in one order, None (not reported) apart from a reported 0."""

from __future__ import annotations

import dataclasses

import pytest

from cachepin.response.usage import COUNT_FIELDS, SPLIT_FIELDS, Usage


def test_the_count_fields_are_the_records_and_in_the_order_counts_gives() -> None:
    usage = Usage("anthropic", "claude-sonnet-4-6", 12, 1538, 9000, 85)
    assert COUNT_FIELDS == ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
    assert usage.counts() == tuple(getattr(usage, name) for name in COUNT_FIELDS) == (12, 1538, 9000, 85)


def test_the_split_fields_are_the_ttl_split_of_the_creation_and_default_to_not_reported() -> None:
    usage = Usage("anthropic", "claude-sonnet-4-6", 12, 1538, 0, 85)
    assert SPLIT_FIELDS == ("cache_creation_5m", "cache_creation_1h")
    assert [getattr(usage, name) for name in SPLIT_FIELDS] == [None, None]
    split = Usage("anthropic", "claude-sonnet-4-6", 12, 1538, 0, 85, 538, 1000)
    assert (split.cache_creation_5m, split.cache_creation_1h) == (538, 1000)
    assert split.counts() == usage.counts()  # the split is not a fifth count


@pytest.mark.parametrize(("read", "reports"), [
    (0, True),  # a reported zero: the provider said the cache gave nothing
    (4096, True),
    (None, False),  # not reported: the provider said nothing about the cache
])
def test_reports_cache_is_whether_the_read_count_was_reported(read: int | None, reports: bool) -> None:
    assert Usage("openai", "gpt-5", 100, None, read, 9).reports_cache is reports


def test_a_write_count_alone_says_nothing_about_the_cache() -> None:
    """Only the read count decides: a write without a read figure cannot tell a hit from a miss."""
    assert Usage("openai", "gpt-5", 100, 1000, None, 9).reports_cache is False


def test_a_record_is_frozen_and_compares_by_value() -> None:
    usage = Usage("deepseek", "deepseek-chat", 40, None, 2560, 30)
    assert usage == Usage("deepseek", "deepseek-chat", 40, None, 2560, 30)
    assert hash(usage) == hash(Usage("deepseek", "deepseek-chat", 40, None, 2560, 30))
    with pytest.raises(dataclasses.FrozenInstanceError):
        usage.input_tokens = 1  # type: ignore[misc]
    assert not hasattr(usage, "__dict__")  # slots: one is kept per turn
