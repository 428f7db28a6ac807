"""The ledger: verdicts, totals, expectations (warm at once, min_hit at finalize), eviction."""

from __future__ import annotations

import pytest
from ledgers import long_session, usage

from cachepin.request.thread import Position, Thread
from cachepin.response.usage import Usage
from cachepin.turns.counts import Counts
from cachepin.turns.explain import Explanation, Reason
from cachepin.turns.ledger import EVICTED_MEMORY, Ledger, Session, judge_evidence, judge_min_hit
from cachepin.turns.turn import Turn, Verdict
from cachepin.turns.verdicts import Expect

Spec = tuple[int, str | None, Usage | None]  # a turn in a scenario: status, stream error, usage


def ok(read: int | None = 0, creation: int | None = 0, input_tokens: int | None = 10) -> Spec:
    return (200, None, usage(read, creation, input_tokens))


NONE = (200, None, None)
HTTP_ERROR = (529, None, None)
BROKEN = (200, "stream cut", usage(read=0))


def play(ledger: Ledger, turns: list[Spec], session_id: str = "s1",
         position: Position | None = None) -> list[list[str]]:
    """Record the turns in one session; returns the new failure messages of each record()."""
    out = []
    for i, (status, error, reported) in enumerate(turns):
        _, new = ledger.record(
            session_id,
            "header",
            flow_id=f"flow-{session_id}-{i}",
            started_at=1_700_000_000.0 + i,
            status=status,
            stream=True,
            usage=reported,
            model="claude-request-alias",
            ttft_ms=100.0,
            duration_ms=900.0,
            error=error,
            position=position,
        )
        out.append(new)
    return out


def only(ledger: Ledger) -> list[Turn]:
    (session,) = ledger.sessions
    return session.turns


# --- verdicts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("turns", "verdicts"),
    [
        ([ok(0)], ["cold"]),
        ([ok(0), ok(0), ok(500)], ["cold", "miss", "hit"]),
        ([ok(500), ok(0)], ["hit", "miss"]),
        ([HTTP_ERROR, ok(0), ok(0)], ["error", "cold", "miss"]),
        ([BROKEN, HTTP_ERROR, ok(0)], ["error", "error", "cold"]),
        ([ok(0), HTTP_ERROR, ok(0)], ["cold", "error", "miss"]),
        ([NONE, ok(0)], ["none", "miss"]),
        ([ok(0), NONE, ok(700)], ["cold", "none", "hit"]),
    ],
)
def test_verdicts_within_a_session(turns: list[Spec], verdicts: list[str]) -> None:
    ledger = Ledger()
    play(ledger, turns)
    assert [t.verdict for t in only(ledger)] == verdicts
    assert [t.index for t in only(ledger)] == list(range(1, len(turns) + 1))


def test_sessions_are_independent() -> None:
    ledger = Ledger()
    play(ledger, [ok(0), ok(0)], "a")
    play(ledger, [ok(0)], "b")
    assert [[t.verdict for t in s.turns] for s in ledger.sessions] == [["cold", "miss"], ["cold"]]


def test_turn_keeps_what_the_response_said() -> None:
    ledger = Ledger()
    reported = Usage("anthropic", "claude-sonnet-4-5-20250929", 12, 640, 9000, 85, 0, 640)
    turn, new = ledger.record(
        "s", "header", flow_id="f1", started_at=1.5, status=200, stream=False, usage=reported,
        model="claude-sonnet-4-5", ttft_ms=None, duration_ms=12.5,
    )  # fmt: skip
    assert new == []
    assert (turn.index, turn.flow_id, turn.started_at, turn.status, turn.stream) == (1, "f1", 1.5, 200, False)
    assert (turn.provider, turn.model) == ("anthropic", "claude-sonnet-4-5-20250929")
    assert (turn.input_tokens, turn.cache_creation_input_tokens, turn.cache_read_input_tokens) == (12, 640, 9000)
    assert (turn.output_tokens, turn.cache_creation_5m, turn.cache_creation_1h) == (85, 0, 640)
    assert (turn.ttft_ms, turn.duration_ms, turn.error, turn.miss) == (None, 12.5, None, None)


