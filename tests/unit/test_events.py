"""Event lines: one JSON line per turn with every input of the ledger, read back into the same report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cachepin.audit import Audit, RequestFacts
from cachepin.request.thread import Position, Thread
from cachepin.response.diagnostics import Diagnosis
from cachepin.response.extract import Extracted
from cachepin.response.usage import Usage
from cachepin.turns.explain import Explanation, Reason
from cachepin.turns.ledger import Ledger
from cachepin.turns.verdicts import Expect
from cachepin.views.events import EVENTS_VERSION, MAX_PROBLEMS, Run, merged, parse_event, read_events, replay
from cachepin.views.report import report_json

MAIN = Thread("main-agent", "header:x-claude-code-agent-id")
SUB = Thread("sub-agent", "header:x-claude-code-agent-id", parent="main-agent")
START, MORE = Position.START, Position.CONTINUATION


def usage(read: int | None, creation: int | None = 0, *, model: str = "claude-sonnet-4-5",
          split: tuple[int | None, int | None] = (None, None)) -> Usage:
    return Usage("anthropic", model, 12, creation, read, 85, *split)


class Traffic:
    """Turns recorded through ``Audit.record`` as the addon records them, with the event line of each."""

    def __init__(self, audit: Audit | None = None) -> None:
        self.audit = audit or Audit()
        self.lines: list[str] = []
        self.clock = 1_700_000_000.0

    def turn(self, session: str, extracted: Extracted, *, thread: Thread | None = MAIN, position: Position = MORE,
             model: str | None = "claude-sonnet-4-5", status: int = 200, source: str = "header:x-session-id",
             miss: Explanation | None = None) -> None:
        self.clock += 1.5
        self.audit.explainer = _Explains(miss)  # type: ignore[assignment]
        facts = RequestFacts(session, source, model, _SNAPSHOT, thread, position)  # type: ignore[arg-type]
        recorded = self.audit.record(facts, extracted, flow_id=f"flow-{len(self.lines)}", started_at=self.clock,
                                     status=status, stream=True, first_byte_at=self.clock + 0.25,
                                     ended_at=self.clock + 1.0)
        self.lines.append(self.audit.event_line(facts, recorded))


_SNAPSHOT = object()  # the explainer below needs none, and the audit asks it only about a request with one


class _Explains:
    """An explainer that finds the reason it is given (the explainer has tests of its own)."""

    def __init__(self, miss: Explanation | None) -> None:
        self.miss = miss

    def observe(self, *args: object, **kwargs: object) -> Explanation | None:
        return self.miss


def conversation(traffic: Traffic) -> Traffic:
    """Every kind of turn a report distinguishes: threads with parents, a model's own thread, errors, misses
    with reasons, the provider's diagnosis, a 1 h write, figures not reported, a second session."""
    gap = Explanation(Reason.TTL_EXPIRED, "gap 400s > ttl 300s", {"gap_s": 400.0, "ttl_s": 300.0})
    traffic.turn("s1", Extracted(usage(0, 1538, split=(538, 1000))), position=START)
    traffic.turn("s1", Extracted(usage(1538)))
    traffic.turn("s1", Extracted(usage(0, 1600), diagnosis=Diagnosis("system_changed", 41850)), miss=gap)
    traffic.turn("s1", Extracted(usage(0, 900)), thread=SUB, position=START)
    traffic.turn("s1", Extracted(usage(900)), thread=SUB)
    traffic.turn("s1", Extracted(error="overloaded_error"), status=529)
    traffic.turn("s1", Extracted(usage(0, 40, model="claude-haiku-4-5")), thread=None, position=START,
                 model="claude-haiku-4-5")
    traffic.turn("s2", Extracted(Usage("openai", "gpt-5.1", 100, None, None, 9)), thread=None, model="gpt-5.1",
                 source="fingerprint")
    traffic.turn("s2", Extracted(), thread=None, model="gpt-5.1", source="fingerprint")
    return traffic


def report(ledger: Ledger) -> dict:
    ledger.finalize()
    return json.loads("".join(report_json(ledger)))


def rebuilt(lines: list[str], **expectations: object) -> Ledger:
    ledger = Ledger(**expectations)  # type: ignore[arg-type]
    replay(ledger, (parse_event(line) for line in lines))
    return ledger


