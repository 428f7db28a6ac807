"""The JSON report (schema version 2, still readable as version 1), event lines, and costs in both."""

from __future__ import annotations

import json

import pytest
from ledgers import SID, long_session, record

from cachepin.turns.explain import Explanation, Reason
from cachepin.turns.ledger import Ledger
from cachepin.turns.models import DEFAULT_PRICES, Price, PriceTable
from cachepin.turns.pricing import cost
from cachepin.turns.turn import Turn, Verdict
from cachepin.views.report import report_json, turn_dict

COUNTS = {"input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"}
V1_TURN_KEYS = {"index", "flow_id", "started_at", "provider", "model", "status", "stream", "verdict", "ttft_ms",
                "duration_ms", "cost"} | COUNTS  # fmt: skip
TURN_KEYS = V1_TURN_KEYS | {"thread", "position"}
SUMS = {"requests", "errors", "hit_ratio", "judged_hit_ratio", "cost"} | COUNTS
V1_SESSION_KEYS = {"session_id", "source", "requests", "hit_ratio", "cost", "failures", "turns"} | COUNTS
SESSION_KEYS = V1_SESSION_KEYS | SUMS | {"threads", "folded_turns"}
THREAD_KEYS = {"thread_id", "source", "parent", "model", "turns", "folded_turns"} | SUMS


def read_report(ledger: Ledger, about: dict[str, object] | None = None) -> dict:
    return json.loads("".join(report_json(ledger, about)))


# --- the JSON report ----------------------------------------------------------------------------


def test_report_schema_has_exactly_the_version_2_keys(ledger: Ledger) -> None:
    about = {"generated_at": "2026-12-02T17:00:00.000Z", "started_at": "2026-12-02T16:00:00.000Z", "run_id": "r1",
             "versions": {"cachepin": "0.1.0", "mitmproxy": "12.3.1"}}
    report = read_report(ledger, about)
    assert set(report) == {"version", "ok", "expectations", "totals", "sessions", "failures"} | set(about)
    assert report["version"] == 2 and report["run_id"] == "r1"
    assert report["ok"] is False
    assert report["expectations"] == {"expect": "warm", "min_hit": 50}
    assert set(report["totals"]) == SUMS | {"cost_unpriced_turns", "sessions", "evicted_sessions"}
    assert [set(s) for s in report["sessions"]] == [SESSION_KEYS] * 3
    assert all(set(t) == TURN_KEYS for s in report["sessions"] for t in s["turns"])
    assert all(set(t) == THREAD_KEYS for s in report["sessions"] for t in s["threads"])
    assert all(set(f) == {"session_id", "turn", "message"} for f in report["failures"])


def test_a_version_1_reader_still_finds_what_it_read(ledger: Ledger) -> None:
    """Version 2 only adds: sessions[].requests, the four sums and turns[].verdict are where they were."""
    report = read_report(ledger)
    assert all(V1_SESSION_KEYS <= set(s) and all(V1_TURN_KEYS <= set(t) for t in s["turns"])
               for s in report["sessions"])
    assert [s["requests"] for s in report["sessions"]] == [2, 2, 1]
    assert sum(len(thread["turns"]) for s in report["sessions"] for thread in s["threads"]) == 6


def test_report_figures(ledger: Ledger) -> None:
    report = read_report(ledger)
    assert report["totals"] == {
        "input_tokens": 44, "cache_creation_input_tokens": 12076, "cache_read_input_tokens": 9000,
        "output_tokens": 28, "requests": 5, "errors": 1, "hit_ratio": round(9000 / 21120, 4),
        "judged_hit_ratio": round(9000 / (9000 + 10 + 1538 + 12), 4), "cost": None, "cost_unpriced_turns": 5,
        "sessions": 3, "evicted_sessions": 0,
    }  # fmt: skip
    first, second, third = report["sessions"]
    assert [first["session_id"], second["session_id"], third["session_id"]] == [SID, "second", "third"]
    assert (first["requests"], first["hit_ratio"], first["failures"]) == (2, round(9000 / 18020, 4), [])
    assert [t["verdict"] for t in first["turns"]] == ["cold", "hit", "error"]
    assert first["turns"][2]["status"] == 529
    assert first["turns"][0] | {"verdict": None} == {
        "index": 1, "flow_id": "flow-0", "started_at": 1_700_000_000.25, "provider": "anthropic",
        "model": "claude-sonnet-4-5", "status": 200, "stream": True, "input_tokens": 10,
        "cache_creation_input_tokens": 9000, "cache_read_input_tokens": 0, "output_tokens": 7, "verdict": None,
        "ttft_ms": 120.3, "duration_ms": 1500.0, "cost": None, "thread": "model:claude-sonnet-4-5", "position": None,
    }  # fmt: skip
    assert [(t["thread_id"], t["source"], t["turns"], t["errors"]) for t in first["threads"]] == [
        ("model:claude-sonnet-4-5", "model", [1, 2, 3], 1)]
    assert (first["errors"], first["judged_hit_ratio"]) == (1, round(9000 / 9010, 4))
    assert second["hit_ratio"] == 0.0 and len(second["failures"]) == 2
    assert third["hit_ratio"] is None
    assert all(third[name] is None for name in COUNTS)
    assert [(f["session_id"], f["turn"]) for f in report["failures"]] == [("second", 2), ("second", None)]
    assert report["failures"][0]["message"] == (
        "session second turn 2: expected a cache hit, read 0 (creation 1538, input 12)"
    )