@pytest.mark.parametrize(
    ("reported", "provider", "model"),
    [
        (usage(model="served-model"), "anthropic", "served-model"),
        (usage(model=None), "anthropic", "request-model"),
        (None, None, "request-model"),
    ],
)
def test_the_served_model_wins_over_the_requested_one(reported: Usage | None, provider: str | None, model: str) -> None:
    turn, _ = Ledger().record(
        "s", "h", flow_id="f", started_at=0.0, status=200, stream=False, usage=reported,
        model="request-model", ttft_ms=None, duration_ms=None,
    )  # fmt: skip
    assert (turn.provider, turn.model) == (provider, model)


def test_a_session_keeps_the_source_it_was_first_seen_with() -> None:
    ledger = Ledger()
    for source in ("header", "body"):
        ledger.record(
            "s", source, flow_id="f", started_at=0.0, status=200, stream=False, usage=None,
            model=None, ttft_ms=None, duration_ms=None,
        )  # fmt: skip
    assert ledger.sessions[0].source == "header"


# --- counts and ratios --------------------------------------------------------------------------


def test_error_turns_do_not_count_in_totals() -> None:
    ledger = Ledger()
    play(ledger, [ok(0, creation=1000), HTTP_ERROR, BROKEN, ok(1000, input_tokens=20)])
    for counts in (ledger.totals, ledger.sessions[0].counts()):
        assert counts.requests == 2
        assert (counts.input_tokens, counts.cache_creation_input_tokens) == (30, 1000)
        assert (counts.cache_read_input_tokens, counts.output_tokens) == (1000, 10)
        assert (counts.hits, counts.misses) == (1, 0)
        assert counts.hit_ratio == pytest.approx(1000 / 2030)


@pytest.mark.parametrize(
    ("turns", "ratio"),
    [
        ([], None),
        ([NONE, NONE], None),  # nothing reported: n/a, not 0 %
        ([HTTP_ERROR], None),
        ([ok(0, 0, 0)], None),  # reported, but the denominator is 0
        ([ok(0, 0, 10)], 0.0),  # reported zeros: 0 %, not n/a
        ([ok(0, 100, 0), ok(100, 0, 0)], 0.5),  # token-weighted, not an average of 0 % and 100 %
        ([ok(90, 0, 10), ok(0, 800, 100)], 0.09),
        ([ok(50, None, 50)], 0.5),  # null creation counts as 0
        ([NONE, ok(30, 0, 10)], 0.75),  # turns without figures do not dilute
    ],
)
def test_hit_ratio(turns: list[Spec], ratio: float | None) -> None:
    ledger = Ledger()
    play(ledger, turns)
    assert ledger.totals.hit_ratio == pytest.approx(ratio)
    if turns:
        assert ledger.sessions[0].counts().hit_ratio == pytest.approx(ratio)


def test_a_field_never_reported_stays_null() -> None:
    ledger = Ledger()
    deepseek = Usage("deepseek", "deepseek-chat", 40, None, 2560, 30)
    none_at_all = Usage("gemini", "gemini-2.5", None, None, None, None)
    for reported in (deepseek, deepseek, none_at_all):
        ledger.record(
            "s", "h", flow_id="f", started_at=0.0, status=200, stream=False, usage=reported,
            model=None, ttft_ms=None, duration_ms=None,
        )  # fmt: skip
    counts = ledger.sessions[0].counts()
    assert counts == ledger.totals
    assert (counts.input_tokens, counts.cache_creation_input_tokens) == (80, None)
    assert (counts.cache_read_input_tokens, counts.output_tokens, counts.requests) == (5120, 60, 3)
    assert Counts().hit_ratio is None
    assert Counts().cache_read_input_tokens is None


# --- warm: failures at once ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("turns", "failing_turns"),
    [
        ([ok(0)], []),  # the first turn may be cold
        ([NONE], []),  # ... and is not judged at all
        ([ok(0), ok(900), ok(900)], []),
        ([ok(0), ok(0)], [2]),
        ([ok(0), ok(0), ok(900), ok(0)], [2, 4]),
        ([ok(0), NONE], [2]),
        ([HTTP_ERROR, ok(0), ok(900)], []),  # the error does not make the cold turn "later"
        ([ok(0), HTTP_ERROR, BROKEN, ok(900)], []),  # errors are not judged
        ([ok(900), ok(0)], [2]),
    ],
)
def test_warm_failures_come_back_from_record(turns: list[Spec], failing_turns: list[int]) -> None:
    ledger = Ledger(expect="warm")
    new = play(ledger, turns)
    assert [i for i, messages in enumerate(new, 1) if messages] == failing_turns
    assert [f.turn for f in ledger.failures] == failing_turns
    assert all(len(messages) <= 1 for messages in new)
    assert ledger.ok == (not failing_turns)
    assert ledger.finalize() == []  # nothing else to judge without min_hit


