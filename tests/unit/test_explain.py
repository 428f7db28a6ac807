"""The miss explainer: one reason per miss or partial hit, with text-free evidence."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from bodies import SECRET, SONNET, Body, anthropic_body, openai_body
from snapshots import index_of, snap, through

from cachepin.request.dialects import Dialect
from cachepin.request.snapshot import Snapshot
from cachepin.response.usage import Usage
from cachepin.turns.explain import LOOKBACK_BLOCKS, ROUTING_HINT, Explainer, Explanation, Reason, clearly_below, explain
from cachepin.turns.models import minimum_tokens

Mutation = Callable[[Body], None]


def usage(read: int | None, model: str | None = SONNET, provider: str = "anthropic") -> Usage:
    return Usage(provider, model, 20, 500, read, 80)


def mutated(body: Body, mutation: Mutation) -> Body:
    mutation(body)
    return body


def explained(prev: Snapshot | None, cur: Snapshot, used: Usage, **settings: object) -> Explanation | None:
    """``explain``, checking that no prompt text leaks into the evidence or the detail."""
    found = explain(prev, cur, used, **settings)
    if found is not None:
        assert SECRET not in json.dumps(found.evidence) + found.detail
    return found


# --- explain: the reasons -----------------------------------------------------------------


def test_first_turn_and_unreported_reads_are_not_explained() -> None:
    cur = snap(anthropic_body(1))
    assert explained(None, cur, usage(0)) is None
    assert explained(snap(anthropic_body(1)), snap(anthropic_body(2), 3.0), usage(None)) is None


@pytest.mark.parametrize(
    ("fraction", "partial"),
    [(1.0, False), (1.3, False), (0.95, False), (0.9, False), (0.8, True), (0.5, True), (0.01, True), (0.0, True)],
)
def test_hits_are_none_and_partial_hits_are_explained(fraction: float, partial: bool) -> None:
    prev, cur = snap(anthropic_body(2)), snap(anthropic_body(3), 3.0)
    read = int(prev.cached_tokens * fraction)
    found = explained(prev, cur, usage(read))
    assert (found is not None) == partial
    assert clearly_below(read, prev.cached_tokens) == partial


@pytest.mark.parametrize(
    ("read", "expected", "below"),
    [(0, 0, False), (0, 142, False), (0, 143, True), (900, 1000, False), (771, 1000, True), (772, 1000, False)],
)
def test_clearly_below_tolerance(read: int, expected: int, below: bool) -> None:
    assert clearly_below(read, expected) == below


@pytest.mark.parametrize(
    ("mutation", "path", "change"),
    [
        (lambda b: b["system"][0].update(text="You are a different agent."), "system[0]", "changed"),
        (lambda b: b["system"][1].update(text=b["system"][1]["text"] + " Also run the tests."), "system[1]", "changed"),
        (lambda b: b["tools"][1].update(description="Reads files."), "tools[1]", "changed"),
        (lambda b: b["tools"].pop(1), "tools[1]", "removed"),
        (lambda b: b["tools"].insert(0, {"name": "web_search", "input_schema": {}}), "tools[0]", "inserted"),
        (lambda b: b["system"].insert(1, {"type": "text", "text": "Today is Tuesday."}), "system[1]", "inserted"),
        (lambda b: b["system"].pop(0), "system[0]", "removed"),
    ],
    ids=["system0", "system1", "tool-edited", "tool-removed", "tool-added", "system-inserted", "system-removed"],
)
def test_prefix_changed_names_the_first_differing_block(mutation: Mutation, path: str, change: str) -> None:
    """The system prompt or tools change at turn 3: nothing before the change was a breakpoint, so all is lost."""
    prev = snap(anthropic_body(2))
    cur = snap(mutated(anthropic_body(3), mutation), 3.0)
    found = explained(prev, cur, usage(0))
    assert found is not None and found.reason is Reason.PREFIX_CHANGED
    first = prev if change == "removed" else cur
    assert found.evidence == {
        "path": path,
        "change": change,
        "matched_tokens": first.tokens_before(index_of(first, path)),
        "previous_prefix_tokens": prev.cached_tokens,
    }
    assert path in found.detail


def edit_first_question(body: Body) -> None:
    body["messages"][0]["content"][0]["text"] = "Actually, a different question."


@pytest.mark.parametrize(
    ("gap", "read_through_system", "reason"),
    [
        (3.0, True, Reason.PREFIX_CHANGED),  # the system entry was read: the edit explains the shortfall
        (3.0, False, Reason.ROUTING),  # the system entry should have been read, within TTL
        (400.0, False, Reason.TTL_EXPIRED),  # ... unless it expired
    ],
)
def test_a_change_after_a_breakpoint_keeps_the_entries_before_it(
    gap: float, read_through_system: bool, reason: Reason
) -> None:
    prev = snap(anthropic_body(3))
    cur = snap(mutated(anthropic_body(4), edit_first_question), gap)
    read = through(prev, "system[1]") if read_through_system else 0
    found = explained(prev, cur, usage(read))
    assert found is not None and found.reason is reason
    if reason is Reason.PREFIX_CHANGED:
        assert found.evidence["path"] == "messages[0].content[0]"
        assert found.evidence["matched_tokens"] == through(prev, "system[1]")
    if reason is Reason.ROUTING:
        assert found.evidence["prefix_tokens"] == through(prev, "system[1]")


@pytest.mark.parametrize(
    ("ttl", "system_ttl", "gap", "read", "reason", "ttl_s"),
    [
        (None, None, 412.0, "none", Reason.TTL_EXPIRED, 300.0),
        (None, None, 299.0, "none", Reason.ROUTING, None),
        ("1h", None, 412.0, "none", Reason.ROUTING, None),  # a 1 h entry outlives a 7 min pause
        ("1h", None, 3601.0, "none", Reason.TTL_EXPIRED, 3600.0),
        ("5m", "1h", 600.0, "system", Reason.TTL_EXPIRED, 300.0),  # the 5 min tail lapsed, the 1 h system survived
        ("5m", "1h", 600.0, "none", Reason.ROUTING, None),  # the 1 h system entry should still be there
        ("5m", "1h", 4000.0, "none", Reason.TTL_EXPIRED, 3600.0),
    ],
)
def test_ttl_expired_against_the_ttl_in_force(
    ttl: str | None, system_ttl: str | None, gap: float, read: str, reason: Reason, ttl_s: float | None
) -> None:
    prev = snap(anthropic_body(2, ttl=ttl, system_ttl=system_ttl))
    cur = snap(anthropic_body(3, ttl=ttl, system_ttl=system_ttl), gap)
    found = explained(prev, cur, usage(through(prev, "system[1]") if read == "system" else 0))
    assert found is not None and found.reason is reason
    if ttl_s is not None:
        assert found.evidence == {"gap_s": gap, "ttl_s": ttl_s}


@pytest.mark.parametrize(("gap", "reason"), [(31.0, Reason.TTL_EXPIRED), (29.0, Reason.ROUTING)])
def test_ttl_scale_shrinks_the_ttl(gap: float, reason: Reason) -> None:
    prev, cur = snap(anthropic_body(2)), snap(anthropic_body(3), gap)
    found = explained(prev, cur, usage(0), ttl_scale=0.1)
    assert found is not None and found.reason is reason
    if reason is Reason.TTL_EXPIRED:
        assert found.evidence["ttl_s"] == pytest.approx(30.0)


def test_ttl_expired_after_a_prefix_change_that_left_an_entry() -> None:
    """A changed prefix explains a miss even within TTL, but not a loss of the entries before the change."""
    prev = snap(anthropic_body(3))
    cur = snap(mutated(anthropic_body(4), edit_first_question), 1000.0)
    found = explained(prev, cur, usage(0))
    assert found is not None and found.reason is Reason.TTL_EXPIRED


def test_prefix_change_wins_over_an_expired_ttl() -> None:
    prev = snap(anthropic_body(2))
    cur = snap(mutated(anthropic_body(3), lambda b: b["system"][0].update(text="New agent.")), 1000.0)
    found = explained(prev, cur, usage(0))
    assert found is not None and found.reason is Reason.PREFIX_CHANGED


@pytest.mark.parametrize(
    ("model", "instructions", "minimums", "minimum"),
    [
        (SONNET, 5, None, 1024),
        ("claude-opus-4-5-20251101", 60, None, 4096),
        ("claude-haiku-4-5", 60, None, 4096),
        ("claude-3-haiku-20240307", 20, None, 2048),
        ("claude-3-7-sonnet-latest", 5, None, 1024),
        ("claude-opus-4-8", 5, None, 1024),  # Claude Code's default: lower than Opus 4.5-4.7
        ("claude-opus-4-7", 20, None, 2048),
        ("us.anthropic.claude-opus-4-6-v1", 60, None, 4096),  # Bedrock
        (SONNET, 60, {"claude-sonnet-4-5": 4096}, 4096),  # Sonnet observed caching only from larger prompts
        ("my-finetune", 5, {"my-finetune*": 2048}, 2048),
        ("claude-haiku-4-5", 5, {"anthropic/claude-haiku-4.5": 1024}, 1024),  # keys in any gateway spelling
    ],
)
def test_below_minimum(model: str, instructions: int, minimums: dict[str, int] | None, minimum: int) -> None:
    prev = snap(anthropic_body(1, model=model, instructions=instructions))
    cur = snap(anthropic_body(2, model=model, instructions=instructions), 3.0)
    assert prev.cached_tokens < minimum
    found = explained(prev, cur, usage(0, model=model), minimums=minimums)
    assert found is not None and found.reason is Reason.BELOW_MINIMUM
    assert found.evidence == {"prefix_tokens": prev.cached_tokens, "minimum": minimum, "model": model}


def test_a_prompt_that_grew_past_the_minimum_still_misses_once() -> None:
    """The previous turn was too short to be cached, so this turn had nothing to read."""
    prev = snap(anthropic_body(1, instructions=5))
    cur = snap(anthropic_body(6, instructions=5), 3.0)
    assert prev.cached_tokens < 1024 <= cur.cached_tokens
    found = explained(prev, cur, usage(0))
    assert found is not None and found.reason is Reason.BELOW_MINIMUM
    assert found.evidence["prefix_tokens"] == prev.cached_tokens


@pytest.mark.parametrize("model", ["claude-opus-9", "claude-haiku-5-5-20261101", "llama-3.3-70b"])
def test_unknown_model_gets_no_minimum_judgement(model: str) -> None:
    prev = snap(anthropic_body(1, model=model, instructions=1))
    cur = snap(anthropic_body(2, model=model, instructions=1), 3.0)
    assert minimum_tokens(model) is None
    found = explained(prev, cur, usage(0, model=model))
    assert found is not None and found.reason is Reason.ROUTING


@pytest.mark.parametrize(
    ("prev_marked", "cur_marked", "evidence"),
    [
        (False, False, {"breakpoints": 0, "previous_breakpoints": 0}),
        (True, False, {"breakpoints": 0, "previous_breakpoints": 2}),
        (False, True, {"breakpoints": 2, "previous_breakpoints": 0}),
    ],
)
def test_no_breakpoint(prev_marked: bool, cur_marked: bool, evidence: dict) -> None:
    prev = snap(anthropic_body(2, marked=prev_marked))
    cur = snap(anthropic_body(3, marked=cur_marked), 3.0)
    found = explained(prev, cur, usage(0))
    assert found is not None and found.reason is Reason.NO_BREAKPOINT
    assert found.evidence == evidence


def test_no_breakpoint_wins_over_below_minimum() -> None:
    prev = snap(anthropic_body(1, marked=False, instructions=1))
    cur = snap(anthropic_body(2, marked=False, instructions=1), 3.0)
    found = explained(prev, cur, usage(0))
    assert found is not None and found.reason is Reason.NO_BREAKPOINT


def test_automatic_mode_counts_as_a_breakpoint() -> None:
    automatic = {"type": "ephemeral"}
    prev = snap(anthropic_body(2, marked=False, automatic=automatic))
    cur = snap(anthropic_body(3, marked=False, automatic=automatic), 3.0)
    assert explained(prev, cur, usage(prev.cached_tokens)) is None
    found = explained(prev, cur, usage(0))
    assert found is not None and found.reason is Reason.ROUTING


def add_tool_calls(count: int) -> Mutation:
    """An assistant turn with ``count`` parallel tool calls and the user turn with their results."""

    def mutation(body: Body) -> None:
        last = body["messages"][-1]["content"][-1]
        marker = last.pop("cache_control")
        calls = [{"type": "tool_use", "id": f"t{i}", "name": "tool_0", "input": {"n": i}} for i in range(count)]
        results = [{"type": "tool_result", "tool_use_id": f"t{i}", "content": "ok"} for i in range(count)]
        results[-1]["cache_control"] = marker
        body["messages"] += [{"role": "assistant", "content": calls}, {"role": "user", "content": results}]

    return mutation


@pytest.mark.parametrize(
    ("calls", "read", "reason"),
    [
        (4, "none", Reason.ROUTING),
        (4, "system", Reason.UNKNOWN),  # the breakpoint is in reach: a partial read is not explained
        (LOOKBACK_BLOCKS // 2, "system", Reason.UNKNOWN),  # exactly LOOKBACK_BLOCKS blocks later
        (LOOKBACK_BLOCKS // 2 + 1, "system", Reason.NO_BREAKPOINT),
        (LOOKBACK_BLOCKS, "system", Reason.NO_BREAKPOINT),
    ],
)
def test_breakpoint_beyond_lookback(calls: int, read: str, reason: Reason) -> None:
    """Many parallel tool calls push the new breakpoint out of reach of the cached prefix."""
    prev = snap(anthropic_body(2))
    cur = snap(mutated(anthropic_body(2), add_tool_calls(calls)), 3.0)
    found = explained(prev, cur, usage(through(prev, "system[1]") if read == "system" else 0))
    assert found is not None and found.reason is reason
    if reason is Reason.NO_BREAKPOINT:
        assert found.evidence == {
            "previous_breakpoint": "messages[2].content[0]",
            "blocks_to_breakpoint": 2 * calls,
            "lookback_blocks": LOOKBACK_BLOCKS,
        }


@pytest.mark.parametrize("gap", [0.5, 3.1, 299.0])
def test_routing_when_everything_else_would_have_hit(gap: float) -> None:
    prev, cur = snap(anthropic_body(4)), snap(anthropic_body(5), gap)
    found = explained(prev, cur, usage(0))
    assert found is not None and found.reason is Reason.ROUTING
    assert found.evidence == {"prefix_tokens": prev.cached_tokens, "gap_s": gap, "hint": ROUTING_HINT}
    assert "inject" in found.detail


def test_unexplained_partial_hit_is_unknown() -> None:
    prev, cur = snap(anthropic_body(4)), snap(anthropic_body(5), 3.0)
    found = explained(prev, cur, usage(prev.cached_tokens // 2))
    assert found is not None and found.reason is Reason.UNKNOWN
    assert found.evidence == {
        "read_tokens": prev.cached_tokens // 2,
        "expected_tokens": prev.cached_tokens,
        "previous_prefix_tokens": prev.cached_tokens,
    }


def test_unmodelled_dialect_is_unknown() -> None:
    body = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    prev = snap(body, dialect=Dialect.BEDROCK_CONVERSE)
    cur = snap(body, 3.0, dialect=Dialect.BEDROCK_CONVERSE)
    found = explained(prev, cur, usage(0, model=None, provider="bedrock"))
    assert found is not None and found.reason is Reason.UNKNOWN


def test_bedrock_invoke_without_a_model_in_the_body() -> None:
    prev = snap({**anthropic_body(2), "model": None}, dialect=Dialect.BEDROCK_INVOKE)
    cur = snap({**anthropic_body(3), "model": None}, 3.0, dialect=Dialect.BEDROCK_INVOKE)
    found = explained(prev, cur, usage(0, model=None, provider="bedrock"))
    assert found is not None and found.reason is Reason.ROUTING


# --- OpenAI-style automatic caching ------------------------------------------------------


def edit_openai_question(body: Body) -> None:
    body["messages"][1]["content"] = "A different first question."


@pytest.mark.parametrize(
    ("prev_body", "cur_body", "gap", "read", "reason"),
    [
        (openai_body(2), openai_body(3), 3.0, "all", None),
        (openai_body(2), openai_body(3), 3.0, "all-128", None),  # OpenAI reads in 128-token steps
        (openai_body(2), openai_body(3), 3.0, "none", Reason.ROUTING),
        (openai_body(2), openai_body(3), 400.0, "none", Reason.TTL_EXPIRED),
        (openai_body(2, prompt_cache_retention="24h"), openai_body(3), 7200.0, "none", Reason.ROUTING),
        (openai_body(2), mutated(openai_body(3), edit_openai_question), 3.0, "system", Reason.PREFIX_CHANGED),
        (openai_body(2), mutated(openai_body(3), edit_openai_question), 3.0, "none", Reason.ROUTING),
        (
            openai_body(2),
            mutated(openai_body(3), lambda b: b["messages"][0].update(content="New rules.")),
            3.0,
            "none",
            Reason.PREFIX_CHANGED,
        ),
        (openai_body(1, instructions=2), openai_body(2, instructions=2), 3.0, "none", Reason.BELOW_MINIMUM),
        (openai_body(2, model="deepseek-chat"), openai_body(3, model="deepseek-chat"), 3.0, "none", Reason.ROUTING),
    ],
    ids=["hit", "hit-128", "routing", "ttl", "24h", "edit-partial", "edit-miss", "system-edit", "short", "deepseek"],
)
def test_openai_chat(prev_body: Body, cur_body: Body, gap: float, read: str, reason: Reason | None) -> None:
    prev, cur = snap(prev_body, dialect=Dialect.OPENAI_CHAT), snap(cur_body, gap, dialect=Dialect.OPENAI_CHAT)
    reads = {
        "all": prev.cached_tokens,
        "all-128": prev.cached_tokens - 127,
        "none": 0,
        "system": through(prev, "messages[0].content"),
    }
    found = explained(prev, cur, usage(reads[read], model=cur_body["model"], provider="openai"))
    assert (found.reason if found else None) is reason
    if reason is Reason.PREFIX_CHANGED:
        assert found is not None and found.evidence["matched_tokens"] == cur.tokens_before(
            index_of(cur, found.evidence["path"])
        )


def test_openai_never_blames_missing_breakpoints() -> None:
    prev = snap(openai_body(2), dialect=Dialect.OPENAI_CHAT)
    cur = snap(openai_body(3), 3.0, dialect=Dialect.OPENAI_CHAT)
    assert prev.marker == ""
    found = explained(prev, cur, usage(0, model="gpt-4o", provider="openai"))
    assert found is not None and found.reason is not Reason.NO_BREAKPOINT


@pytest.mark.parametrize(
    ("dialect", "prev_body", "cur_body", "path"),
    [
        (
            Dialect.OPENAI_RESPONSES,
            {"model": "gpt-5", "instructions": f"{SECRET} rules " * 900, "input": [{"role": "user", "content": "hi"}]},
            {"model": "gpt-5", "instructions": "other rules", "input": [{"role": "user", "content": "hi"}]},
            "instructions",
        ),
        (
            Dialect.GEMINI,
            {"systemInstruction": {"parts": [{"text": f"{SECRET} rules " * 900}]}, "contents": []},
            {"systemInstruction": {"parts": [{"text": "other"}]}, "contents": []},
            "systemInstruction.parts[0]",
        ),
    ],
    ids=["responses", "gemini"],
)
def test_other_automatic_dialects_name_the_changed_path(
    dialect: Dialect, prev_body: Body, cur_body: Body, path: str
) -> None:
    prev, cur = snap(prev_body, dialect=dialect), snap(cur_body, 3.0, dialect=dialect)
    found = explained(prev, cur, usage(0, model=prev_body.get("model"), provider=dialect.value))
    assert found is not None and found.reason is Reason.PREFIX_CHANGED
    assert found.evidence["path"] == path


# --- OpenAI GPT-5.6 and later: breakpoints, 30 min / 12 h TTLs ------------------------------


def gpt56(turn: int, *, model: str = "gpt-5.6", marked: bool = False, **extra: object) -> Body:
    """``openai_body`` on a GPT-5.6 model; ``marked`` puts an explicit breakpoint on the system message."""
    body = openai_body(turn, model=model, **extra)
    if marked:
        rules = body["messages"][0]["content"]
        marker = {"mode": "explicit"}
        body["messages"][0]["content"] = [{"type": "text", "text": rules, "prompt_cache_breakpoint": marker}]
    return body


def chat(body: Body, at: float = 0.0) -> Snapshot:
    return snap(body, at, dialect=Dialect.OPENAI_CHAT)


@pytest.mark.parametrize(("model", "reason"), [("gpt-4o", Reason.ROUTING), ("gpt-5.6", Reason.PREFIX_CHANGED),
                                               ("gpt-6-sol-2027-01-01", Reason.PREFIX_CHANGED)])
def test_gpt56_reads_only_at_breakpoints(model: str, reason: Reason) -> None:
    """An edited first question: older models still read the unchanged system prompt, GPT-5.6 only what a
    breakpoint wrote, and its implicit one sat on the newest message."""
    prev = chat(gpt56(2, model=model))
    cur = chat(mutated(gpt56(3, model=model), edit_openai_question), 3.0)
    found = explained(prev, cur, usage(0, model=model, provider="openai"))
    assert found is not None and found.reason is reason


@pytest.mark.parametrize(
    ("extra", "gap", "reason", "ttl_s"),
    [
        ({}, 400.0, Reason.ROUTING, None),  # GPT-5.6's default TTL is 30 min, not 5
        ({}, 2000.0, Reason.TTL_EXPIRED, 1800.0),
        ({"prompt_cache_options": {"ttl": "12h"}}, 7200.0, Reason.ROUTING, None),
        ({"prompt_cache_options": {"ttl": "12h"}}, 50000.0, Reason.TTL_EXPIRED, 43200.0),
        ({"prompt_cache_options": {"ttl": "30m"}}, 2000.0, Reason.TTL_EXPIRED, 1800.0),
    ],
    ids=["default-within", "default-lapsed", "12h-within", "12h-lapsed", "30m-lapsed"],
)
def test_gpt56_ttls(extra: dict, gap: float, reason: Reason, ttl_s: float | None) -> None:
    prev, cur = chat(gpt56(2, **extra)), chat(gpt56(3, **extra), gap)
    found = explained(prev, cur, usage(0, model="gpt-5.6", provider="openai"))
    assert found is not None and found.reason is reason
    if ttl_s is not None:
        assert found.evidence == {"gap_s": gap, "ttl_s": ttl_s}


def test_explicit_mode_without_a_breakpoint_caches_nothing() -> None:
    options = {"prompt_cache_options": {"mode": "explicit"}}
    prev, cur = chat(gpt56(2, **options)), chat(gpt56(3, **options), 3.0)
    found = explained(prev, cur, usage(0, model="gpt-5.6", provider="openai"))
    assert found is not None and found.reason is Reason.NO_BREAKPOINT
    assert found.evidence == {"breakpoints": 0, "previous_breakpoints": 0}
    assert "prompt_cache_breakpoint" in found.detail and "explicit" in found.detail


@pytest.mark.parametrize(("read", "reason"), [("system", Reason.PREFIX_CHANGED), ("none", Reason.ROUTING)])
def test_an_explicit_breakpoint_keeps_the_entry_before_a_change(read: str, reason: Reason) -> None:
    prev = chat(gpt56(2, marked=True))
    cur = chat(mutated(gpt56(3, marked=True), edit_openai_question), 3.0)
    found = explained(prev, cur, usage(through(prev, "messages[0].content[0]") if read == "system" else 0,
                                       model="gpt-5.6", provider="openai"))
    assert found is not None and found.reason is reason


def test_openai_breakpoints_have_no_lookback_limit() -> None:
    """Anthropic's ~20-block lookback does not apply: OpenAI matches any of the latest 80 breakpoints."""
    prev = chat(gpt56(2, marked=True))
    cur = chat(gpt56(2 + LOOKBACK_BLOCKS, marked=True), 3.0)
    found = explained(prev, cur, usage(0, model="gpt-5.6", provider="openai"))
    assert found is not None and found.reason is Reason.ROUTING


