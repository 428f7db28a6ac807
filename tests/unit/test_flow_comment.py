"""mitmweb's comment: the verdict and figures first, the session once, other comments kept."""

from __future__ import annotations

import pytest

from cachepin.response.diagnostics import Diagnosis
from cachepin.turns.explain import Explanation, Reason
from cachepin.turns.turn import Turn, Verdict
from cachepin.views.flow_comment import inject_note, turn_comment, with_turn

SID = "3f2a9c1e-0000-4000-8000-000000000000"


def turn(verdict: Verdict, **figures: object) -> Turn:
    return Turn(index=3, flow_id="f", started_at=1.0, status=figures.pop("status", 200), stream=True,  # type: ignore[arg-type]
                verdict=verdict, thread="main", **figures)  # type: ignore[arg-type]


@pytest.mark.parametrize(("made", "comment"), [
    (turn(Verdict.HIT, cache_read_input_tokens=17354, cache_creation_input_tokens=1641, input_tokens=12),
     "hit · read 17,354 · wrote 1,641 · uncached 12 · turn 3 · thread main · session 3f2a9c1e-000… (header)"),
    (turn(Verdict.NONE), "none · read n/a · wrote n/a · uncached n/a · turn 3 · thread main · "
                         "session 3f2a9c1e-000… (header)"),
    (turn(Verdict.ERROR, status=529, error="overloaded_error"),
     "error · status 529 overloaded_error · turn 3 · thread main · session 3f2a9c1e-000… (header)"),
    (turn(Verdict.MISS, cache_read_input_tokens=0, cache_creation_input_tokens=1600, input_tokens=12,
          miss=Explanation(Reason.PREFIX_CHANGED, "tools[11] changed\nat turn 3", {}),
          provider_diagnosis=Diagnosis("tools_changed")),
     "miss · read 0 · wrote 1,600 · uncached 12 · turn 3 · thread main · session 3f2a9c1e-000… (header) · "
     "prefix_changed: tools[11] changed at turn 3 · provider: tools_changed"),
])
def test_the_comment_leads_with_the_verdict_on_one_line(made: Turn, comment: str) -> None:
    assert turn_comment(SID, "header", made) == comment


@pytest.mark.parametrize(("before", "after"), [
    ("", "TURN"),
    (inject_note(SID, "header"), "TURN"),
    (f"mine\n{inject_note(SID, 'header')}", "mine\nTURN"),
    (f"mine\n{inject_note('other', 'header')}", f"mine\n{inject_note('other', 'header')}\nTURN"),
    ("mine\n\nalso mine", "mine\nalso mine\nTURN"),
])
def test_only_the_inject_note_of_this_session_is_replaced(before: str, after: str) -> None:
    assert with_turn(before, "TURN", inject_note(SID, "header")) == after


def test_without_the_inject_addon_nothing_is_replaced() -> None:
    assert with_turn(inject_note(SID, "header"), "TURN", None) == f"{inject_note(SID, 'header')}\nTURN"