def test_warm_messages_name_session_turn_and_figures() -> None:
    ledger = Ledger(expect="warm")
    sid = "3f2a9c1e-0000-4000-8000-000000000000"
    new = play(ledger, [ok(0, creation=2000), ok(0, creation=1538, input_tokens=12), NONE], sid)
    assert new[1] == ["session 3f2a9c1e-000… turn 2: expected a cache hit, read 0 (creation 1538, input 12)"]
    assert "turn 3" in new[2][0] and "provider reports no cache figures" in new[2][0]
    assert all(f.session_id == sid for f in ledger.failures)


def test_expect_off_never_fails() -> None:
    ledger = Ledger()
    assert play(ledger, [ok(0), ok(0), NONE]) == [[], [], []]
    assert ledger.ok and ledger.failures == [] and ledger.finalize() == []


# --- min_hit: judged at finalize ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("min_hit", "turns", "fails"),
    [
        (50, [ok(0, 1000, 0), ok(50, 0, 50)], False),  # exactly 50 %: passes
        (50, [ok(0, 1000, 0), ok(49, 0, 51)], True),
        (50, [ok(0, 1000, 0), ok(50, 25, 25)], False),  # creation is in the denominator
        (50, [ok(0, 1000, 0), ok(49, 25, 26)], True),
        (100, [ok(0), ok(10, 0, 0)], False),
        (100, [ok(0), ok(10, 0, 1)], True),
        (1, [ok(0), ok(1, 0, 99)], False),
        (1, [ok(0), ok(1, 0, 100)], True),
        (90, [ok(0, 5000, 10)], False),  # a single successful turn is not judged
        (90, [HTTP_ERROR, ok(0, 5000, 10), BROKEN], False),
        (90, [ok(0, 5000, 10), HTTP_ERROR, ok(900, 0, 100)], False),  # the error turn is skipped
        (90, [ok(0), ok(0), ok(900, 0, 10)], False),  # token-weighted over the later turns
        (90, [ok(0), ok(0, 0, 100), ok(900, 0, 10)], True),
        (90, [ok(100_000, 0, 0), ok(0, 0, 100)], True),  # the first turn's hit does not help
        (50, [NONE, NONE], True),  # later turns without cache figures cannot meet it
        (0, [NONE, NONE], False),
        (0, [ok(0), ok(0)], False),
        (50, [ok(0), ok(0, 0, 0)], True),  # reported, but nothing to weigh
    ],
)
def test_min_hit(min_hit: int, turns: list[Spec], fails: bool) -> None:
    ledger = Ledger(min_hit=min_hit)
    assert play(ledger, turns) == [[] for _ in turns]  # never judged before finalize
    assert ledger.ok
    new = ledger.finalize()
    assert len(new) == fails
    assert [f.turn for f in ledger.failures] == [None] * fails
    assert ledger.ok == (not fails)
    assert (judge_min_hit(ledger.sessions[0], min_hit) is not None) is fails


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        ([ok(0), ok(49, 0, 51)], "session s1: judged hit ratio 49.0% after turn 1 (1 later turn) is below min_hit 50% "
         "(read 49, creation 0, input 51)"),  # fmt: skip
        ([HTTP_ERROR, ok(0), ok(4999, 1, 5000), ok(0, None, 0)], "session s1: judged hit ratio 49.9% after turn 2 "
         "(2 later turns) is below min_hit 50% (read 4999, creation 1, input 5000)"),  # fmt: skip
        ([NONE, NONE], "session s1: min_hit 50% not met after turn 1 (1 later turn): "
         "the provider reports no cache figures"),  # fmt: skip
        ([ok(0), ok(0, 0, 0)], "session s1: min_hit 50% not met after turn 1 (1 later turn): no input tokens reported"),
    ],
)
def test_min_hit_messages(turns: list[Spec], expected: str) -> None:
    ledger = Ledger(min_hit=50)
    play(ledger, turns)
    assert ledger.finalize() == [expected]


