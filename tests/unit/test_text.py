"""How the plain-text outputs write figures and names: tokens without whitespace, error types, counts, ratios."""

from __future__ import annotations

import pytest

from cachepin.views.text import count, error_kind, percent, token


@pytest.mark.parametrize(("value", "written"), [
    (None, "-"),
    (0, "0"),
    (1538, "1538"),
    (0.5, "0.5"),
    ("claude-sonnet-4-6", "claude-sonnet-4-6"),
    ("my model", "my_model"),  # an upstream names the model: a space would split the key=value field
    ("a\tb\nc\r\nd", "a_b_c_d"),  # a run of whitespace is one underscore
    ("evil\x00\x1b[31mred", "evil_[31mred"),  # control characters cannot reach a terminal or a log parser
    ("del\x7f", "del_"),
    ("", ""),
    ("ü-ok", "ü-ok"),  # printable non-ASCII stays
])
def test_token_has_no_whitespace_or_control_characters(value: object, written: str) -> None:
    assert token(value) == written


@pytest.mark.parametrize(("error", "kind"), [
    ("overloaded_error", "overloaded_error"),
    ("INVALID_ARGUMENT", "INVALID_ARGUMENT"),
    ("429", "429"),
    ("response.failed", "response.failed"),
    ("x" * 40, "x" * 40),
    ("x" * 41, None),  # too long for a type
    ("Server disconnected without sending a response.", None),  # mitmproxy's sentence, not a type
    ("connection to https://api.example.com/v1 failed", None),  # may quote a URL
    ("", None),
    (None, None),
])
def test_error_kind_is_the_error_only_when_it_is_a_type(error: str | None, kind: str | None) -> None:
    assert error_kind(error) == kind


@pytest.mark.parametrize(("value", "written"), [
    (None, "n/a"),  # not reported
    (0, "0"),
    (999, "999"),
    (1538, "1,538"),
    (1_234_567, "1,234,567"),
])
def test_count_separates_thousands_and_says_when_not_reported(value: int | None, written: str) -> None:
    assert count(value) == written


@pytest.mark.parametrize(("ratio", "written"), [
    (None, "n/a"),
    (0.0, "0.0%"),
    (1.0, "100.0%"),
    (0.8571, "85.7%"),
    (0.99999, "100.0%"),  # one decimal
    (0.0004, "0.0%"),
])
def test_percent_has_one_decimal(ratio: float | None, written: str) -> None:
    assert percent(ratio) == written