def evicted_and_failing() -> Ledger:
    ledger = Ledger(expect="warm", max_sessions=1)
    for sid in ("old", "old", "new\u2028\x01\"id"):
        record(ledger, sid, 0)
    ledger.finalize()
    return ledger


@pytest.mark.parametrize("make", [lambda: None, Ledger, evicted_and_failing], ids=["fixture", "empty", "evicted"])
def test_the_report_written_in_pieces_is_what_json_dumps_writes(ledger: Ledger, make) -> None:
    """Byte for byte the indented JSON of version 2, whatever the ids hold: only the writing changed."""
    ledger = make() or ledger
    about = {"generated_at": "2026-12-02T17:00:00.000Z", "versions": {"cachepin": "0.1.0"}}
    text = "".join(report_json(ledger, about))
    assert text == json.dumps(json.loads(text), indent=2) + "\n"
    assert list(json.loads(text)) == ["version", "generated_at", "versions", "ok", "expectations", "totals",
                                      "sessions", "failures"]


def test_an_empty_ledger_reports_nulls_not_zero_percent() -> None:
    report = read_report(Ledger())
    assert report["ok"] is True
    assert report["totals"] == {name: None for name in COUNTS} | {
        "requests": 0, "errors": 0, "hit_ratio": None, "judged_hit_ratio": None, "cost": None,
        "cost_unpriced_turns": 0, "sessions": 0, "evicted_sessions": 0}
    assert (report["sessions"], report["failures"]) == ([], [])


def test_evicted_sessions_leave_their_failures_and_totals() -> None:
    ledger = Ledger(expect="warm", max_sessions=1)
    record(ledger, "old", 0)
    record(ledger, "old", 0)
    record(ledger, "new", 0)
    report = read_report(ledger)
    assert [s["session_id"] for s in report["sessions"]] == ["new"]
    assert report["totals"]["requests"] == 3
    assert [f["session_id"] for f in report["failures"]] == ["old"]


@pytest.mark.parametrize("miss", [None, Explanation(Reason.TTL_EXPIRED, "gap 400s", {"gap_s": 400.0, "ttl_s": 300.0})])
def test_notes_are_rendered_only_for_a_miss_reason(miss: Explanation | None) -> None:
    turn = Turn(index=1, flow_id="f", started_at=0.0, status=200, stream=False, verdict=Verdict.MISS, miss=miss)
    out = turn_dict(turn)
    assert ("notes" in out) is (miss is not None)
    assert set(out) - {"notes"} == TURN_KEYS
    if miss is not None:
        assert out["notes"] == {"miss": {"reason": "ttl_expired", "detail": "gap 400s",
                                         "evidence": {"gap_s": 400.0, "ttl_s": 300.0}}}


def test_costs_per_turn_session_and_total_with_evicted_sessions_kept() -> None:
    """$3/M input, $0.30/M read, $3.75/M 5 min write, $15/M output: the arithmetic by hand."""
    table = PriceTable({"claude-sonnet-4-5": Price(input=3.0, output=15.0, cache_read=0.3, cache_write_5m=3.75,
                                                     cache_write_1h=6.0)})
    ledger = Ledger(max_sessions=1, pricer=lambda turn: cost(turn.usage(), table))
    record(ledger, "a", 0, creation=1_000_000, input_tokens=0)  # billed 3.75 + 7*15e-6, uncached 3 + ...
    record(ledger, "a", 1_000_000, creation=0, input_tokens=0)  # billed 0.3 + ..., uncached 3 + ...
    record(ledger, "a", 0, status=529)  # error turns are never priced
    record(ledger, "b", 0, creation=0, input_tokens=1_000_000)  # evicts "a"
    out = 7 * 15 / 1_000_000
    report = read_report(ledger)
    assert report["totals"]["cost"] == {"billed": round(3.75 + 0.3 + 3 + 3 * out, 6),
                                        "uncached": round(9 + 3 * out, 6),
                                        "saving": round(9 - 3.75 - 0.3 - 3, 6)}
    assert report["totals"]["cost_unpriced_turns"] == 0
    (b,) = report["sessions"]
    assert b["cost"] == {"billed": round(3 + out, 6), "uncached": round(3 + out, 6), "saving": 0.0}
    assert b["turns"][0]["cost"] == b["cost"]


