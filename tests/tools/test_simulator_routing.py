"""The simulator's routing: a session key pins an account by a stable hash, anything else goes round-robin or at
seeded random."""

from __future__ import annotations

import pytest
from simulator_support import sha256_account

from cachepin_tools.simulator.routing import Router


@pytest.mark.parametrize(
    ("headers", "body", "via", "key"),
    [
        ({"X-Session-Id": "ses_a"}, {}, "x-session-id", "ses_a"),
        ({"x-session-id": "ses_a"}, {}, "x-session-id", "ses_a"),
        ({"X-SESSION-AFFINITY": "ses_b"}, {}, "x-session-affinity", "ses_b"),
        ({"x-session-affinity": "ses_b", "X-Session-Id": "ses_a"}, {}, "x-session-id", "ses_a"),
        ({"X-Session-Id": "", "x-session-affinity": "ses_b"}, {}, "x-session-affinity", "ses_b"),
        ({"X-Session-Id": "ses_a"}, {"prompt_cache_key": "pck"}, "x-session-id", "ses_a"),
        ({}, {"prompt_cache_key": "pck"}, "prompt_cache_key", "pck"),
    ],
)
def test_routing_by_session_key(headers: dict, body: dict, via: str, key: str) -> None:
    route = Router(3).route(headers, body)
    assert (route.via, route.account) == (via, sha256_account(key))
    assert route.session == (key if via != "prompt_cache_key" else None)


@pytest.mark.parametrize("accounts", [1, 2, 3, 7])
def test_session_keys_are_sticky_and_spread(accounts: int) -> None:
    keys = [f"ses_{i}" for i in range(200)]
    first = [Router(accounts).route({"X-Session-Id": k}, {}).account for k in keys]
    again = [Router(accounts).route({}, {"prompt_cache_key": k}).account for k in keys]
    assert first == again == [sha256_account(k, accounts) for k in keys]
    assert set(first) == set(range(accounts))


@pytest.mark.parametrize("accounts", [1, 3, 4])
def test_without_a_session_key_requests_go_round_robin(accounts: int) -> None:
    router = Router(accounts)
    routes = [router.route({"x-other": "1"}, {"prompt_cache_key": ""}) for _ in range(2 * accounts)]
    assert [r.account for r in routes] == list(range(accounts)) * 2
    assert {r.via for r in routes} == {"round-robin"}


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_with_a_seed_requests_without_a_key_go_to_reproducible_random_accounts(seed: int) -> None:
    def picks() -> list[int]:
        router = Router(3, seed)
        return [router.route({}, {}).account for _ in range(60)]

    assert picks() == picks()
    assert set(picks()) == {0, 1, 2}
    assert Router(3, seed).route({}, {}).via == "random"
