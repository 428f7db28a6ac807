"""The per-turn log line: greppable, one line, figures and verdict, never prompt text or error details."""

from __future__ import annotations

import pytest
from ledgers import SID

from cachepin.turns.turn import Turn, Verdict
from cachepin.views.log_line import turn_log_line


@pytest.mark.parametrize(
    ("turn", "expected"),
    [
        (
            Turn(index=2, flow_id="f", started_at=0.0, status=200, stream=True, verdict=Verdict.HIT,
                 model="claude-sonnet-4-5", input_tokens=12, cache_creation_input_tokens=640,
                 cache_read_input_tokens=9000, output_tokens=85, ttft_ms=412.6),  # fmt: skip
            "cachepin session=3f2a9c1e-000… turn=2 model=claude-sonnet-4-5 verdict=hit read=9000 creation=640 "
            "input=12 output=85 ttft_ms=413",
        ),
        (
            Turn(index=1, flow_id="f", started_at=0.0, status=200, stream=False, verdict=Verdict.NONE),
            "cachepin session=3f2a9c1e-000… turn=1 model=- verdict=none read=- creation=- input=- output=-",
        ),
        (
            Turn(index=3, flow_id="f", started_at=0.0, status=529, stream=True, verdict=Verdict.ERROR,
                 model="odd model\nname", ttft_ms=None),  # fmt: skip
            "cachepin session=3f2a9c1e-000… turn=3 model=odd_model_name verdict=error read=- creation=- input=- "
            "output=- status=529",
        ),
        (
            Turn(index=4, flow_id="f", started_at=0.0, status=200, stream=True, verdict=Verdict.ERROR,
                 error="overloaded_error"),  # fmt: skip
            "cachepin session=3f2a9c1e-000… turn=4 model=- verdict=error read=- creation=- input=- "
            "output=- status=200 error=overloaded_error",
        ),
        (
            Turn(index=5, flow_id="f", started_at=0.0, status=0, stream=True, verdict=Verdict.ERROR,
                 error="the prompt was: secret plans"),  # fmt: skip
            "cachepin session=3f2a9c1e-000… turn=5 model=- verdict=error read=- creation=- input=- "
            "output=- status=0",
        ),
    ],
)
def test_turn_log_line(turn: Turn, expected: str) -> None:
    assert turn_log_line(SID, turn) == expected


def test_log_line_keeps_short_session_ids_whole() -> None:
    turn = Turn(index=1, flow_id="f", started_at=0.0, status=200, stream=False, verdict=Verdict.COLD)
    assert turn_log_line("abc", turn).startswith("cachepin session=abc turn=1 ")


def test_the_providers_reason_comes_before_cachepins() -> None:
    """cachepin's reason stays last (its detail may hold anything a model name does); the provider's is a type."""
    from cachepin.response.diagnostics import Diagnosis
    from cachepin.turns.explain import Explanation, Reason

    turn = Turn(index=2, flow_id="f", started_at=0.0, status=200, stream=False, verdict=Verdict.MISS,
                miss=Explanation(Reason.PREFIX_CHANGED, "prefix inserted at tools[1]", {}),
                provider_diagnosis=Diagnosis("tools_changed", 41735))
    assert turn_log_line(SID, turn).endswith(
        "output=- provider_reason=tools_changed reason=prefix_changed (prefix inserted at tools[1])")