# --- Explainer: state per session ---------------------------------------------------------


def test_explainer_compares_each_turn_with_the_previous_one_of_its_session() -> None:
    explainer = Explainer()
    assert explainer.observe("a", snap(anthropic_body(1), 0.0), usage(0)) is None  # first turn
    assert explainer.observe("b", snap(anthropic_body(1, instructions=61), 1.0), usage(0)) is None
    turn2 = snap(anthropic_body(2), 2.0)
    assert explainer.observe("a", turn2, usage(snap(anthropic_body(1)).cached_tokens)) is None  # hit
    found = explainer.observe("a", snap(anthropic_body(3), 500.0), usage(0))
    assert found is not None and found.reason is Reason.TTL_EXPIRED
    assert found.evidence["gap_s"] == 498.0


def test_explainer_keeps_models_apart() -> None:
    """Claude Code's Haiku side requests must not look like a changed prefix of the main conversation."""
    explainer = Explainer()
    haiku = "claude-haiku-4-5-20251001"
    explainer.observe("s", snap(anthropic_body(2), 0.0), usage(0))
    side = snap(anthropic_body(1, model=haiku, instructions=3), 1.0)
    assert explainer.observe("s", side, usage(0, model=haiku)) is None  # a model switch is a first turn
    found = explainer.observe("s", snap(anthropic_body(3), 2.0), usage(0))
    assert found is not None and found.reason is Reason.ROUTING


