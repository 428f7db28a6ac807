"""The token estimate: one token per started group of four characters, the same for the simulator and explainer."""

from __future__ import annotations

import pytest

from cachepin.request.tokens import estimate_tokens


@pytest.mark.parametrize(("text", "tokens"), [
    ("", 0),
    ("a", 1),
    ("abcd", 1),
    ("abcde", 2),  # a started group counts whole
    ("abcdefgh", 2),
    ("x" * 4096, 1024),
    ("x" * 4097, 1025),
    ("héllo", 2),  # characters, not UTF-8 bytes (7 of those)
    ("日本語のテキスト", 2),
])
def test_one_token_per_started_group_of_four_characters(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens


def test_the_estimate_adds_up_over_whole_groups() -> None:
    """Text cut after a whole group of four: the prefix keeps its estimate as the text grows."""
    prefix, rest = "Be brief. " * 40, "Now answer."
    assert len(prefix) % 4 == 0
    assert estimate_tokens(prefix + rest) == estimate_tokens(prefix) + estimate_tokens(rest)
