"""Responses chained by ``previous_response_id``: each response id remembered with its session, the oldest forgotten."""

from __future__ import annotations

import pytest

from cachepin.request.chains import LIMIT, ResponseChains

SOURCE = "header:x-session-id"


def test_a_request_continuing_a_known_response_gets_its_session() -> None:
    chains = ResponseChains()
    chains.learn("resp_1", "s1", "fingerprint")
    assert chains.session_of({"previous_response_id": "resp_1", "input": "Now?"}) == "s1"
    assert len(chains) == 1


@pytest.mark.parametrize("body", [
    {},  # starts a conversation
    {"previous_response_id": "resp_unseen"},  # another replica saw it, or a restart forgot it
    {"previous_response_id": None},
    {"previous_response_id": 7},  # not an id
    {"previous_response_id": ["resp_1"]},  # unhashable: no lookup, no crash
    {"previous_response_id": {"id": "resp_1"}},
])
def test_anything_else_has_no_session(body: dict) -> None:
    chains = ResponseChains()
    chains.learn("resp_1", "s1", SOURCE)
    assert chains.session_of(body) is None


@pytest.mark.parametrize("response_id", [None, ""])
def test_a_response_without_an_id_is_not_remembered(response_id: str | None) -> None:
    chains = ResponseChains()
    chains.learn(response_id, "s1", SOURCE)
    assert len(chains) == 0
    assert chains.session_of({"previous_response_id": ""}) is None


def test_the_oldest_response_is_forgotten_first() -> None:
    chains = ResponseChains(limit=2)
    for number in (1, 2, 3):
        chains.learn(f"resp_{number}", f"s{number}", SOURCE)
    assert len(chains) == 2
    assert [chains.session_of({"previous_response_id": f"resp_{n}"}) for n in (1, 2, 3)] == [None, "s2", "s3"]


def test_learning_a_response_again_makes_it_the_newest() -> None:
    """A response id seen again (a replay, a retried turn) is kept as recently used, and its session updated."""
    chains = ResponseChains(limit=2)
    chains.learn("resp_1", "s1", SOURCE)
    chains.learn("resp_2", "s2", SOURCE)
    chains.learn("resp_1", "s1-again", SOURCE)
    chains.learn("resp_3", "s3", SOURCE)  # over the limit: resp_2 is now the oldest
    assert [chains.session_of({"previous_response_id": f"resp_{n}"}) for n in (1, 2, 3)] == ["s1-again", None, "s3"]


def test_the_default_limit() -> None:
    assert LIMIT == 100_000
    chains = ResponseChains()
    for number in range(LIMIT + 5):
        chains.learn(f"resp_{number}", "s", SOURCE)
    assert len(chains) == LIMIT
    assert chains.session_of({"previous_response_id": "resp_4"}) is None
    assert chains.session_of({"previous_response_id": "resp_5"}) == "s"
