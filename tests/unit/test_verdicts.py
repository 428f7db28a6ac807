"""Verdicts of single turns, and how the failure messages shorten a session id."""

from __future__ import annotations

import pytest
from ledgers import usage

from cachepin.response.usage import Usage
from cachepin.turns.turn import Verdict
from cachepin.turns.verdicts import short_id, verdict_for


@pytest.mark.parametrize(
    ("status", "error", "reported", "first", "expected"),
    [
        (200, None, usage(read=900), True, Verdict.HIT),
        (200, None, usage(read=900), False, Verdict.HIT),
        (200, None, usage(read=1), False, Verdict.HIT),
        (200, None, usage(read=0), True, Verdict.COLD),
        (200, None, usage(read=0, creation=1538), True, Verdict.COLD),
        (200, None, usage(read=0), False, Verdict.MISS),
        (200, None, usage(read=0, creation=None), False, Verdict.MISS),
        (200, None, None, True, Verdict.NONE),
        (200, None, None, False, Verdict.NONE),
        (200, None, usage(read=None), False, Verdict.NONE),
        (200, None, usage(read=None, creation=None), True, Verdict.NONE),
        (400, None, None, True, Verdict.ERROR),
        (429, None, None, False, Verdict.ERROR),
        (529, None, usage(read=900), False, Verdict.ERROR),
        (200, "stream cut", usage(read=900), False, Verdict.ERROR),
        (200, "", None, True, Verdict.ERROR),
        (399, None, usage(read=0), False, Verdict.MISS),
    ],
)
def test_verdict_for(status: int, error: str | None, reported: Usage | None, first: bool, expected: Verdict) -> None:
    assert verdict_for(status=status, error=error, usage=reported, first=first) is expected


@pytest.mark.parametrize(
    ("session_id", "short"),
    [("", ""), ("abc", "abc"), ("123456789012", "123456789012"), ("1234567890123", "123456789012…")],
)
def test_short_id(session_id: str, short: str) -> None:
    assert short_id(session_id) == short
