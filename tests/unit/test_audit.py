"""The audit's policy without mitmproxy: what a request says (``read_request``), the turn a response makes
(``Audit.record``), the diagnostics it asks for, the prices it warns about, and the files it writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from bodies import anthropic_body

from cachepin.audit import (
    MAX_UNPRICED,
    UNIDENTIFIED,
    Audit,
    Recorded,
    RequestFacts,
    named_session,
    read_request,
    reads_in_order,
)
from cachepin.request.chains import ResponseChains
from cachepin.request.diagnostics_edit import ThreadKey
from cachepin.request.dialects import Dialect
from cachepin.request.snapshot import Snapshot
from cachepin.request.thread import Position, Thread
from cachepin.response.diagnostics import Diagnosis
from cachepin.response.extract import Extracted
from cachepin.response.usage import Usage
from cachepin.turns.explain import Explanation, Reason
from cachepin.turns.models import Price, PriceTable
from cachepin.turns.turn import Verdict
from cachepin.turns.verdicts import Expect
from cachepin.views.events import parse_event
from cachepin.views.log_line import turn_log_line

MODEL = "claude-sonnet-4-5"
HEADER = "header:x-session-id"
MAIN = Thread("main", "header:x-claude-code-agent-id")


class Body:
    """The ``body`` callable of ``read_request``: the parse it returns, and whether it was asked for it."""

    def __init__(self, parsed: dict | None) -> None:
        self.parsed = parsed
        self.calls = 0

    def __call__(self) -> dict | None:
        self.calls += 1
        return self.parsed


def read(headers: dict[str, str], body: Body, *, explain: bool = False, judged: bool = False,
         pinned: tuple[str, str] | None = None, dialect: Dialect = Dialect.ANTHROPIC,
         chains: ResponseChains | None = None, salt: bytes = b"") -> RequestFacts:
    return read_request(dialect, flow_id="flow-7", started_at=1000.0, headers=headers, pinned=pinned, body=body,
                        explain=explain, chains=chains, judged=judged, salt=salt)


def usage(read_tokens: int | None = 0, creation: int | None = 1538, model: str = MODEL) -> Usage:
    return Usage("anthropic", model, 12, creation, read_tokens, 85)


def record(audit: Audit, facts: RequestFacts, extracted: Extracted, *, status: int = 200, at: float = 1000.0,
           first_byte: float | None = 0.25, end: float | None = 1.5) -> Recorded:
    return audit.record(facts, extracted, flow_id=f"flow-{at}", started_at=at, status=status, stream=True,
                        first_byte_at=None if first_byte is None else at + first_byte,
                        ended_at=None if end is None else at + end)


def facts(session: str = "s-1", *, thread: Thread | None = MAIN, position: Position | None = Position.START,
          snapshot: Snapshot | None = None, **fields: object) -> RequestFacts:
    return RequestFacts(session, HEADER, MODEL, snapshot, thread, position, **fields)  # type: ignore[arg-type]


# --- read_request: what is read, and when the body is parsed --------------------------------------------------


@pytest.mark.parametrize(("headers", "pinned", "expected"), [
    ({"x-session-id": "s-1"}, None, ("s-1", HEADER)),  # the client names its session
    ({}, ("s-inject", "fingerprint"), ("s-inject", "fingerprint")),  # the inject addon resolved it
    ({"x-session-id": "s-1"}, ("s-inject", "fingerprint"), ("s-inject", "fingerprint")),  # inject's word wins
])
def test_a_named_session_spares_the_parse_when_nothing_needs_the_body(
        headers: dict[str, str], pinned: tuple[str, str] | None, expected: tuple[str, str]) -> None:
    body = Body(anthropic_body(2))
    read_facts = read(headers, body, pinned=pinned)
    assert body.calls == 0
    assert (read_facts.session_id, read_facts.source) == expected
    assert (read_facts.model, read_facts.snapshot, read_facts.position) == (None, None, None)  # the response's
    # model keys the turns, as it does for every turn of a run without the explainer


def test_a_thread_named_in_the_headers_is_read_without_the_body() -> None:
    headers = {"x-session-id": "s-1", "x-claude-code-agent-id": "agent-2"}
    read_facts = read(headers, Body(None))
    assert read_facts.thread is not None and read_facts.thread.thread_id == "agent-2"


@pytest.mark.parametrize(("explain", "judged"), [(True, False), (False, True), (True, True)])
def test_the_explainer_or_a_gate_needs_the_body_even_of_a_named_session(explain: bool, judged: bool) -> None:
    body = Body(anthropic_body(2))
    read_facts = read({"x-session-id": "s-1"}, body, explain=explain, judged=judged)
    assert body.calls == 1
    assert (read_facts.session_id, read_facts.source) == ("s-1", HEADER)
    assert read_facts.position is Position.CONTINUATION  # the body resends an earlier assistant turn
    assert read_facts.thread is not None and read_facts.thread.source == "lineage"
    if explain:
        assert read_facts.model == "claude-sonnet-4-5-20250929" and isinstance(read_facts.snapshot, Snapshot)
    else:
        assert (read_facts.model, read_facts.snapshot) == (None, None)


def test_an_unnamed_session_is_read_from_the_body() -> None:
    body = Body(anthropic_body(1))
    read_facts = read({}, body)
    assert body.calls == 1
    assert read_facts.source == "fingerprint" and read_facts.session_id.startswith("fp_")
    assert read_facts.position is Position.START


def test_the_fingerprint_is_keyed_with_the_salt() -> None:
    ids = {read({}, Body(anthropic_body(1)), salt=salt).session_id for salt in (b"", b"one salt", b"another salt")}
    assert len(ids) == 3


@pytest.mark.parametrize("explain", [False, True])
def test_a_request_nothing_identifies_stays_apart_under_its_flow_id(explain: bool) -> None:
    """Pooled, unrelated requests would otherwise look like one session missing."""
    read_facts = read({}, Body(None), explain=explain)
    assert (read_facts.session_id, read_facts.source) == (f"{UNIDENTIFIED}:flow-7", "none")
    assert (read_facts.model, read_facts.snapshot) == (None, None)


@pytest.mark.parametrize("model", [7, None, ["claude-sonnet-4-5"], {"name": "x"}])
def test_only_a_string_is_a_model_name(model: object) -> None:
    body = anthropic_body(1) | {"model": model}
    assert read({"x-session-id": "s-1"}, Body(body), explain=True).model is None


def test_a_responses_request_continuing_a_known_response_joins_its_session() -> None:
    chains = ResponseChains()
    chains.learn("resp_1", "s-earlier", "fingerprint")
    body = {"model": "gpt-5", "previous_response_id": "resp_1", "input": "Now?"}
    read_facts = read({}, Body(body), dialect=Dialect.OPENAI_RESPONSES, chains=chains)
    assert (read_facts.session_id, read_facts.source) == ("s-earlier", "body:previous_response_id")


@pytest.mark.parametrize(("dialect", "pinned", "headers", "in_order"), [
    (Dialect.OPENAI_RESPONSES, None, {}, True),  # its session may be a response's not recorded yet
    (Dialect.OPENAI_RESPONSES, None, {"X-Session-Id": "s-1"}, False),  # a header names it
    (Dialect.OPENAI_RESPONSES, ("s-inject", "fingerprint"), {}, False),  # the inject addon resolved it
    (Dialect.OPENAI_RESPONSES, None, {"x-session-id": "bad id with spaces"}, True),  # not a valid id: none named
    (Dialect.ANTHROPIC, None, {}, False),  # continues no response by id
    (Dialect.OPENAI_CHAT, None, {}, False),
])
def test_an_unnamed_responses_request_is_read_after_the_turns_before_it(
        dialect: Dialect, pinned: tuple[str, str] | None, headers: dict[str, str], in_order: bool) -> None:
    assert reads_in_order(dialect, named_session(headers, pinned)) is in_order


# --- record: the turn, its reasons, what it teaches the audit -------------------------------------------------


def test_a_turn_is_recorded_with_its_timings_its_log_line_and_its_cost() -> None:
    audit = Audit()
    recorded = record(audit, facts(), Extracted(usage(0), response_id="msg_1"))
    turn = recorded.turn
    assert (turn.index, turn.verdict, turn.thread, turn.position) == (1, Verdict.COLD, "main", "start")
    assert (turn.ttft_ms, turn.duration_ms) == (250.0, 1500.0)
    assert recorded.log_line == turn_log_line("s-1", turn)
    assert recorded.cost == audit.price(turn) and recorded.cost is not None
    assert recorded.failures == []
    assert audit.runs == {audit.run: 1}
    assert audit.ledger.sessions[0].turns == [turn]


def test_a_turn_without_first_byte_or_end_has_no_timings() -> None:
    turn = record(Audit(), facts(), Extracted(usage(0)), first_byte=None, end=None).turn
    assert (turn.ttft_ms, turn.duration_ms) == (None, None)


def test_an_error_turn_is_kept_unpriced_and_teaches_nothing() -> None:
    audit = Audit()
    request = facts(compare_as=ThreadKey("s-1", "main", MODEL))
    recorded = record(audit, request, Extracted(error="overloaded_error", response_id="msg_1"), status=529)
    assert recorded.turn.verdict is Verdict.ERROR and recorded.cost is None
    assert len(audit.chains) == 0 and len(audit.baselines) == 0
    assert audit.runs[audit.run] == 1  # counted all the same


def test_a_successful_turn_teaches_its_response_id() -> None:
    audit = Audit()
    key = ThreadKey("s-1", "main", MODEL)
    record(audit, facts(compare_as=key), Extracted(usage(0), response_id="resp_1"))
    assert audit.chains.session_of({"previous_response_id": "resp_1"}) == "s-1"
    assert audit.baselines.baseline(key, continues=False) == "resp_1"


def test_a_failed_expectation_is_returned_with_the_turn_that_failed_it() -> None:
    audit = Audit()
    audit.ledger.expect = Expect("warm")
    record(audit, facts(), Extracted(usage(0)))
    missed = record(audit, facts(position=Position.CONTINUATION), Extracted(usage(0)), at=1010.0)
    assert missed.turn.verdict is Verdict.MISS
    assert missed.failures == ["session s-1 turn 2 (thread main), which continues a conversation: expected a cache "
                               "hit, read 0 (creation 1538, input 12)"]
    later = record(audit, facts(position=Position.CONTINUATION), Extracted(usage(1538, 0)), at=1020.0)
    assert later.turn.verdict is Verdict.HIT and later.failures == []  # new ones only


class Explains:
    """An explainer that notes what it is asked and answers ``miss`` (the explainer has tests of its own)."""

    def __init__(self, miss: Explanation | None = None) -> None:
        self.miss = miss
        self.asked: list[dict[str, object]] = []

    def observe(self, session_id: str, snapshot: object, used: object, *, thread: str, continues: bool) -> object:
        self.asked.append({"session": session_id, "thread": thread, "continues": continues})
        return self.miss


SNAPSHOT = Snapshot.from_request(Dialect.ANTHROPIC, anthropic_body(1), 1000.0)


@pytest.mark.parametrize(("position", "opens", "continues"), [
    (Position.START, True, False),
    (Position.CONTINUATION, False, True),
])
def test_the_explainer_is_asked_about_a_successful_turn_with_a_snapshot(position: Position, opens: bool,
                                                                        continues: bool) -> None:
    audit = Audit()
    explains = Explains(Explanation(Reason.PREFIX_CHANGED, "block 3 changed", {}))
    audit.explainer = explains  # type: ignore[assignment]
    if not opens:
        record(audit, facts(snapshot=SNAPSHOT), Extracted(usage(0)), at=990.0)  # the thread's opening turn
        explains.asked.clear()
    turn = record(audit, facts(snapshot=SNAPSHOT, position=position), Extracted(usage(0))).turn
    assert explains.asked == [{"session": "s-1", "thread": f"main@{MODEL}", "continues": continues}]
    assert turn.miss == Explanation(Reason.PREFIX_CHANGED, "block 3 changed", {})


@pytest.mark.parametrize(("request_facts", "extracted"), [
    (facts(snapshot=None), Extracted(usage(0))),  # nothing to explain with
    (facts(snapshot=SNAPSHOT), Extracted(error="overloaded_error")),  # an error is no miss
])
def test_the_explainer_is_not_asked_otherwise(request_facts: RequestFacts, extracted: Extracted) -> None:
    audit = Audit()
    audit.explainer = explains = Explains()  # type: ignore[assignment]
    assert record(audit, request_facts, extracted).turn.miss is None
    assert explains.asked == []


@pytest.mark.parametrize(("opted_in", "answer", "kept"), [
    (True, Diagnosis("no_divergence"), Diagnosis("opted_in")),  # null answered an opt-in: nothing was compared
    (False, Diagnosis("no_divergence"), Diagnosis("no_divergence")),
    (True, Diagnosis("system_changed", 41850), Diagnosis("system_changed", 41850)),
    (True, None, None),
])
def test_the_providers_diagnosis_is_kept_on_the_turn(opted_in: bool, answer: Diagnosis | None,
                                                     kept: Diagnosis | None) -> None:
    audit = Audit()
    turn = record(audit, facts(opted_in=opted_in), Extracted(usage(0), diagnosis=answer)).turn
    assert turn.provider_diagnosis == kept


# --- ask_for_diagnostics --------------------------------------------------------------------------------------


def test_anthropics_first_turn_opts_in_and_its_answer_compares_nothing() -> None:
    body = {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]}
    raw = json.dumps(body, separators=(",", ":")).encode()
    request, edited = Audit().ask_for_diagnostics(Dialect.ANTHROPIC, "/v1/messages", facts(), body, raw)
    assert edited == b'{"diagnostics":{"previous_message_id":null},' + raw[1:]
    assert request.compare_as == ThreadKey("s-1", "main", "claude-sonnet-4-6") and request.opted_in


def test_a_later_turn_names_its_threads_latest_response() -> None:
    audit = Audit()
    key = ThreadKey("s-1", "main", "claude-sonnet-4-6")
    audit.baselines.learn(key, "msg_1")
    body = {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hi"}]}
    request, edited = audit.ask_for_diagnostics(Dialect.ANTHROPIC, "/v1/messages",
                                                facts(position=Position.CONTINUATION), body, json.dumps(body).encode())
    assert edited is not None and json.loads(edited)["diagnostics"] == {"previous_message_id": "msg_1"}
    assert request.compare_as == key and not request.opted_in


def test_a_responses_first_turn_adds_nothing_yet_its_response_can_be_compared_with() -> None:
    """OpenAI: "Omit the comparison ID on the first turn"; it keeps a fingerprint of every response."""
    body = {"model": "gpt-5.6", "input": "hi"}
    request, edited = Audit().ask_for_diagnostics(Dialect.OPENAI_RESPONSES, "/v1/responses", facts(), body,
                                                  json.dumps(body).encode())
    assert edited is None
    assert request.compare_as == ThreadKey("s-1", "main", "gpt-5.6") and not request.opted_in


@pytest.mark.parametrize(("dialect", "path", "body", "request_facts"), [
    (Dialect.ANTHROPIC, "/v1/messages", None, facts()),  # no JSON object
    (Dialect.ANTHROPIC, "/v1/messages", {"model": "claude-sonnet-4-6"}, facts(thread=None)),  # no thread
    (Dialect.ANTHROPIC, "/model/x/invoke", {"model": "claude-sonnet-4-6"}, facts()),  # not the Claude API
    (Dialect.OPENAI_RESPONSES, "/v1/responses", {"model": "gpt-5"}, facts()),  # before GPT-5.6
    (Dialect.OPENAI_CHAT, "/v1/chat/completions", {"model": "gpt-5.6"}, facts()),
])
def test_nothing_is_asked_where_the_provider_cannot_answer(dialect: Dialect, path: str, body: dict | None,
                                                           request_facts: RequestFacts) -> None:
    raw = None if body is None else json.dumps(body).encode()
    assert Audit().ask_for_diagnostics(dialect, path, request_facts, body, raw) == (request_facts, None)


def test_a_body_that_cannot_be_edited_exactly_is_not_asked_for() -> None:
    """``raw`` None: the body is not the bytes its parse came from (say, decoded), so nothing can be spliced."""
    body = {"model": "claude-sonnet-4-6", "messages": []}
    assert Audit().ask_for_diagnostics(Dialect.ANTHROPIC, "/v1/messages", facts(), body, None) == (facts(), None)


# --- prices ---------------------------------------------------------------------------------------------------


def test_an_unpriced_model_is_warned_about_once() -> None:
    audit = Audit()
    turn = record(audit, facts(), Extracted(usage(0, model="house-llm-1"))).turn
    assert audit.unpriced(turn) == ("model 'house-llm-1' has no price: its turns are left out of the cost totals "
                                    "(totals.cost_unpriced_turns counts them); give its prices in a cache_prices "
                                    "file")
    assert audit.unpriced(turn) is None
    assert audit.price(turn) is None


def test_a_flow_that_warned_already_names_its_unpriced_model_at_its_next_turn() -> None:
    audit = Audit()
    turn = record(audit, facts(), Extracted(usage(0, model="house-llm-1"))).turn
    assert audit.unpriced(turn, warned=True) is None and not audit.unpriced_models  # one WARNING a flow
    assert audit.unpriced(turn) is not None
    assert audit.unpriced(turn) is None


@pytest.mark.parametrize("make", [
    lambda audit: record(audit, facts(), Extracted(usage(0))).turn,  # priced
    lambda audit: record(audit, facts(), Extracted(error="overloaded_error"), status=529).turn,  # an error
    lambda audit: record(audit, facts(), Extracted(Usage("openai", None, 1, None, None, 1))).turn,  # no model name
    lambda audit: record(audit, facts(), Extracted()).turn,  # no usage: no provider
], ids=["priced", "error", "no-model", "no-usage"])
def test_no_warning_for_a_priced_model_an_error_or_a_turn_without_a_model(make: Callable[[Audit], object]) -> None:
    audit = Audit()
    assert audit.unpriced(make(audit)) is None  # type: ignore[arg-type]


def test_the_warnings_stop_at_max_unpriced_models() -> None:
    audit = Audit()
    warned = [audit.unpriced(record(audit, facts(f"s-{n}"), Extracted(usage(0, model=f"house-{n}"))).turn)
              for n in range(MAX_UNPRICED + 3)]
    assert sum(warning is not None for warning in warned) == MAX_UNPRICED
    assert warned[-1] is None


def test_the_price_table_is_the_audits() -> None:
    audit = Audit()
    audit.prices = PriceTable({"house-llm-1": Price(1.0, 2.0, 0.1, 1.25, 2.0)})
    turn = record(audit, facts(), Extracted(usage(0, model="house-llm-1"))).turn
    assert audit.unpriced(turn) is None and audit.price(turn) is not None
    assert audit.price(record(audit, facts(), Extracted(usage(0))).turn) is None  # not in this table


# --- reset, resume, reports -----------------------------------------------------------------------------------


def test_a_reset_forgets_the_sessions_and_responses_but_keeps_the_expectations_and_prices() -> None:
    audit = Audit()
    audit.ledger.expect = Expect("warm")
    prices = audit.prices = PriceTable({})
    record(audit, facts(compare_as=ThreadKey("s-1", "main", MODEL)), Extracted(usage(0), response_id="resp_1"))
    explainer = Explains()
    audit.reset(explainer)  # type: ignore[arg-type]
    assert audit.ledger.sessions == [] and len(audit.chains) == 0 and len(audit.baselines) == 0
    assert audit.explainer is explainer
    assert audit.ledger.expect is Expect.WARM and audit.prices is prices


def test_resume_seeds_the_ledger_with_an_earlier_runs_turns_listed_before_this_one() -> None:
    earlier = Audit()
    lines = []
    for n, read_tokens in enumerate((0, 1538)):
        request = facts(position=Position.START if n == 0 else Position.CONTINUATION)
        lines.append(earlier.event_line(request, record(earlier, request, Extracted(usage(read_tokens)), at=n)))
    audit = Audit()
    record(audit, facts("s-2"), Extracted(usage(0)))
    assert audit.resume(parse_event(line) for line in lines) == 2
    assert audit.resumed
    assert list(audit.runs.items()) == [(earlier.run, 2), (audit.run, 1)]
    assert sorted(session.session_id for session in audit.ledger.sessions) == ["s-1", "s-2"]


def test_write_reports_writes_each_named_file(tmp_path: Path) -> None:
    audit = Audit(versions={"mitmproxy": "12.0.0"})
    record(audit, facts(), Extracted(usage(0)))
    paths = {name: tmp_path / name for name in ("report.json", "junit.xml", "report.html")}
    assert audit.write_reports(*(str(path) for path in paths.values())) == {}
    report = json.loads(paths["report.json"].read_text())
    assert report["run_id"] == audit.run.run_id and report["versions"]["mitmproxy"] == "12.0.0"
    assert report["runs"] == [{"run_id": audit.run.run_id, "instance": audit.run.instance, "turns": 1}]
    assert report["generated_at"].endswith("Z") and report["started_at"].endswith("Z")
    assert paths["junit.xml"].read_text().startswith("<?xml")
    assert "<html" in paths["report.html"].read_text()


def test_an_unnamed_file_is_not_written(tmp_path: Path) -> None:
    audit = Audit()
    assert audit.write_reports(str(tmp_path / "report.json"), "") == {}
    assert [path.name for path in tmp_path.iterdir()] == ["report.json"]


def test_a_file_that_cannot_be_written_keeps_neither_the_others_nor_its_next_write_from_being_written(
        tmp_path: Path) -> None:
    audit = Audit()
    blocked = tmp_path / "missing-folder" / "report.json"
    errors = audit.write_reports(str(blocked), str(tmp_path / "junit.xml"))
    assert list(errors) == ["cache_report"] and isinstance(errors["cache_report"], OSError)
    assert (tmp_path / "junit.xml").exists()
    assert audit.unwritten == {"cache_report"}
    audit.reset(Explains())  # type: ignore[arg-type]  # what is lost stays lost
    assert audit.unwritten == {"cache_report"}
    assert audit.write_reports(str(tmp_path / "report.json"), "") == {}
    assert audit.unwritten == set()


def test_append_event_appends_the_turns_event_line(tmp_path: Path) -> None:
    audit, events = Audit(), tmp_path / "events.jsonl"
    for n in range(2):
        request = facts(position=Position.START if n == 0 else Position.CONTINUATION)
        assert audit.append_event(str(events), request, record(audit, request, Extracted(usage(0)), at=n)) is None
    lines = events.read_text().splitlines()
    assert [(parse_event(line).session_id, parse_event(line).flow_id) for line in lines] == [
        ("s-1", "flow-0"), ("s-1", "flow-1")]
    assert audit.unwritten == set()


def test_append_event_writes_nothing_without_a_file(tmp_path: Path) -> None:
    audit = Audit()
    assert audit.append_event("", facts(), record(audit, facts(), Extracted(usage(0)))) is None
    assert list(tmp_path.iterdir()) == [] and audit.unwritten == set()


def test_a_lost_event_line_stays_lost(tmp_path: Path) -> None:
    audit, events = Audit(), tmp_path / "events.jsonl"
    error = audit.append_event(str(tmp_path / "missing-folder" / "events.jsonl"), facts(),
                               record(audit, facts(), Extracted(usage(0))))
    assert isinstance(error, OSError) and audit.unwritten == {"cache_events"}
    assert audit.append_event(str(events), facts(), record(audit, facts(), Extracted(usage(0)), at=2)) is None
    assert events.exists() and audit.unwritten == {"cache_events"}  # the next line written: the lost one is not


# --- Responses chains: a request that continues a response is in that response's thread -----------------------


def test_a_request_names_the_response_it_continues() -> None:
    body = {"model": "gpt-5", "input": "And the tests?", "previous_response_id": "resp_1"}
    responses = {"dialect": Dialect.OPENAI_RESPONSES, "pinned": ("s-1", HEADER), "explain": True}
    assert read({}, Body(body), **responses).continues == "resp_1"  # type: ignore[arg-type]
    assert read({}, Body(body), **{**responses, "dialect": Dialect.OPENAI_CHAT}).continues is None  # type: ignore[arg-type]
    assert read({}, Body({**body, "previous_response_id": 7}), **responses).continues is None  # type: ignore[arg-type]


@pytest.mark.parametrize("learned", [True, False], ids=["chain-known", "chain-unknown"])
def test_a_chained_turn_continues_the_thread_of_its_response(learned: bool) -> None:
    """Each chained request resends only its new input, so its own lineage differs every turn."""
    audit = Audit()
    first = Thread("ln_first", "lineage")
    record(audit, facts(thread=first), Extracted(usage(0), response_id="resp_1" if learned else None))
    chained = facts(thread=Thread("ln_new_input", "lineage"), position=Position.CONTINUATION, continues="resp_1")
    turn = record(audit, chained, Extracted(usage(0, creation=0), response_id="resp_2"), at=1001.0).turn
    if learned:
        assert (turn.thread, turn.verdict) == ("ln_first", Verdict.MISS)  # a later turn of a thread that read nothing
        assert audit.chains.thread_of("resp_2") == first  # and the next one continues it too
    else:  # another replica's response: its own lineage, a continuation that read nothing all the same
        assert (turn.thread, turn.verdict) == ("ln_new_input", Verdict.MISS)


def test_a_thread_the_client_names_is_kept_over_a_chain() -> None:
    audit = Audit()
    record(audit, facts(thread=Thread("ln_first", "lineage")), Extracted(usage(0), response_id="resp_1"))
    named = Thread("t-9", "header:thread-id")
    turn = record(audit, facts(thread=named, position=Position.CONTINUATION, continues="resp_1"),
                  Extracted(usage(1538, creation=0)), at=1001.0).turn
    assert turn.thread == "t-9"
