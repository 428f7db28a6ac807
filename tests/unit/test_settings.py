"""What the audit's option values make together: the explainer they size and tune, and which of them start a new
one."""

from __future__ import annotations

import pytest
from bodies import anthropic_body
from snapshots import snap

from cachepin import options, settings
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


@pytest.mark.parametrize("changed", sorted(settings.EXPLAINER_OPTIONS))
def test_the_options_that_start_a_new_explainer_are_the_audits(changed: str) -> None:
    assert changed in {option.name for option in options.AUDIT}


def test_every_option_the_explainer_is_built_from_starts_a_new_one() -> None:
    built_from = {"cache_ttl_scale", "cache_minimums", "cache_max_sessions"}  # settings.explainer's parameters
    assert built_from | {"cache_explain"} == settings.EXPLAINER_OPTIONS
