"""What the audit's option values mean together: the explainer they size and tune, the gates a request is read
for."""

from __future__ import annotations

import pytest
from bodies import anthropic_body
from snapshots import snap

from cachepin import settings
from cachepin.response.usage import Usage
from cachepin.turns.explain import Reason


def usage(read: int) -> Usage:
    return Usage("anthropic", "claude-sonnet-4-5", 20, 500, read, 80)


@pytest.mark.parametrize(("max_sessions", "others", "remembered"), [
    (1, 1, True),  # two sessions' requests for one session of the ledger: a main and a side model each
    (1, 2, False),
    (3, 5, True),
    (3, 6, False),
    (0, 200, True),  # 0: unlimited
])
def test_the_explainer_remembers_two_requests_a_session_of_the_ledger(max_sessions: int, others: int,
                                                                      remembered: bool) -> None:
    explainer = settings.explainer("1", [], max_sessions)
    explainer.observe("a", snap(anthropic_body(1), 0.0), usage(0))
    for n in range(others):
        explainer.observe(f"other-{n}", snap(anthropic_body(1), 0.0), usage(0))
    found = explainer.observe("a", snap(anthropic_body(2), 1.0), usage(0))
    assert (found is not None) is remembered


@pytest.mark.parametrize(("ttl_scale", "reason"), [("1", Reason.ROUTING), ("0.01", Reason.TTL_EXPIRED)])
def test_the_explainer_takes_the_options_text(ttl_scale: str, reason: Reason) -> None:
    explainer = settings.explainer(ttl_scale, ["claude-sonnet-4-5=10"], 0)
    explainer.observe("s", snap(anthropic_body(1, instructions=1), 0.0), usage(0))
    found = explainer.observe("s", snap(anthropic_body(2, instructions=1), 10.0), usage(0))
    assert found is not None and found.reason is reason


@pytest.mark.parametrize(("expect", "min_hit", "judged"), [
    ("off", 0, False),
    ("warm", 0, True),
    ("off", 1, True),
    ("warm", 80, True),
])
def test_a_request_is_judged_when_a_gate_is_set(expect: str, min_hit: int, judged: bool) -> None:
    assert settings.judged(expect, min_hit) is judged
