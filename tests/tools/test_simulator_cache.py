"""The simulator's cache model as pure logic, on a clock the test moves: Anthropic's breakpoints, minimums, TTLs and
lookback, OpenAI's automatic 128-token steps, accounts and models that never share an entry."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from simulator_support import CLAUDE, EPHEMERAL, GPT, FakeClock

from cachepin_tools.simulator.cache import CacheControlError, CacheRules, CacheUsage, PromptCache
from cachepin_tools.simulator.prompt import Api

ONE_HOUR = {"type": "ephemeral", "ttl": "1h"}


def text(tokens: int, tag: str) -> str:
    """Text of exactly ``tokens`` estimated tokens (4 characters each), distinct per tag."""
    return f"{tag}:".ljust(4 * tokens, "x")


def part(tokens: int, tag: str, marker: dict | None = None) -> dict:
    block: dict = {"type": "text", "text": text(tokens, tag)}
    if marker is not None:
        block["cache_control"] = marker
    return block


def claude(
    system: list[dict], *messages: tuple[str, list[dict] | str], auto: dict | None = None, model: str = CLAUDE
) -> dict:
    """An Anthropic body; ``auto`` is a top-level cache_control (automatic mode)."""
    body = {"model": model, "max_tokens": 16, "system": system}
    body["messages"] = [{"role": role, "content": content} for role, content in messages]
    if auto is not None:
        body["cache_control"] = auto
    return body


def make_cache(clock: FakeClock | None = None, accounts: int = 3, **rules) -> PromptCache:
    return PromptCache(accounts, CacheRules(**rules), clock or FakeClock())


def run(cache: PromptCache, body: dict, account: int = 0, dialect: Api = Api.ANTHROPIC) -> CacheUsage:
    """One request that completes: plan, then commit."""
    plan = cache.plan(account, dialect, body)
    cache.commit(plan)
    return plan.usage


def counts(usage: CacheUsage) -> tuple[int, int, int]:
    """(read, written, uncached input)."""
    return usage.cache_read_input_tokens, usage.cache_creation_input_tokens, usage.input_tokens


def growing_conversation(turns: int, auto: bool) -> list[dict]:
    """Bodies of successive turns: a 100-token system, then 50-token user and 30-token assistant messages."""
    bodies, history = [], []
    for turn in range(turns):
        if turn:
            history.append(("assistant", [part(30, f"a{turn}")]))
        history.append(("user", [part(50, f"u{turn}")]))
        messages = [(role, [dict(p) for p in content]) for role, content in history]
        if not auto:
            messages[-1][1][-1]["cache_control"] = EPHEMERAL
        bodies.append(claude([part(100, "sys")], *messages, auto=EPHEMERAL if auto else None))
    return bodies


@pytest.mark.parametrize("auto", [True, False], ids=["automatic", "explicit"])
@pytest.mark.parametrize("turns", [1, 2, 5])
def test_each_turn_reads_the_previous_prefix_and_writes_the_new_tail(auto: bool, turns: int) -> None:
    cache = make_cache()
    previous = 0
    for number, body in enumerate(growing_conversation(turns, auto)):
        total = 100 + 50 * (number + 1) + 30 * number
        assert counts(run(cache, body)) == (previous, total - previous, 0)
        previous = total


@pytest.mark.parametrize(
    ("system", "messages", "expected"),
    [
        pytest.param([part(100, "s", EPHEMERAL)], [part(50, "u")], (0, 100, 50), id="system-only"),
        pytest.param([part(100, "s")], [part(50, "u", EPHEMERAL)], (0, 150, 0), id="last-message"),
        pytest.param([part(80, "s1", EPHEMERAL), part(20, "s2")], [part(50, "u")], (0, 80, 70), id="first-block"),
        pytest.param([part(100, "s", EPHEMERAL)], [part(50, "u", EPHEMERAL)], (0, 150, 0), id="two-breakpoints"),
        pytest.param([part(100, "s")], [part(50, "u")], (0, 0, 150), id="no-cache-control"),
    ],
)
def test_breakpoints_decide_what_is_written(system: list[dict], messages: list[dict], expected: tuple) -> None:
    assert counts(run(make_cache(), claude(system, ("user", messages)))) == expected


def test_tools_come_first_in_the_prefix() -> None:
    tool = {"name": "lookup", "description": text(40, "tool"), "input_schema": {"type": "object"}}
    body = claude([part(100, "s", EPHEMERAL)], ("user", [part(50, "u")])) | {"tools": [tool]}
    usage = run(make_cache(), body)
    assert usage.cache_creation_input_tokens > 100 and usage.input_tokens == 50


def test_without_cache_control_nothing_is_ever_read() -> None:
    cache = make_cache()
    body = claude([part(100, "s")], ("user", [part(50, "u")]))
    assert [counts(run(cache, body)) for _ in range(3)] == [(0, 0, 150)] * 3


def test_an_earlier_breakpoint_hits_when_later_blocks_change() -> None:
    cache = make_cache()
    run(cache, claude([part(100, "s", EPHEMERAL)], ("user", [part(50, "first", EPHEMERAL)])))
    assert counts(run(cache, claude([part(100, "s", EPHEMERAL)], ("user", [part(50, "other", EPHEMERAL)])))) == (
        100,
        50,
        0,
    )


def test_a_change_early_in_the_prefix_invalidates_everything_after_it() -> None:
    cache = make_cache()
    run(cache, claude([part(100, "s")], ("user", [part(50, "u", EPHEMERAL)])))
    assert counts(run(cache, claude([part(100, "changed")], ("user", [part(50, "u", EPHEMERAL)])))) == (0, 150, 0)


@pytest.mark.parametrize(
    ("explicit", "auto", "rejected"),
    [(4, False, False), (5, False, True), (3, True, False), (4, True, True), (6, True, True)],
)
def test_more_than_four_breakpoints_is_an_error(explicit: int, auto: bool, rejected: bool) -> None:
    system = [part(20, f"s{i}", EPHEMERAL if i < explicit else None) for i in range(6)]
    body = claude(system, ("user", [part(50, "u")]), auto=EPHEMERAL if auto else None)
    with pytest.raises(CacheControlError, match="maximum of 4") if rejected else contextlib.nullcontext():
        run(make_cache(), body)


def test_a_one_hour_breakpoint_after_a_five_minute_one_is_an_error() -> None:
    body = claude([part(100, "s", EPHEMERAL)], ("user", [part(50, "u", ONE_HOUR)]))
    with pytest.raises(CacheControlError, match="1h"):
        run(make_cache(), body)


def test_creation_is_split_by_the_ttl_of_the_breakpoint_ending_each_stretch() -> None:
    usage = run(make_cache(), claude([part(100, "s", ONE_HOUR)], ("user", [part(50, "u", EPHEMERAL)])))
    assert (usage.cache_creation_1h, usage.cache_creation_5m, usage.cache_creation_input_tokens) == (100, 50, 150)


@pytest.mark.parametrize(
    ("tokens", "minimum", "written"),
    [(63, 64, 0), (64, 64, 64), (1023, 1024, 0), (1024, 1024, 1024), (10, 0, 10)],
)
def test_minimum_cacheable_length(tokens: int, minimum: int, written: int) -> None:
    cache = make_cache(min_tokens=minimum)
    body = claude([part(tokens, "s", EPHEMERAL)], ("user", "hi"))
    assert counts(run(cache, body))[1] == written
    assert counts(run(cache, body))[0] == written  # the second request reads what the first wrote, if anything


def test_a_breakpoint_below_the_minimum_is_skipped_but_a_later_one_counts() -> None:
    body = claude([part(40, "s", EPHEMERAL)], ("user", [part(40, "u", EPHEMERAL)]), ("assistant", [part(5, "a")]))
    assert counts(run(make_cache(min_tokens=64), body)) == (0, 80, 5)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-opus-4-6", 4096),
        ("claude-opus-4-6-20260101", 4096),
        ("claude-opus-4-1", 1024),
        ("claude-sonnet-4-6", 2048),
        ("gpt-5.1", 64),
    ],
)
def test_per_model_minimum_uses_the_longest_matching_prefix(model: str, expected: int) -> None:
    rules = CacheRules(
        min_tokens=64, model_min_tokens={"claude-opus": 4096, "claude-opus-4-1": 1024, "claude-sonnet-4-6": 2048}
    )
    assert rules.minimum_for(model) == expected


def test_per_model_minimum_applies_to_caching() -> None:
    cache = make_cache(model_min_tokens={"claude-opus": 200})
    prompt = [part(150, "s", EPHEMERAL)]
    assert counts(run(cache, claude(prompt, ("user", "hi"), model="claude-opus-4-6")))[1] == 0
    assert counts(run(cache, claude(prompt, ("user", "hi"), model=CLAUDE)))[1] == 150


@pytest.mark.parametrize(
    ("marker", "scale", "elapsed", "hit"),
    [
        (EPHEMERAL, 1.0, 299.0, True),
        (EPHEMERAL, 1.0, 300.0, False),
        (ONE_HOUR, 1.0, 1000.0, True),
        (ONE_HOUR, 1.0, 3599.0, True),
        (ONE_HOUR, 1.0, 3600.0, False),
        (EPHEMERAL, 0.01, 2.9, True),
        (EPHEMERAL, 0.01, 3.0, False),
        (ONE_HOUR, 0.01, 35.0, True),
    ],
)
def test_entries_expire_after_their_ttl(marker: dict, scale: float, elapsed: float, hit: bool) -> None:
    clock = FakeClock()
    cache = make_cache(clock, ttl_scale=scale)
    body = claude([part(100, "s", marker)], ("user", "hi"))
    run(cache, body)
    clock.now += elapsed
    assert counts(run(cache, body))[:2] == ((100, 0) if hit else (0, 100))


@pytest.mark.parametrize(("marker", "ttl"), [(EPHEMERAL, 300.0), (ONE_HOUR, 3600.0)])
def test_a_hit_refreshes_the_ttl(marker: dict, ttl: float) -> None:
    clock = FakeClock()
    cache = make_cache(clock)
    body = claude([part(100, "s", marker)], ("user", "hi"))
    run(cache, body)
    for _ in range(3):  # each hit lands before the refreshed entry expires, long past the first expiry
        clock.now += ttl * 0.9
        assert counts(run(cache, body))[0] == 100
    clock.now += ttl
    assert counts(run(cache, body))[0] == 0


def test_accounts_never_share_a_cache() -> None:
    cache = make_cache()
    body = claude([part(100, "s", EPHEMERAL)], ("user", "hi"))
    assert [counts(run(cache, body, account))[:2] for account in (0, 1, 2, 0, 1)] == [(0, 100)] * 3 + [(100, 0)] * 2


def test_models_never_share_a_cache() -> None:
    cache = make_cache()
    run(cache, claude([part(100, "s", EPHEMERAL)], ("user", "hi")))
    assert counts(run(cache, claude([part(100, "s", EPHEMERAL)], ("user", "hi"), model="claude-opus-4-6")))[0] == 0


def test_an_entry_is_readable_only_once_its_request_has_completed() -> None:
    cache = make_cache()
    body = claude([part(100, "s", EPHEMERAL)], ("user", "hi"))
    first, second = cache.plan(0, Api.ANTHROPIC, body), cache.plan(0, Api.ANTHROPIC, body)
    assert counts(first.usage) == counts(second.usage) == (0, 100, 1)
    cache.commit(first)
    cache.commit(second)
    assert counts(run(cache, body)) == (100, 0, 1)


@pytest.mark.parametrize(("added", "hit"), [(1, True), (20, True), (21, False), (40, False)])
def test_lookback_reaches_twenty_blocks_before_a_breakpoint(added: int, hit: bool) -> None:
    cache = make_cache()
    first = claude([part(100, "s")], ("user", "hi"), auto=EPHEMERAL)
    run(cache, first)
    later = dict(first, messages=first["messages"] + [{"role": "user", "content": f"m{i}"} for i in range(added)])
    assert counts(run(cache, later))[0] == (101 if hit else 0)


def chat(tokens: int, *turns: str) -> dict:
    messages = [{"role": "system", "content": text(tokens, "sys")}] + [{"role": "user", "content": t} for t in turns]
    return {"model": GPT, "messages": messages}


def responses(tokens: int, *turns: str) -> dict:
    return {"model": GPT, "instructions": text(tokens, "sys"), "input": [{"role": "user", "content": t} for t in turns]}


OPENAI_STYLES = [
    pytest.param(Api.OPENAI_CHAT, chat, id="chat"),
    pytest.param(Api.OPENAI_RESPONSES, responses, id="responses"),
]


@pytest.mark.parametrize(("dialect", "build"), OPENAI_STYLES)
@pytest.mark.parametrize(("tokens", "cached"), [(127, 0), (200, 128), (300, 256), (1023, 896), (1025, 1024)])
def test_openai_caches_automatically_in_128_token_steps(dialect: Api, build: Callable, tokens: int, cached: int):
    cache = make_cache()
    body = build(tokens - 1, "hi")  # "hi" is one more token
    assert counts(run(cache, body, dialect=dialect)) == (0, 0, tokens)
    second = run(cache, body, dialect=dialect)
    assert counts(second) == (cached, 0, tokens - cached)
    assert second.prompt_tokens == tokens  # prompt_tokens includes the cached tokens


@pytest.mark.parametrize(("dialect", "build"), OPENAI_STYLES)
def test_openai_growing_conversation_reads_the_previous_prompt(dialect: Api, build: Callable) -> None:
    cache = make_cache()
    run(cache, build(299, "hi"), dialect=dialect)
    assert counts(run(cache, build(299, "hi", text(100, "more")), dialect=dialect)) == (256, 0, 144)


@pytest.mark.parametrize(("dialect", "build"), OPENAI_STYLES)
def test_openai_below_the_minimum_never_caches(dialect: Api, build: Callable) -> None:
    cache = make_cache(min_tokens=1024)
    body = build(1000, "hi")
    assert [counts(run(cache, body, dialect=dialect)) for _ in range(2)] == [(0, 0, 1001)] * 2


@pytest.mark.parametrize(("retention", "hit"), [(None, False), ("in_memory", False), ("24h", True)])
def test_openai_prompt_cache_retention_24h_outlives_the_default(retention: str | None, hit: bool) -> None:
    clock = FakeClock()
    cache = make_cache(clock)
    body = chat(300, "hi") | ({"prompt_cache_retention": retention} if retention else {})
    run(cache, body, dialect=Api.OPENAI_CHAT)
    clock.now += 3600
    assert counts(run(cache, body, dialect=Api.OPENAI_CHAT))[0] == (256 if hit else 0)
