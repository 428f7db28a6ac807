"""Claude Code's billing block, left out of the fingerprint, the lineage and the prefix digests by one rule."""

from __future__ import annotations

import pytest

from cachepin.request.dialects import Dialect
from cachepin.request.prefix import prefix_blocks
from cachepin.request.session import fingerprint
from cachepin.request.snapshot import Snapshot
from cachepin.request.thread import lineage
from cachepin.request.volatile import is_volatile_system_text
from cachepin.response.usage import Usage
from cachepin.turns.explain import Reason, explain

LONG = "You are Claude Code, an agent for software engineering. " * 80  # above Opus 4.8's 1024-token minimum


def body(billing: str, second_user: str | None = None) -> dict:
    messages: list[dict] = [{"role": "user", "content": "Fix the build."}]
    if second_user:
        messages += [{"role": "assistant", "content": "Done."}, {"role": "user", "content": second_user}]
    return {"model": "claude-opus-4-8", "messages": messages, "system": [
        {"type": "text", "text": f"x-anthropic-billing-header: {billing}"},
        {"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]}


FIRST = "cc_version=2.1.197.2a9; cc_entrypoint=sdk-cli;"
SECOND = "cc_version=2.1.197.2a9; cc_entrypoint=sdk-cli; cch=9f3e1a;"


@pytest.mark.parametrize(("text", "volatile"), [
    (f"x-anthropic-billing-header: {FIRST}", True), (f"  x-anthropic-billing-header: {SECOND}", True),
    ("You are Claude Code.", False), ("See x-anthropic-billing-header: below", False)])
def test_the_rule(text: str, volatile: bool) -> None:
    assert is_volatile_system_text(text) is volatile


def test_fingerprint_lineage_and_digests_ignore_it() -> None:
    one, other = body(FIRST), body(SECOND)
    assert fingerprint(one, Dialect.ANTHROPIC) == fingerprint(other, Dialect.ANTHROPIC)
    assert lineage(one, Dialect.ANTHROPIC, "claude-opus-4-8") == lineage(other, Dialect.ANTHROPIC, "claude-opus-4-8")
    assert [b.digest for b in prefix_blocks(Dialect.ANTHROPIC, one)] == \
        [b.digest for b in prefix_blocks(Dialect.ANTHROPIC, other)]


def test_a_miss_after_a_changed_billing_block_is_not_blamed_on_it() -> None:
    """Against the first-party API every request has its own cch=: the reason must name the real cause."""
    previous = Snapshot.from_request(Dialect.ANTHROPIC, body(FIRST), at=0.0)
    current = Snapshot.from_request(Dialect.ANTHROPIC, body(SECOND, "And the tests?"), at=10.0)
    found = explain(previous, current, Usage("anthropic", "claude-opus-4-8", 20, 900, 0, 5))
    assert found is not None and found.reason is Reason.ROUTING