def test_explainer_skips_responses_without_usage() -> None:
    explainer = Explainer()
    explainer.observe("s", snap(anthropic_body(2), 0.0), usage(0))
    assert explainer.observe("s", snap(mutated(anthropic_body(3), edit_first_question), 1.0), None) is None
    found = explainer.observe("s", snap(anthropic_body(3), 2.0), usage(0))
    assert found is not None and found.reason is Reason.ROUTING  # compared with turn 2, not the failed one


@pytest.mark.parametrize(("ttl_scale", "reason"), [(1.0, Reason.ROUTING), (0.01, Reason.TTL_EXPIRED)])
def test_explainer_passes_its_settings_on(ttl_scale: float, reason: Reason) -> None:
    explainer = Explainer(ttl_scale=ttl_scale, minimums={"claude-sonnet-4-5": 10})
    explainer.observe("s", snap(anthropic_body(1, instructions=1), 0.0), usage(0))
    found = explainer.observe("s", snap(anthropic_body(2, instructions=1), 10.0), usage(0))
    assert found is not None and found.reason is reason


def test_explainer_evicts_the_least_recent_session() -> None:
    explainer = Explainer(max_sessions=2)
    for session in ("a", "b", "a", "c"):
        explainer.observe(session, snap(anthropic_body(1), 0.0), usage(0))
    assert explainer.observe("b", snap(anthropic_body(2), 1.0), usage(0)) is None  # forgotten: a first turn again
    assert explainer.observe("a", snap(anthropic_body(2), 1.0), usage(0)) is None  # evicted by "b" just now
    found = explainer.observe("b", snap(anthropic_body(3), 2.0), usage(0))
    assert found is not None and found.reason is Reason.ROUTING