# --- the line -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "odd\nmodel\u2028name"])
def test_an_event_is_one_json_line_that_says_who_wrote_it(model: str) -> None:
    traffic = Traffic()
    traffic.turn("s1", Extracted(usage(0, 1538, model=model)), model=model, position=START)
    (line,) = traffic.lines
    assert "\n" not in line and "\r" not in line and "\u2028" not in line
    event = json.loads(line)
    assert event["events_version"] == EVENTS_VERSION
    assert (event["run_id"], event["instance"]) == traffic.audit.run
    assert event["thread_source"] == MAIN.source and event["requested_model"] == model
    assert event["turn"]["model"] == model and event["turn"]["verdict"] == "cold"
    assert isinstance(event["recorded_at"], float)


# --- read back ----------------------------------------------------------------------------------


@pytest.mark.parametrize("expectations", [{}, {"expect": "warm"}, {"min_hit": 90}, {"expect": "warm", "min_hit": 50}])
def test_the_events_rebuild_the_report_the_addon_wrote(expectations: dict) -> None:
    audit = Audit()
    audit.ledger.expect = Expect(expectations.get("expect", "off"))
    audit.ledger.min_hit = expectations.get("min_hit", 0)
    traffic = conversation(Traffic(audit))
    original = report(audit.ledger)
    again = rebuilt(traffic.lines, pricer=audit.price, **expectations)
    assert report(again) == original
    assert original["sessions"][0]["threads"][1]["parent"] == "main-agent"  # the traffic has what is compared
    assert original["totals"]["diagnostics"] and original["sessions"][0]["turns"][2]["notes"]["miss"]


def test_a_conversation_split_over_replicas_is_judged_as_one(tmp_path: Path) -> None:
    """Replica A sees turns 1 and 3, replica B turns 2 and 4: B's first turn continues a conversation and reads
    nothing, a miss either way; merged, the turns are numbered as one conversation's."""
    one, a, b = Traffic(), Traffic(), Traffic()
    for n, (replica, read) in enumerate([(a, 0), (b, 0), (a, 1538), (b, 1538)]):
        for traffic in (one, replica):
            traffic.clock = 1_700_000_000.0 + 10 * n
            traffic.turn("s1", Extracted(usage(read, 1538 - read)), position=START if n == 0 else MORE)
    problems: list[str] = []
    ledger = Ledger(expect="warm")
    for name, traffic in (("a", a), ("b", b)):
        (tmp_path / name).write_text("\n".join(traffic.lines) + "\n")
    runs = replay(ledger, merged([tmp_path / "a", tmp_path / "b"], problems))
    assert problems == [] and sorted(runs.values()) == [2, 2] and set(runs) == {a.audit.run, b.audit.run}
    (session,) = ledger.sessions
    assert [turn.verdict.value for turn in session.turns] == ["cold", "miss", "hit", "hit"]
    assert [turn.index for turn in session.turns] == [1, 2, 3, 4]
    assert [turn.flow_id for turn in session.turns] == ["flow-0", "flow-0", "flow-1", "flow-1"]
    merged_report, one_report = report(ledger), report(_replayed(one))
    for turns in (merged_report["sessions"][0]["turns"], one_report["sessions"][0]["turns"]):
        for turn in turns:
            del turn["flow_id"]  # each replica numbers its own flows
    assert merged_report["sessions"] == one_report["sessions"] and merged_report["totals"] == one_report["totals"]


def _replayed(traffic: Traffic) -> Ledger:
    ledger = Ledger(expect="warm")
    replay(ledger, (parse_event(line) for line in traffic.lines))
    return ledger


def test_each_file_keeps_its_own_order_when_merged(tmp_path: Path) -> None:
    first, second = Traffic(), Traffic()
    for traffic, clock in ((first, 10.0), (second, 5.0)):
        for n in range(3):
            traffic.turn(f"s-{clock}", Extracted(usage(0 if n == 0 else 100)), position=START if n == 0 else MORE)
    lines = [json.loads(line) for line in first.lines]
    lines[1]["recorded_at"], lines[2]["recorded_at"] = 30.0, 20.0  # a clock that went back: the file's order wins
    for n, line in enumerate(lines):
        line["recorded_at"] = line["recorded_at"] if n else 10.0
    (tmp_path / "a").write_text("".join(json.dumps(line) + "\n" for line in lines))
    others = [json.loads(line) for line in second.lines]
    for n, line in enumerate(others):
        line["recorded_at"] = 15.0 + 10 * n
    (tmp_path / "b").write_text("".join(json.dumps(line) + "\n" for line in others))
    order = [(event.session_id, event.recorded_at) for event in merged([tmp_path / "a", tmp_path / "b"], [])]
    assert order == [("s-10.0", 10.0), ("s-5.0", 15.0), ("s-5.0", 25.0), ("s-10.0", 30.0), ("s-10.0", 20.0),
                     ("s-5.0", 35.0)]