def test_finalize_is_idempotent_and_follows_recovery() -> None:
    ledger = Ledger(min_hit=50)
    play(ledger, [ok(0), ok(0)])
    assert len(ledger.finalize()) == 1
    assert ledger.finalize() == []
    assert len(ledger.failures) == 1 and not ledger.ok
    play(ledger, [ok(10_000)])  # the session warms up: judged as it stands now
    assert ledger.finalize() == []
    assert ledger.failures == [] and ledger.ok


def test_warm_and_min_hit_failures_add_up() -> None:
    ledger = Ledger(expect="warm", min_hit=80)
    new = play(ledger, [ok(0), ok(0), ok(10, 0, 90)])  # turn 3 hits, but reads little
    assert sum(map(len, new)) == 1
    assert len(ledger.finalize()) == 1
    assert [f.turn for f in ledger.failures] == [2, None]


# --- memory: eviction ---------------------------------------------------------------------------


def test_eviction_keeps_totals_and_failures() -> None:
    ledger = Ledger(expect="warm", max_sessions=2)
    play(ledger, [ok(0), ok(0)], "a")  # one warm failure
    play(ledger, [ok(0), ok(500)], "b")
    play(ledger, [ok(0)], "c")
    assert [s.session_id for s in ledger.sessions] == ["b", "c"]
    assert ledger.evicted == 1
    assert ledger.totals.requests == 5
    assert ledger.totals.cache_read_input_tokens == 500
    assert [(f.session_id, f.turn) for f in ledger.failures] == [("a", 2)]
    assert not ledger.ok


def test_eviction_is_least_recently_used_and_reports_stay_in_first_seen_order() -> None:
    ledger = Ledger(max_sessions=2)
    play(ledger, [ok(0)], "a")
    play(ledger, [ok(0)], "b")
    play(ledger, [ok(700)], "a")  # a is used again: b is now the oldest
    play(ledger, [ok(0)], "c")
    assert [s.session_id for s in ledger.sessions] == ["a", "c"]


def test_evicted_sessions_are_judged_for_min_hit_on_the_way_out() -> None:
    ledger = Ledger(min_hit=50, max_sessions=1)
    play(ledger, [ok(0), ok(0)], "a")
    new = play(ledger, [ok(0)], "b")
    assert len(new[0]) == 1 and new[0][0].startswith("session a:")
    assert [(f.session_id, f.turn) for f in ledger.failures] == [("a", None)]
    assert ledger.finalize() == []
    assert not ledger.ok


def test_an_evicted_failure_already_reported_is_not_new_again() -> None:
    ledger = Ledger(min_hit=50, max_sessions=1)
    play(ledger, [ok(0), ok(0)], "a")
    assert len(ledger.finalize()) == 1
    assert play(ledger, [ok(0)], "b") == [[]]
    assert len(ledger.failures) == 1


@pytest.mark.parametrize("expect, status", [("warm", False), ("off", True)])
def test_a_session_that_comes_back_after_eviction_is_numbered_on_and_its_misses_count(expect: str,
                                                                                     status: bool) -> None:
    """300 conversations over max_sessions=100: every one is evicted before its next turn."""
    ledger = Ledger(expect=expect, max_sessions=100)
    for turn in range(3):
        for conversation in range(300):
            position = Position.START if turn == 0 else Position.CONTINUATION
            play(ledger, [ok(0, creation=1538 if turn == 0 else 0)], f"s{conversation}", position)
    assert ledger.evicted == 300 * 3 - 100 and ledger.seen == 300
    held = ledger.sessions
    assert len(held) == 100 and [turn.index for session in held for turn in session.turns] == [3] * 100
    assert {turn.verdict.value for session in held for turn in session.turns} == {"miss"}
    assert ledger.ok is status
    if expect == "warm":  # turns 2 and 3 of every conversation read nothing
        assert sorted({(f.turn, f.session_id) for f in ledger.failures}) == sorted(
            (turn, f"s{c}") for turn in (2, 3) for c in range(300))


