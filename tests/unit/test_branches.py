"""Branches: conversations of one fingerprinted session that start alike are told apart by their histories."""

from __future__ import annotations

import pytest

from cachepin.audit import Audit, RequestFacts
from cachepin.request.branches import Branches, extends
from cachepin.request.dialects import Dialect
from cachepin.request.snapshot import Snapshot
from cachepin.request.thread import Position, Thread, thread_of
from cachepin.response.extract import Extracted
from cachepin.response.usage import Usage

SYSTEM = "You review code."


def blocks(*names: str) -> bytes:
    return b"".join(name.encode().ljust(16, b".") for name in names)


@pytest.mark.parametrize("latest, request_, extended", [
    (blocks("s", "u1"), blocks("s", "u1", "a1", "u2"), True),  # the next turn
    (blocks("s", "u1"), blocks("s", "u1"), True),  # a retry
    (blocks("s", "u1"), blocks("s", "u1-with-a-reminder", "a1", "u2"), True),  # the last block rewritten
    (blocks("s", "u1", "a1", "u2"), blocks("s", "u1", "b1", "u2"), False),  # another reply: another history
    (blocks("s", "u1", "a1", "u2"), blocks("s", "u1"), False),  # back to the start
    (b"", blocks("s"), True),
])
def test_a_request_extends_the_latest_one_when_all_but_its_last_block_stayed(latest: bytes, request_: bytes,
                                                                             extended: bool) -> None:
    assert extends(request_, latest) is extended


def test_each_history_is_a_branch_and_a_request_goes_to_the_one_it_extends() -> None:
    branches, main = Branches(), Thread("ln_1", "lineage")
    seen = [branches.thread_for("fp", main, "m", digests).thread_id for digests in (
        blocks("s", "u1"),  # A1
        blocks("s", "u1"),  # B1: the same start, the same branch
        blocks("s", "u1", "a1", "u2"),  # A2
        blocks("s", "u1", "b1", "v2"),  # B2: parts from A2
        blocks("s", "u1", "a1", "u2", "a2", "u3"),  # A3
        blocks("s", "u1", "b1", "v2", "b2", "v3"),  # B3
        blocks("s", "u1", "c1", "w2"),  # C2: a third history
    )]
    assert seen == ["ln_1", "ln_1", "ln_1", "ln_1.2", "ln_1", "ln_1.2", "ln_1.3"]
    assert branches.thread_for("fp", main, "other-model", blocks("s", "u1", "b1", "v2")).thread_id == "ln_1"


def test_the_heads_kept_are_bounded() -> None:
    branches = Branches(max_heads=3)
    for n in range(10):
        branches.thread_for(f"fp{n}", Thread("ln", "lineage"), "m", blocks("s"))
    assert len(branches._latest) == 3


def _body(*turns: str) -> dict:
    """An Anthropic request whose history is ``turns``, user and assistant in turn."""
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": text} for i, text in enumerate(turns)]
    return {"model": "claude-sonnet-4-6", "max_tokens": 64, "system": SYSTEM, "messages": messages}


@pytest.mark.parametrize("source, verdicts", [
    ("fingerprint", ["cold", "hit", "hit", "cold", "hit"]),  # B2 starts B's own cache: cold
    ("header:x-session-id", ["cold", "hit", "hit", "miss", "hit"]),  # named by the client: one conversation
])
def test_a_conversation_that_parts_from_another_opens_a_branch_only_in_a_fingerprinted_session(
        source: str, verdicts: list[str]) -> None:
    audit = Audit()
    audit.ledger.expect = type(audit.ledger.expect)("warm")
    plan = [(_body("Review this."), 0), (_body("Review this."), 1538),  # A1, then B1: the same start
            (_body("Review this.", "A says", "More?"), 1538),  # A2
            (_body("Review this.", "B says", "Other?"), 0),  # B2: its history is its own, not cached yet
            (_body("Review this.", "B says", "Other?", "B again", "And?"), 2000)]  # B3
    for n, (body, read) in enumerate(plan):
        position = Position.START if len(body["messages"]) == 1 else Position.CONTINUATION
        facts = RequestFacts("one-start", source, body["model"], Snapshot.from_request(Dialect.ANTHROPIC, body, n),
                             thread_of({}, body, Dialect.ANTHROPIC), position)
        usage = Usage("anthropic", body["model"], 10, 1538 if read == 0 else 0, read, 20)
        audit.record(facts, Extracted(usage), flow_id=f"f{n}", started_at=float(n), status=200, stream=False,
                     first_byte_at=None, ended_at=None)
    session, = audit.ledger.sessions
    assert [turn.verdict.value for turn in session.turns] == verdicts
    assert audit.ledger.ok is (source == "fingerprint")
    sources = [state.source for state in session.threads]
    assert sources == (["lineage", "branch"] if source == "fingerprint" else ["lineage"])
