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


ANTHROPIC, OPENAI = "cache_control", "prompt_cache_breakpoint"


@pytest.mark.parametrize(
    ("body", "dialect", "entries", "marker", "explicit"),
    [
        (anthropic_body(2), Dialect.ANTHROPIC, [("system[1]", 300.0), ("messages[2].content[0]", 300.0)], ANTHROPIC,
         True),
        (
            anthropic_body(2, ttl="1h"),
            Dialect.ANTHROPIC,
            [("system[1]", 3600.0), ("messages[2].content[0]", 3600.0)],
            ANTHROPIC,
            True,
        ),
        (
            anthropic_body(2, ttl="5m", system_ttl="1h"),
            Dialect.ANTHROPIC,
            [("system[1]", 3600.0), ("messages[2].content[0]", 300.0)],
            ANTHROPIC,
            True,
        ),
        (anthropic_body(2, marked=False), Dialect.ANTHROPIC, [], ANTHROPIC, True),
        (
            anthropic_body(2, marked=False, automatic={"type": "ephemeral", "ttl": "1h"}),
            Dialect.ANTHROPIC,
            [("messages[2].content[0]", 3600.0)],
            ANTHROPIC,
            True,
        ),
        (anthropic_body(2, marked=False), Dialect.BEDROCK_INVOKE, [], ANTHROPIC, True),
        (openai_body(2), Dialect.OPENAI_CHAT, [("messages[3].content", None)], "", False),  # the model's default
        (
            openai_body(2, prompt_cache_retention="24h"),
            Dialect.OPENAI_CHAT,
            [("messages[3].content", 86400.0)],
            "",
            False,
        ),
        (openai_body(2, prompt_cache_retention="in_memory"), Dialect.OPENAI_CHAT, [("messages[3].content", 300.0)],
         "", False),
        ({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}, Dialect.BEDROCK_CONVERSE, [], "", False),
    ],
    ids=["5m", "1h", "mixed", "unmarked", "automatic-1h", "bedrock-invoke", "openai", "openai-24h", "openai-in-memory",
         "converse"],
)
def test_snapshot_entries(
    body: Body, dialect: Dialect, entries: list[tuple[str, float | None]], marker: str, explicit: bool
) -> None:
    snapshot = snap(body, dialect=dialect)
    assert [(snapshot.path(index), ttl) for index, ttl in snapshot.entries] == entries
    assert (snapshot.marker, snapshot.explicit) == (marker, explicit)
    last = entries[-1][0] if entries else None
    assert snapshot.cached_tokens == (through(snapshot, last) if last else 0)


def breakpoint_part(text: str, ttl: str | None = None, kind: str = "text") -> dict:
    """A content part with OpenAI's explicit breakpoint (GPT-5.6+), optionally with a TTL of its own."""
    marker = {"mode": "explicit", **({"ttl": ttl} if ttl else {})}
    return {"type": kind, "text": f"{SECRET} {text}", "prompt_cache_breakpoint": marker}


def chat_with_breakpoints(breakpoints: int, **options: object) -> Body:
    """A GPT-5.6 Chat Completions body with ``breakpoints`` explicit breakpoints, on the system message and on
    user questions, then the newest question, unmarked."""
    rules = breakpoint_part("rules " * 300) if breakpoints else {"type": "text", "text": "rules " * 300}
    messages: list[dict] = [{"role": "system", "content": [rules]}]
    for i in range(breakpoints - 1):
        messages.append({"role": "user", "content": [breakpoint_part(f"question {i}? " * 20)]})
    messages.append({"role": "user", "content": [{"type": "text", "text": f"{SECRET} the latest question?"}]})
    return {"model": "gpt-5.6", "messages": messages, **options}


@pytest.mark.parametrize(
    ("body", "entries"),
    [
        # the implicit breakpoint on the newest message (the request's TTL, else the model's default) and the
        # explicit ones, each with its own TTL or the request's
        (chat_with_breakpoints(1), [("messages[0].content[0]", None), ("messages[1].content[0]", None)]),
        (chat_with_breakpoints(1, prompt_cache_options={"ttl": "12h"}),
         [("messages[0].content[0]", 43200.0), ("messages[1].content[0]", 43200.0)]),
        (chat_with_breakpoints(1, prompt_cache_options={"mode": "explicit", "ttl": "30m"}),
         [("messages[0].content[0]", 1800.0)]),  # no implicit breakpoint
        (chat_with_breakpoints(0, prompt_cache_options={"mode": "explicit"}), []),  # nothing to cache at
        (chat_with_breakpoints(0, prompt_cache_options={"mode": "implicit"}), [("messages[1].content[0]", None)]),
        # a request writes at most four breakpoints, the implicit one included: the latest explicit ones count
        (chat_with_breakpoints(5), [(f"messages[{i}].content[0]", None) for i in (2, 3, 4, 5)]),
        (chat_with_breakpoints(5, prompt_cache_options={"mode": "explicit"}),
         [(f"messages[{i}].content[0]", None) for i in (1, 2, 3, 4)]),
    ],
    ids=["implicit-and-explicit", "request-ttl", "explicit-mode", "explicit-mode-unmarked", "implicit-mode",
         "latest-three", "latest-four"],
)
def test_openai_breakpoints(body: Body, entries: list[tuple[str, float | None]]) -> None:
    snapshot = snap(body, dialect=Dialect.OPENAI_CHAT)
    assert [(snapshot.path(index), ttl) for index, ttl in snapshot.entries] == entries
    assert (snapshot.marker, snapshot.explicit) == (OPENAI, True)


def test_an_openai_breakpoint_ttl_beats_the_requests() -> None:
    body = {"model": "gpt-5.6", "prompt_cache_options": {"ttl": "30m"}, "input": [
        {"role": "developer", "content": [breakpoint_part("rules " * 300, ttl="12h", kind="input_text")]},
        {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
    ]}
    snapshot = snap(body, dialect=Dialect.OPENAI_RESPONSES)
    assert [(snapshot.path(index), ttl) for index, ttl in snapshot.entries] == [
        ("input[0].content[0]", 43200.0), ("input[1].content[0]", 1800.0)]


def test_moving_an_openai_breakpoint_keeps_the_digests() -> None:
    """The marker is not content: a client that moves it to the newest message changes nothing cached."""
    marked = chat_with_breakpoints(2)
    plain = chat_with_breakpoints(2)
    for message in plain["messages"]:
        for part in message["content"]:
            part.pop("prompt_cache_breakpoint", None)
    assert snap(marked, dialect=Dialect.OPENAI_CHAT).digests == snap(plain, dialect=Dialect.OPENAI_CHAT).digests


def test_moving_a_breakpoint_keeps_the_digests() -> None:
    """Claude Code moves its breakpoint to the newest message; the cached content is the same."""
    prev = anthropic_body(2)
    cur = anthropic_body(3)
    assert snap(cur).digests.startswith(snap(prev).digests)


@pytest.mark.parametrize(
    "extra",
    [{"prompt_cache_options": {"ttl": ["30m"], "mode": 3}}, {"prompt_cache_retention": {"24h": True}},
     {"prompt_cache_options": {"ttl": "1h"}, "prompt_cache_retention": ["24h"]}],
    ids=["options", "retention", "anthropic-ttl"],
)
def test_odd_openai_cache_options_are_the_models_default(extra: Body) -> None:
    """Any JSON a client sends in these fields: a value that names no TTL leaves the model's default."""
    snapshot = snap(openai_body(2, **extra), dialect=Dialect.OPENAI_CHAT)
    assert [(snapshot.path(index), ttl) for index, ttl in snapshot.entries] == [("messages[3].content", None)]