def test_returning_sessions_keep_their_place_in_the_report() -> None:
    ledger = Ledger(max_sessions=1)
    play(ledger, [ok(0)], "a")
    play(ledger, [ok(0)], "b")
    play(ledger, [ok(500)], "a", Position.CONTINUATION)
    play(ledger, [ok(0)], "c")
    play(ledger, [ok(500)], "b", Position.CONTINUATION)
    session, = ledger.sessions
    assert (session.session_id, session.seq, session.turns[0].index) == ("b", 1, 2)
    assert ledger.seen == 3


def test_the_memory_of_evicted_sessions_is_bounded() -> None:
    ledger = Ledger(max_sessions=2)
    for conversation in range(EVICTED_MEMORY * 2 + 10):
        play(ledger, [ok(0)], f"s{conversation}")
    assert len(ledger._evicted) == EVICTED_MEMORY * 2
    play(ledger, [ok(0)], "s0")  # forgotten: it starts again, and counts as a session again
    assert ledger.sessions[-1].turns[0].index == 1 and ledger.seen == EVICTED_MEMORY * 2 + 11


def test_unlimited_sessions() -> None:
    ledger = Ledger(max_sessions=0)
    for i in range(50):
        play(ledger, [ok(0)], f"s{i}")
    assert len(ledger.sessions) == 50 and ledger.evicted == 0


# --- lifecycle ----------------------------------------------------------------------------------


def test_reset_clears_everything() -> None:
    ledger = Ledger(expect="warm", min_hit=50, max_sessions=1)
    play(ledger, [ok(0), ok(0)], "a")
    play(ledger, [ok(0), ok(0)], "b")
    ledger.finalize()
    ledger.reset()
    assert (ledger.sessions, ledger.failures, ledger.evicted, ledger.ok) == ([], [], 0, True)
    assert ledger.totals == Counts()
    assert (ledger.expect, ledger.min_hit, ledger.max_sessions) == (Expect.WARM, 50, 1)
    play(ledger, [ok(0)], "a")
    assert only(ledger)[0].verdict is Verdict.COLD


@pytest.mark.parametrize(
    "kwargs",
    [{"expect": "cold"}, {"expect": ""}, {"min_hit": -1}, {"min_hit": 101}, {"max_sessions": -1}, {"max_turns": -1}],
)
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Ledger(**kwargs)  # type: ignore[arg-type]


def test_a_miss_reason_can_be_attached_later() -> None:
    ledger = Ledger()
    play(ledger, [ok(0)])
    turn = only(ledger)[0]
    turn.miss = Explanation(Reason.ROUTING, "another account", {"gap_s": 1.0})
    assert only(ledger)[0].miss == Explanation(Reason.ROUTING, "another account", {"gap_s": 1.0})


def test_each_model_has_its_own_cold_first_turn() -> None:
    """opencode's title call (small model) comes before the main turn: neither may count as a miss."""
    ledger = Ledger(expect="warm", min_hit=50)
    calls = [("claude-haiku-4-5", 0), ("claude-sonnet-4-6", 0), ("claude-sonnet-4-6", 900), ("claude-haiku-4-5", 0)]
    failures = []
    for i, (model, read) in enumerate(calls):
        reported = Usage("anthropic", f"{model}-20260101", 10, 1000 - read, read, 5)
        _, new = ledger.record("s", "header", flow_id=f"f{i}", started_at=float(i), status=200, stream=True,
                               usage=reported, model=model, ttft_ms=None, duration_ms=None)
        failures += new
    assert [t.verdict for t in only(ledger)] == ["cold", "cold", "hit", "miss"]
    assert [t.model for t in only(ledger)][0] == "claude-haiku-4-5-20260101"
    assert len(failures) == 1 and "turn 4" in failures[0]
    (min_hit_failure,) = ledger.finalize()
    assert "after the first turn of each of 2 threads (2 later turns)" in min_hit_failure


# --- threads and positions --------------------------------------------------------------------


MAIN = Thread("ln_main", "lineage")
SUB = Thread("ln_sub", "lineage", "agent-1")


def turn(ledger: Ledger, thread: Thread | None, position: Position | None, read: int, *, status: int = 200,
         session_id: str = "s1") -> tuple[Turn, list[str]]:
    return ledger.record(session_id, "header", flow_id=f"f{len(ledger.sessions)}-{read}", started_at=0.0,
                         status=status, stream=True, usage=None if status >= 400 else usage(read, 100),
                         model="claude-opus-4-8", ttft_ms=None, duration_ms=None, thread=thread, position=position)


