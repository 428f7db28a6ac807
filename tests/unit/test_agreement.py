"""The provider's diagnosis against cachepin's reason: the mapping of docs/reports.md ("Provider diagnoses"), turn by
turn, and the run's counts."""

from __future__ import annotations

import pytest

from cachepin.response.diagnostics import Diagnosis
from cachepin.turns.agreement import Agreement, compare
from cachepin.turns.explain import Explanation, Reason
from cachepin.turns.turn import Turn, Verdict


def turn(diagnosis: str | None, reason: Reason | None = None, path: str | None = None, *,
         verdict: Verdict = Verdict.MISS, opens: bool = False, position: str | None = "continuation") -> Turn:
    miss = None if reason is None else Explanation(reason, "detail", {"path": path} if path else {})
    return Turn(index=2, flow_id="f", started_at=0.0, status=200, stream=False, verdict=verdict, miss=miss,
                opens=opens, position=position, provider_diagnosis=None if diagnosis is None else Diagnosis(diagnosis))


PREFIX = Reason.PREFIX_CHANGED


@pytest.mark.parametrize(("case", "judgement", "ours", "same_location"), [
    # a change in one part of the prompt: a prefix change, and where
    (turn("tools_changed", PREFIX, "tools[1]"), "agree", "prefix_changed", True),
    (turn("system_changed", PREFIX, "system[0]"), "agree", "prefix_changed", True),
    (turn("messages_changed", PREFIX, "messages[2].content[0]"), "agree", "prefix_changed", True),
    (turn("input_changed", PREFIX, "instructions"), "agree", "prefix_changed", True),
    (turn("input_changed", PREFIX, "input[3].content[0]"), "agree", "prefix_changed", True),
    (turn("context_compacted", PREFIX, "input[0]"), "agree", "prefix_changed", True),
    (turn("system_changed", PREFIX, "tools[0]"), "agree", "prefix_changed", False),  # same story, another place
    (turn("tools_changed", Reason.ROUTING), "disagree", "routing", False),
    (turn("tools_changed", verdict=Verdict.HIT), "disagree", "none", False),  # a late change an earlier entry hid
    (turn("messages_changed", opens=True), "agree", "new_thread", False),  # a fingerprinted branch
    # the model: a continuation that opened a thread
    (turn("model_changed", opens=True, verdict=Verdict.COLD), "agree", "new_thread", None),
    (turn("model_changed", PREFIX, "system[0]"), "disagree", "prefix_changed", None),
    # Anthropic: the request matched; anything but a change agrees
    *((turn("no_divergence", reason), "agree", reason.value, None)
      for reason in (Reason.TTL_EXPIRED, Reason.ROUTING, Reason.BELOW_MINIMUM, Reason.NO_BREAKPOINT, Reason.UNKNOWN)),
    (turn("no_divergence", verdict=Verdict.HIT), "agree", "none", None),
    (turn("no_divergence", PREFIX, "system[0]"), "disagree", "prefix_changed", None),
    (turn("no_divergence", opens=True, verdict=Verdict.COLD), "disagree", "new_thread", None),
    # OpenAI
    (turn("cache_hit", verdict=Verdict.HIT), "agree", "none", None),
    (turn("cache_hit", Reason.ROUTING), "disagree", "routing", None),
    (turn("prompt_cache_key_changed", Reason.ROUTING), "agree", "routing", None),
    (turn("reasoning_effort_changed", Reason.UNKNOWN), "agree", "unknown", None),
    (turn("service_tier_changed", Reason.ROUTING), "disagree", "routing", None),  # cachepin cannot see settings
    # nothing was compared, on one side or the other
    *((turn(kind, Reason.ROUTING), "inconclusive", "routing", None)
      for kind in ("opted_in", "pending", "previous_message_not_found", "comparison_response_not_found",
                   "unavailable")),
    (turn("tools_changed"), "inconclusive", "unexplained", None),  # a miss cachepin had nothing to compare with
    (turn("a_future_reason", PREFIX, "tools[0]"), "inconclusive", "prefix_changed", None),
])
def test_each_diagnosis_against_cachepins_reason(case: Turn, judgement: str, ours: str,
                                                  same_location: bool | None) -> None:
    compared = compare(case)
    assert compared is not None
    assert (compared.judgement.value, compared.cachepin, compared.same_location) == (judgement, ours, same_location)


@pytest.mark.parametrize("case", [
    turn(None, Reason.ROUTING),  # no diagnosis
    turn("no_divergence", opens=True, verdict=Verdict.COLD, position="start"),  # the first, opting-in turn
    turn("no_divergence", opens=True, verdict=Verdict.COLD, position=None),
    turn("tools_changed", verdict=Verdict.ERROR),
])
def test_turns_with_nothing_to_judge(case: Turn) -> None:
    assert compare(case) is None


def test_the_run_counts_per_provider_type() -> None:
    agreement = Agreement()
    assert not agreement
    for case in (turn("tools_changed", PREFIX, "tools[1]"), turn("tools_changed", PREFIX, "system[0]"),
                 turn("tools_changed", Reason.ROUTING), turn("pending", Reason.ROUTING),
                 turn("no_divergence", opens=True, verdict=Verdict.COLD, position="start")):
        agreement.add(case)
    assert agreement
    assert agreement.as_dict() == {
        "agree": 2, "disagree": 1, "inconclusive": 1,
        "by_reason": {
            "pending": {"agree": 0, "disagree": 0, "inconclusive": 1, "cachepin": {"routing": 1}},
            "tools_changed": {"agree": 2, "disagree": 1, "inconclusive": 0, "same_location": 1,
                              "cachepin": {"prefix_changed": 2, "routing": 1}},
        },
    }


def test_an_upstream_inventing_types_cannot_grow_the_counts() -> None:
    agreement = Agreement()
    for n in range(100):
        agreement.add(turn(f"reason_{n}", Reason.ROUTING))
    assert len(agreement.by_reason) <= 33
    assert agreement.as_dict()["inconclusive"] == 100
    assert agreement.by_reason["other"].inconclusive == 100 - 32
