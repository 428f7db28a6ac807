"""State parked across a hot reload: given by the old addon in ``done()``, taken once by the new one in ``load()``."""

from __future__ import annotations

from cachepin import handover


class Master:
    """Stands for ``ctx.master``: the adapters key by (id(master), addon name), so each test has its own keys."""


def test_what_is_given_is_taken_back_once_and_the_same_object() -> None:
    key, state = (id(Master()), "cachepin_audit"), {"ledger": ["turn"]}
    handover.give(key, state)
    assert handover.take(key) is state
    assert handover.take(key) is None  # taken: a second load starts afresh


def test_nothing_given_is_none() -> None:
    assert handover.take((id(Master()), "cachepin_inject")) is None


def test_keys_keep_the_states_apart() -> None:
    """Two masters, or two addons of one master, never take each other's state."""
    one, two = Master(), Master()
    handover.give((id(one), "cachepin_audit"), "audit of master 1")
    handover.give((id(two), "cachepin_audit"), "audit of master 2")
    handover.give((id(one), "cachepin_inject"), "inject of master 1")
    assert handover.take((id(two), "cachepin_audit")) == "audit of master 2"
    assert handover.take((id(one), "cachepin_inject")) == "inject of master 1"
    assert handover.take((id(one), "cachepin_audit")) == "audit of master 1"


def test_a_later_give_replaces_the_state_not_taken() -> None:
    key = (id(Master()), "cachepin_audit")
    handover.give(key, "first")
    handover.give(key, "second")
    assert handover.take(key) == "second"
    assert handover.take(key) is None
