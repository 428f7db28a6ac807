"""The sessions seen: new once, known after, the least recently seen forgotten first."""

from __future__ import annotations

import pytest

from cachepin.request.seen import SeenSessions


@pytest.mark.parametrize(("sessions", "new"), [
    (["a", "a", "b", "a", "b"], [True, False, True, False, False]),
    (["a", "b", "c", "a"], [True, True, True, True]),  # a was forgotten for c
    (["a", "b", "a", "c", "a", "b"], [True, True, False, True, False, True]),  # seeing a again kept it, not b
])
def test_a_session_is_new_once_until_forgotten(sessions: list[str], new: list[bool]) -> None:
    seen = SeenSessions(limit=2)
    assert [seen.add(session) for session in sessions] == new