def test_a_sub_agent_starts_cold_in_its_own_thread() -> None:
    """Claude Code's sub-agent: the parent's session id and model, its own prompt: its first turn is no miss."""
    ledger = Ledger(expect="warm")
    script = [(MAIN, Position.START, 0), (MAIN, Position.CONTINUATION, 100), (SUB, Position.START, 0),
              (MAIN, Position.CONTINUATION, 100), (SUB, Position.CONTINUATION, 100)]
    verdicts = [turn(ledger, thread, position, read)[0].verdict for thread, position, read in script]
    assert verdicts == ["cold", "hit", "cold", "hit", "hit"]
    assert ledger.ok and ledger.finalize() == []
    (session,) = ledger.sessions
    assert [(state.thread_id, state.parent, [t.index for t in turns]) for state, turns in session.thread_turns()] == [
        ("ln_main", None, [1, 2, 4]), ("ln_sub", "agent-1", [3, 5])]
    assert [t.opens for t in session.turns] == [True, False, True, False, False]


def test_a_continuation_that_reads_nothing_is_a_miss_on_a_fresh_ledger() -> None:
    """A restarted proxy, or another replica: the request itself shows that it continues a conversation."""
    ledger = Ledger(expect="warm")
    found, failures = turn(ledger, MAIN, Position.CONTINUATION, 0)
    assert found.verdict is Verdict.MISS and not found.opens
    assert failures == ["session s1 turn 1 (thread ln_main), which continues a conversation: expected a cache hit, "
                        "read 0 (creation 100, input 10)"]


def test_the_same_start_again_in_one_thread_should_read_what_the_first_wrote() -> None:
    ledger = Ledger()
    assert [turn(ledger, MAIN, Position.START, 0)[0].verdict for _ in range(2)] == ["cold", "miss"]


def test_an_error_turn_does_not_open_a_thread() -> None:
    ledger = Ledger()
    verdicts = [turn(ledger, MAIN, Position.START, 0, status=529)[0].verdict, turn(ledger, MAIN, Position.START, 0)[0]
                .verdict]
    assert verdicts == ["error", "cold"]


def test_without_threads_each_model_is_one() -> None:
    ledger = Ledger()
    assert [turn(ledger, None, None, 0)[0].thread for _ in range(2)] == ["model:claude-opus-4-8"] * 2
    assert [t.verdict for t in only(ledger)] == ["cold", "miss"]


@pytest.mark.parametrize("expect, min_hit", [("warm", 0), ("off", 80)])
def test_no_evidence_is_no_pass(expect: str, min_hit: int) -> None:
    """An upstream that answers every call with 529: nothing shows that the cache works."""
    ledger = Ledger(expect=expect, min_hit=min_hit)
    for session_id in ("a", "b"):
        for _ in range(2):
            turn(ledger, MAIN, Position.START, 0, status=529, session_id=session_id)
    assert ledger.finalize() == ["session a: no successful response (2 error turns)",
                                 "session b: no successful response (2 error turns)",
                                 "no successful LLM response was audited (4 error turns): nothing shows that the "
                                 "cache works"]
    assert not ledger.ok and ledger.finalize() == []  # judged again: nothing new
    assert [f.session_id for f in ledger.failures] == ["a", "b", ""]


def test_without_expectations_errors_fail_nothing() -> None:
    ledger = Ledger()
    turn(ledger, MAIN, Position.START, 0, status=529)
    assert ledger.finalize() == [] and ledger.ok


def test_a_run_with_no_response_at_all_fails_under_an_expectation() -> None:
    ledger = Ledger(expect="warm")
    assert ledger.finalize() == ["no successful LLM response was audited: nothing shows that the cache works"]


def test_the_judged_ratio_leaves_out_each_threads_first_turn() -> None:
    ledger = Ledger(min_hit=50)
    for thread, position, read in [(MAIN, Position.START, 0), (MAIN, Position.CONTINUATION, 900),
                                   (SUB, Position.START, 0), (SUB, Position.CONTINUATION, 50)]:
        turn(ledger, thread, position, read)
    (session,) = ledger.sessions
    judged = session.judged_counts()
    assert (judged.requests, judged.cache_read_input_tokens, judged.ratio_base) == (2, 950, 950 + 200 + 20)
    assert ledger.judged.hit_ratio == judged.hit_ratio and ledger.finalize() == []