def _good() -> dict:
    traffic = Traffic()
    traffic.turn("s1", Extracted(usage(0, 1538)), position=START)
    return json.loads(traffic.lines[0])


@pytest.mark.parametrize(("change", "message"), [
    (lambda e: "{not json", "not JSON (Expecting property name"),
    (lambda e: [e], "not a JSON object"),
    (lambda e: e.pop("events_version") and e, "events_version None: this cachepin reads version 2"),
    (lambda e: e.update(events_version=1) or e, "events_version 1:"),
    (lambda e: e.pop("session_id") and e, "session_id is missing"),
    (lambda e: e.update(session_id=7) or e, "session_id is 7, not a str"),
    (lambda e: e["turn"].update(status=True) or e, "status is true, not a number"),
    (lambda e: e["turn"].update(input_tokens=-1) or e, "input_tokens is -1, not a count"),
    (lambda e: e["turn"].update(started_at="noon") or e, 'started_at is "noon", not a number'),
    (lambda e: e.pop("recorded_at") and e, "recorded_at is missing, not a number"),
    (lambda e: e["turn"].update(position="middle") or e, 'position "middle" is not one of start, continuation'),
    (lambda e: e["turn"].update(notes={"miss": {"reason": "bad luck"}}) or e,
     'miss reason "bad luck" is not one of no_breakpoint'),
    (lambda e: e.pop("turn") and e, "turn is missing"),
    (lambda e: e.update(recorded_at=10**400) or e, "recorded_at is 100000000000…, not a number"),
    (lambda e: e["turn"].update(input_tokens=2**64) or e, "input_tokens is 18446744073709551616, not a count"),
    (lambda e: json.dumps(e).replace('"ttft_ms": 250.0', '"ttft_ms": NaN'), "NaN is not a JSON number"),
    (lambda e: json.dumps(e).replace('"ttft_ms": 250.0', '"ttft_ms": 1e999'), "ttft_ms is Infinity, not a number"),
])
def test_a_bad_line_says_what_is_wrong(change, message: str) -> None:
    changed = change(_good())
    with pytest.raises(ValueError) as raised:
        parse_event(changed if isinstance(changed, str) else json.dumps(changed))
    assert str(raised.value).startswith(message)


def test_bad_lines_are_skipped_and_named(tmp_path: Path) -> None:
    good = json.dumps(_good())
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join([good, "{torn", "", good, *["[]"] * (MAX_PROBLEMS + 3)]) + "\n")
    problems: list[str] = []
    events = list(read_events(path, problems))
    assert len(events) == 2
    assert problems[0] == f"{path}:2: not JSON (Expecting property name enclosed in double quotes)"
    assert problems[1] == f"{path}:5: not a JSON object"
    assert len(problems) == MAX_PROBLEMS + 1 and problems[-1] == f"{path}: 4 more lines skipped"


def test_an_error_is_written_by_its_type_and_a_message_not_at_all() -> None:
    traffic = Traffic()
    traffic.turn("s1", Extracted(error="overloaded_error"), status=529)
    traffic.turn("s1", Extracted(error="Server disconnected: https://h/v1/messages?key=SECRET"))
    traffic.turn("s1", Extracted(usage(0, 100), error=""))  # str(TimeoutError()): still an error
    assert [json.loads(line)["error"] for line in traffic.lines] == ["overloaded_error", "connection_error",
                                                                     "connection_error"]
    assert "SECRET" not in "".join(traffic.lines)
    again = rebuilt(traffic.lines)
    assert [turn.verdict.value for turn in again.sessions[0].turns] == ["error", "error", "error"]


def test_evictions_replay_alike_with_the_proxys_max_sessions() -> None:
    """A session evicted and back opens its thread again at a start: the rebuild must hold as many sessions."""
    audit = Audit()
    audit.ledger.max_sessions = 1
    traffic = Traffic(audit)
    for session, read in (("s1", 0), ("s2", 0), ("s1", 0)):
        traffic.turn(session, Extracted(usage(read, 1538)), position=START)
    assert report(rebuilt(traffic.lines, max_sessions=1, pricer=audit.price)) == report(audit.ledger)
    assert report(rebuilt(traffic.lines))["ok"] is True  # held all: the third turn is s1's second start, cold


def test_an_event_without_usage_is_a_turn_without_figures() -> None:
    event = _good()
    event["turn"].update(provider=None, verdict="error")
    event["error"] = "overloaded_error"
    parsed = parse_event(json.dumps(event))
    assert parsed.usage is None and parsed.error == "overloaded_error" and parsed.run == Run(event["run_id"],
                                                                                            event["instance"])
