"""A turn reads back every figure it was given, exactly, and compares and prints by its fields."""

from __future__ import annotations

import uuid

import pytest

from cachepin.turns.explain import Explanation, Reason
from cachepin.turns.turn import Turn, Verdict

FULL = dict(index=3, started_at=1_700_000_000.123456, status=200, stream=True, verdict=Verdict.HIT,
            provider="anthropic", model="claude-sonnet-4-5-20250929", requested_model="claude-sonnet-4-5",
            input_tokens=0, cache_creation_input_tokens=1538, cache_read_input_tokens=2**40, output_tokens=85,
            cache_creation_5m=1538, cache_creation_1h=None, ttft_ms=412.625, duration_ms=None, error=None,
            miss=None)


@pytest.mark.parametrize("flow_id", [str(uuid.uuid4()), "f", "flow-0", str(uuid.uuid4()).upper(),
                                     "{12345678-1234-5678-1234-567812345678}", uuid.uuid4().hex, ""])
def test_a_turn_reads_back_what_it_was_given(flow_id: str) -> None:
    turn = Turn(flow_id=flow_id, **FULL)
    assert turn.flow_id == flow_id
    for name, value in FULL.items():
        assert getattr(turn, name) == value and type(getattr(turn, name)) is type(value), name


@pytest.mark.parametrize("odd", [{"cache_read_input_tokens": 2**70}, {"input_tokens": True}, {"started_at": 7},
                                 {"ttft_ms": float("nan")}, {"output_tokens": -1}])
def test_values_that_do_not_pack_exactly_are_kept_as_they_came(odd: dict) -> None:
    turn = Turn(flow_id="f", **{**FULL, **odd})
    ((name, value),) = odd.items()
    got = getattr(turn, name)
    assert got is value or got == value and type(got) is type(value)
    assert turn.cache_creation_input_tokens == 1538


def test_turns_compare_and_print_by_their_fields() -> None:
    flow_id = str(uuid.uuid4())
    turn = Turn(flow_id=flow_id, **FULL)
    assert turn == Turn(flow_id=flow_id, **FULL)
    assert turn != Turn(flow_id=flow_id, **{**FULL, "output_tokens": 86})
    assert f"flow_id='{flow_id}'" in repr(turn) and "cache_read_input_tokens=1099511627776" in repr(turn)
    miss = Explanation(Reason.ROUTING, "later", {})
    turn.miss = miss
    assert turn.miss is miss