def test_a_min_hit_failure_of_several_judged_threads_names_the_lowest() -> None:
    ledger = Ledger(min_hit=80)
    for thread, position, read in [(MAIN, Position.START, 0), (MAIN, Position.CONTINUATION, 90),
                                   (SUB, Position.START, 0), (SUB, Position.CONTINUATION, 10)]:
        turn(ledger, thread, position, read)
    assert ledger.finalize() == ["session s1: judged hit ratio 31.2% after the first turn of each of 2 threads "
                                 "(2 later turns) is below min_hit 80% (read 100, creation 200, input 20); "
                                 "lowest: thread ln_sub"]


def test_a_min_hit_failure_of_one_judged_thread_names_none() -> None:
    ledger = Ledger(min_hit=80)
    for thread, position, read in [(MAIN, Position.START, 0), (MAIN, Position.CONTINUATION, 10),
                                   (SUB, Position.START, 0)]:
        turn(ledger, thread, position, read)
    (message,) = ledger.finalize()
    assert "is below min_hit 80%" in message and "lowest" not in message


def test_a_model_switch_mid_conversation_opens_a_thread_on_the_new_model() -> None:
    """claude --fallback-model, /model: the new model's cache is empty, so its first turn is no miss."""
    ledger = Ledger(expect="warm")
    other = Thread("ln_other", "lineage")
    for model, thread, position, read in [("claude-opus-4-8", MAIN, Position.START, 0),
                                          ("claude-opus-4-8", MAIN, Position.CONTINUATION, 100),
                                          ("claude-sonnet-4-6", other, Position.CONTINUATION, 0),
                                          ("claude-sonnet-4-6", other, Position.CONTINUATION, 100)]:
        ledger.record("s1", "header", flow_id="f", started_at=0.0, status=200, stream=True, usage=usage(read, 100),
                      model=model, ttft_ms=None, duration_ms=None, thread=thread, position=position)
    assert [t.verdict for t in only(ledger)] == ["cold", "hit", "cold", "hit"] and ledger.ok


def test_a_thread_named_by_a_header_is_one_per_model() -> None:
    """Codex keeps its thread-id when it switches model; each model has its own cache."""
    codex = Thread("019a7c3e", "header:thread-id")
    ledger = Ledger()
    for model, position, read in [("gpt-5.1-codex", Position.START, 0), ("gpt-5.1-codex-mini", Position.START, 0)]:
        ledger.record("s1", "header", flow_id="f", started_at=0.0, status=200, stream=True, usage=usage(read, 100),
                      model=model, ttft_ms=None, duration_ms=None, thread=codex, position=position)
    assert [t.verdict for t in only(ledger)] == ["cold", "cold"]
    assert [state.model for state in ledger.sessions[0].threads] == ["gpt-5.1-codex", "gpt-5.1-codex-mini"]


# --- memory: folding a long session's oldest turns into its sums (max_turns) ----------------------------------


def long_ledger(max_turns: int, turns: int = 5000, *, threads: bool = True, min_hit: int = 96) -> Ledger:
    ledger = long_session(Ledger(expect="warm", min_hit=min_hit, max_turns=max_turns), turns, threads=threads)
    ledger.finalize()
    return ledger


def sums_of(session: Session) -> tuple[object, ...]:
    """Everything a session sums, its own and per thread, without the turns it holds."""
    threads = [(state.thread_id, state.model, sums.counts, sums.judged, sums.errors, sums.turns)
               for state, _, sums in session.thread_sums()]
    return session.counts(), session.judged_counts(), session.errors, threads


@pytest.mark.parametrize("max_turns", [1, 2, 7, 100, 4999, 5000])
def test_a_long_session_sums_the_same_whatever_it_holds(max_turns: int) -> None:
    held, unlimited = long_ledger(max_turns), long_ledger(0)
    (session,), (whole,) = held.sessions, unlimited.sessions
    assert len(session.turns) == min(max_turns, 5000) and len(whole.turns) == 5000
    assert session.folded == 5000 - len(session.turns) and whole.folded == 0
    assert sums_of(session) == sums_of(whole)
    assert session.errors > 0 and session.judged_counts().requests > 0  # the scenario has both to fold
    assert [f.message for f in held.failures] == [f.message for f in unlimited.failures]
    assert any("below min_hit 96%" in f.message for f in held.failures)
    assert (held.totals, held.judged, held.errors) == (unlimited.totals, unlimited.judged, unlimited.errors)