def test_unknown_models_have_no_cost() -> None:
    ledger = Ledger(pricer=lambda turn: cost(turn.usage(), PriceTable({})))
    record(ledger, "a", 0)
    report = read_report(ledger)
    assert report["totals"]["cost"] is None and report["sessions"][0]["turns"][0]["cost"] is None
    assert report["totals"]["cost_unpriced_turns"] == 1  # the totals say how many turns they leave out


def diagnosed(ledger: Ledger, read: int, reason: str | None, miss: Explanation | None = None) -> Turn:
    """A turn of session "d" whose response carried the provider's diagnosis ``reason``, as the audit attaches it."""
    from cachepin.response.diagnostics import Diagnosis

    record(ledger, "d", read)
    turn = ledger.sessions[-1].turns[-1]
    turn.miss = miss
    turn.provider_diagnosis = None if reason is None else Diagnosis(reason, 41735 if miss is not None else None)
    ledger.diagnoses.add(turn)
    return turn


def test_the_providers_diagnosis_is_rendered_next_to_cachepins_reason() -> None:
    ledger = Ledger()
    diagnosed(ledger, 0, "no_divergence")  # the first, opting-in turn: judged against nothing
    diagnosed(ledger, 0, "tools_changed", Explanation(Reason.PREFIX_CHANGED, "prefix inserted at tools[1]",
                                                      {"path": "tools[1]"}))
    diagnosed(ledger, 9000, None)
    first, changed, plain = read_report(ledger)["sessions"][0]["turns"]
    assert first["provider_diagnosis"] == {"reason": "no_divergence", "missed_tokens": None, "agreement": None}
    assert changed["notes"]["miss"]["reason"] == "prefix_changed"
    assert changed["provider_diagnosis"] == {"reason": "tools_changed", "missed_tokens": 41735, "agreement": "agree"}
    assert "provider_diagnosis" not in plain
    assert read_report(ledger)["totals"]["diagnostics"] == {
        "agree": 1, "disagree": 0, "inconclusive": 0,
        "by_reason": {"tools_changed": {"agree": 1, "disagree": 0, "inconclusive": 0, "same_location": 1,
                                        "cachepin": {"prefix_changed": 1}}}}


def test_without_diagnoses_the_report_is_as_it_was(ledger: Ledger) -> None:
    report = read_report(ledger)
    assert "diagnostics" not in report["totals"]
    assert not any("provider_diagnosis" in turn for session in report["sessions"] for turn in session["turns"])


# --- a long session: its oldest turns folded into its sums (max_turns) ---------------------------------------


def long_report(max_turns: int) -> dict:
    ledger = Ledger(expect="warm", min_hit=96, max_turns=max_turns,
                    pricer=lambda turn: cost(turn.usage(), DEFAULT_PRICES))
    long_session(ledger, 5000)
    ledger.finalize()
    return read_report(ledger)


def without_turn_lists(report: dict) -> dict:
    def strip(part: dict) -> dict:
        return {key: value for key, value in part.items() if key not in ("turns", "folded_turns")}
    return {**report, "sessions": [{**strip(session), "threads": [strip(thread) for thread in session["threads"]]}
                                   for session in report["sessions"]]}


@pytest.mark.parametrize("max_turns", [1, 100, 4999])
def test_a_long_session_reports_the_same_sums_and_failures_whatever_it_holds(max_turns: int) -> None:
    held, whole = long_report(max_turns), long_report(0)
    assert without_turn_lists(held) == without_turn_lists(whole)
    (session,), (every,) = held["sessions"], whole["sessions"]
    assert session["cost"] is not None and session["errors"] > 0 and len(session["threads"]) > 2
    assert (session["folded_turns"], len(session["turns"]), every["folded_turns"]) == (5000 - max_turns, max_turns, 0)
    assert [turn["index"] for turn in session["turns"]] == list(range(5001 - max_turns, 5001))
    held_indices = {turn["index"] for turn in session["turns"]}
    for thread, all_of_it in zip(session["threads"], every["threads"], strict=True):
        assert set(thread["turns"]) <= held_indices and set(thread["turns"]) <= set(all_of_it["turns"])
        assert thread["folded_turns"] == len(all_of_it["turns"]) - len(thread["turns"])
        assert all_of_it["folded_turns"] == 0
