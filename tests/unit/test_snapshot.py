"""The snapshot: a compact, text-free summary of a request's prefix, the explainer's only memory of it."""

from __future__ import annotations

import re

import pytest
from bodies import SECRET, Body, anthropic_body, openai_body
from snapshots import snap, through

from cachepin.request.dialects import Dialect


@pytest.mark.parametrize(
    ("body", "dialect"),
    [
        (anthropic_body(3), Dialect.ANTHROPIC),
        (anthropic_body(3, automatic={"type": "ephemeral"}), Dialect.ANTHROPIC),
        (openai_body(3), Dialect.OPENAI_CHAT),
        ({"model": "gpt-5", "instructions": f"{SECRET} be brief", "input": f"{SECRET} hi"}, Dialect.OPENAI_RESPONSES),
        ({"contents": [{"role": "user", "parts": [{"text": f"{SECRET} hi"}]}]}, Dialect.GEMINI),
    ],
    ids=["anthropic", "anthropic-automatic", "openai-chat", "openai-responses", "gemini"],
)
def test_snapshot_is_compact_and_text_free(body: Body, dialect: Dialect) -> None:
    snapshot = snap(body, dialect=dialect)
    assert len(snapshot) > 0
    assert len(snapshot.digests) == 16 * len(snapshot)
    assert list(snapshot.ends) == sorted(snapshot.ends)
    assert re.fullmatch(r"[\w\[\].\n]+", snapshot.paths)
    assert SECRET.encode() not in snapshot.digests
    assert SECRET not in repr(snapshot)


@pytest.mark.parametrize(
    ("body", "dialect", "entries", "marked", "explicit"),
    [
        (anthropic_body(2), Dialect.ANTHROPIC, [("system[1]", 300.0), ("messages[2].content[0]", 300.0)], True, True),
        (
            anthropic_body(2, ttl="1h"),
            Dialect.ANTHROPIC,
            [("system[1]", 3600.0), ("messages[2].content[0]", 3600.0)],
            True,
            True,
        ),
        (
            anthropic_body(2, ttl="5m", system_ttl="1h"),
            Dialect.ANTHROPIC,
            [("system[1]", 3600.0), ("messages[2].content[0]", 300.0)],
            True,
            True,
        ),
        (anthropic_body(2, marked=False), Dialect.ANTHROPIC, [], False, True),
        (
            anthropic_body(2, marked=False, automatic={"type": "ephemeral", "ttl": "1h"}),
            Dialect.ANTHROPIC,
            [("messages[2].content[0]", 3600.0)],
            True,
            True,
        ),
        (anthropic_body(2, marked=False), Dialect.BEDROCK_INVOKE, [], False, True),
        (openai_body(2), Dialect.OPENAI_CHAT, [("messages[3].content", 300.0)], False, False),
        (
            openai_body(2, prompt_cache_retention="24h"),
            Dialect.OPENAI_CHAT,
            [("messages[3].content", 86400.0)],
            False,
            False,
        ),
        ({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}, Dialect.BEDROCK_CONVERSE, [], False, False),
    ],
    ids=["5m", "1h", "mixed", "unmarked", "automatic-1h", "bedrock-invoke", "openai", "openai-24h", "converse"],
)
def test_snapshot_entries(
    body: Body, dialect: Dialect, entries: list[tuple[str, float]], marked: bool, explicit: bool
) -> None:
    snapshot = snap(body, dialect=dialect)
    assert [(snapshot.path(index), ttl) for index, ttl in snapshot.entries] == entries
    assert (snapshot.marked, snapshot.explicit) == (marked, explicit)
    last = entries[-1][0] if entries else None
    assert snapshot.cached_tokens == (through(snapshot, last) if last else 0)


def test_moving_a_breakpoint_keeps_the_digests() -> None:
    """Claude Code moves its breakpoint to the newest message; the cached content is the same."""
    prev = anthropic_body(2)
    cur = anthropic_body(3)
    assert snap(cur).digests.startswith(snap(prev).digests)