def test_a_session_holds_at_most_max_turns_numbered_on() -> None:
    ledger = long_ledger(100)
    (session,) = ledger.sessions
    assert [turn.index for turn in session.turns] == list(range(4901, 5001))
    assert session.folded == 4900 and session.numbered == 5000
    assert sum(len(turns) for _, turns, _ in session.thread_sums()) == 100


def test_the_min_hit_wording_names_the_only_first_turn_when_it_was_folded() -> None:
    """One thread, one model: one of its first turns opened it, thousands of turns later only in the sums."""
    held, whole = long_ledger(100, threads=False), long_ledger(0, threads=False)
    (opener,) = [turn.index for turn in whole.sessions[0].turns if turn.opens]
    failure = judge_min_hit(held.sessions[0], 96)
    assert failure is not None and failure == judge_min_hit(whole.sessions[0], 96)
    assert f" after turn {opener} (" in failure.message and "later turns)" in failure.message
    assert held.sessions[0].turns[0].index == 4901 > opener


def play_fold(max_turns: int, turns: list[Spec]) -> Ledger:
    ledger = Ledger(expect="warm", max_turns=max_turns)
    play(ledger, turns)
    ledger.finalize()
    return ledger


@pytest.mark.parametrize("max_turns", [0, 1, 2])
def test_a_session_whose_successes_were_folded_is_not_without_evidence(max_turns: int) -> None:
    ledger = play_fold(max_turns, [ok(0), HTTP_ERROR, HTTP_ERROR, HTTP_ERROR])
    (session,) = ledger.sessions
    assert not any(turn.ok for turn in session.turns) or max_turns == 0
    assert judge_evidence(session) is None and ledger.ok


@pytest.mark.parametrize("max_turns", [0, 1, 3])
def test_folded_error_turns_count_in_the_no_evidence_failure(max_turns: int) -> None:
    ledger = play_fold(max_turns, [HTTP_ERROR] * 5)
    (session,) = ledger.sessions
    assert session.errors == 5
    failure = judge_evidence(session)
    assert failure is not None and failure.message == "session s1: no successful response (5 error turns)"


def test_a_lowered_max_turns_folds_down_to_it_at_the_next_turn() -> None:
    ledger = Ledger(max_turns=10)
    play(ledger, [ok(0)] + [ok(900)] * 9)
    ledger.max_turns = 3
    play(ledger, [ok(900)])
    (session,) = ledger.sessions
    assert [turn.index for turn in session.turns] == [9, 10, 11] and session.counts().requests == 11


def test_a_short_session_allocates_nothing_for_folding() -> None:
    ledger = Ledger(max_turns=3)
    play(ledger, [ok(0), ok(900), ok(900)])
    (session,) = ledger.sessions
    assert type(session.turns) is list and session.folded_sums is None and session.folded == 0


def test_a_folded_session_evicted_and_back_is_numbered_on() -> None:
    ledger = Ledger(max_sessions=1, max_turns=2)
    play(ledger, [ok(0)] * 5, session_id="a")
    play(ledger, [ok(0)], session_id="b")  # evicts "a"
    play(ledger, [ok(0)], session_id="a")
    assert [turn.index for turn in ledger.sessions[0].turns] == [6]


@pytest.mark.parametrize(("expect", "min_hit", "expecting"), [
    ("off", 0, False),
    ("warm", 0, True),
    ("off", 1, True),
    ("warm", 80, True),
])
def test_a_gate_is_set_by_either_expectation(expect: str, min_hit: int, expecting: bool) -> None:
    """The audit reads a request's body for its thread and position when a gate is set, even without the
    explainer."""
    assert Ledger(expect=expect, min_hit=min_hit).expecting is expecting


def test_a_gate_set_after_the_ledger_is_made_counts() -> None:
    """The audit's ``configure`` sets the expectations on the ledger it already holds."""
    ledger = Ledger()
    ledger.expect, ledger.min_hit = Expect("warm"), 0
    assert ledger.expecting
    ledger.expect, ledger.min_hit = Expect("off"), 0
    assert not ledger.expecting
