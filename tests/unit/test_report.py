"""Renderers and writers over the ledger: JSON report, event lines, JUnit, table, log lines."""

from __future__ import annotations

import json
import os
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cachepin.response.usage import Usage
from cachepin.turns.explain import Explanation, Reason
from cachepin.turns.ledger import Ledger
from cachepin.turns.models import Price, PriceTable
from cachepin.turns.pricing import cost
from cachepin.turns.turn import Turn, Verdict
from cachepin.views.files import append_line, write_json_atomic
from cachepin.views.junit import junit_xml
from cachepin.views.log_line import turn_log_line
from cachepin.views.report import event_line, report_dict, turn_dict
from cachepin.views.table import summary_table

COUNTS = {"input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens"}
V1_TURN_KEYS = {"index", "flow_id", "started_at", "provider", "model", "status", "stream", "verdict", "ttft_ms",
                "duration_ms", "cost"} | COUNTS  # fmt: skip
TURN_KEYS = V1_TURN_KEYS | {"thread", "position"}
SUMS = {"requests", "errors", "hit_ratio", "judged_hit_ratio", "cost"} | COUNTS
V1_SESSION_KEYS = {"session_id", "source", "requests", "hit_ratio", "cost", "failures", "turns"} | COUNTS
SESSION_KEYS = V1_SESSION_KEYS | SUMS | {"threads"}
THREAD_KEYS = {"thread_id", "source", "parent", "model", "turns"} | SUMS
SID = "3f2a9c1e-0000-4000-8000-000000000000"


def record(
    ledger: Ledger,
    session_id: str,
    read: int | None,
    *,
    status: int = 200,
    creation: int | None = 0,
    input_tokens: int | None = 10,
    ttft_ms: float | None = 120.26,
) -> list[str]:
    reported = None if read is None else Usage("anthropic", "claude-sonnet-4-5", input_tokens, creation, read, 7)
    _, new = ledger.record(
        session_id, "header", flow_id=f"flow-{read}", started_at=1_700_000_000.25, status=status, stream=True,
        usage=reported, model=None, ttft_ms=ttft_ms, duration_ms=1500.04,
    )  # fmt: skip
    return new


@pytest.fixture
def ledger() -> Ledger:
    """Three sessions: one warm, one failing warm and min_hit, one without cache figures."""
    ledger = Ledger(expect="warm", min_hit=50)
    for read in (0, 9000):
        record(ledger, SID, read, creation=9000 - read)
    record(ledger, SID, 0, status=529)
    for read in (0, 0):
        record(ledger, "second", read, creation=1538, input_tokens=12)
    record(ledger, "third", None)
    ledger.finalize()
    return ledger


# --- the JSON report ----------------------------------------------------------------------------


def test_report_schema_has_exactly_the_version_2_keys(ledger: Ledger) -> None:
    about = {"generated_at": "2026-12-02T17:00:00.000Z", "started_at": "2026-12-02T16:00:00.000Z", "run_id": "r1",
             "versions": {"cachepin": "0.1.0", "mitmproxy": "12.3.1"}}
    report = report_dict(ledger, about)
    assert set(report) == {"version", "ok", "expectations", "totals", "sessions", "failures"} | set(about)
    assert report["version"] == 2 and report["run_id"] == "r1"
    assert report["ok"] is False
    assert report["expectations"] == {"expect": "warm", "min_hit": 50}
    assert set(report["totals"]) == SUMS | {"sessions", "evicted_sessions"}
    assert [set(s) for s in report["sessions"]] == [SESSION_KEYS] * 3
    assert all(set(t) == TURN_KEYS for s in report["sessions"] for t in s["turns"])
    assert all(set(t) == THREAD_KEYS for s in report["sessions"] for t in s["threads"])
    assert all(set(f) == {"session_id", "turn", "message"} for f in report["failures"])


def test_a_version_1_reader_still_finds_what_it_read(ledger: Ledger) -> None:
    """Version 2 only adds: sessions[].requests, the four sums and turns[].verdict are where they were."""
    report = report_dict(ledger)
    assert all(V1_SESSION_KEYS <= set(s) and all(V1_TURN_KEYS <= set(t) for t in s["turns"])
               for s in report["sessions"])
    assert [s["requests"] for s in report["sessions"]] == [2, 2, 1]
    assert sum(len(thread["turns"]) for s in report["sessions"] for thread in s["threads"]) == 6


def test_report_figures(ledger: Ledger) -> None:
    report = report_dict(ledger)
    assert report["totals"] == {
        "input_tokens": 44, "cache_creation_input_tokens": 12076, "cache_read_input_tokens": 9000,
        "output_tokens": 28, "requests": 5, "errors": 1, "hit_ratio": round(9000 / 21120, 4),
        "judged_hit_ratio": round(9000 / (9000 + 10 + 1538 + 12), 4), "cost": None, "sessions": 3,
        "evicted_sessions": 0,
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


def test_report_json_round_trip(ledger: Ledger) -> None:
    report = report_dict(ledger)
    assert json.loads(json.dumps(report)) == report


def test_an_empty_ledger_reports_nulls_not_zero_percent() -> None:
    report = report_dict(Ledger())
    assert report["ok"] is True
    assert report["totals"] == {name: None for name in COUNTS} | {
        "requests": 0, "errors": 0, "hit_ratio": None, "judged_hit_ratio": None, "cost": None, "sessions": 0,
        "evicted_sessions": 0}
    assert (report["sessions"], report["failures"]) == ([], [])


def test_evicted_sessions_leave_their_failures_and_totals() -> None:
    ledger = Ledger(expect="warm", max_sessions=1)
    record(ledger, "old", 0)
    record(ledger, "old", 0)
    record(ledger, "new", 0)
    report = report_dict(ledger)
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


# --- event lines --------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "odd\nmodel\u2028name", None])
def test_event_line_is_one_json_line(model: str | None) -> None:
    turn = Turn(index=2, flow_id="f", started_at=1.0, status=200, stream=True, verdict=Verdict.HIT, model=model)
    line = event_line(SID, "header", turn)
    assert "\n" not in line and "\r" not in line and "\u2028" not in line
    assert json.loads(line) == {"session_id": SID, "source": "header", "turn": turn_dict(turn)}


# --- writers ------------------------------------------------------------------------------------


def test_write_json_atomic_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_json_atomic(path, {"version": 1, "n": 1})
    write_json_atomic(str(path), {"version": 1, "n": 2})
    assert json.loads(path.read_text()) == {"version": 1, "n": 2}
    assert os.listdir(tmp_path) == ["report.json"]


def test_write_json_atomic_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_json_atomic(path, {"n": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"n": object()})
    assert json.loads(path.read_text()) == {"n": 1}
    assert os.listdir(tmp_path) == ["report.json"]


def test_write_json_atomic_cleans_up_when_the_rename_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "report.json"
    write_json_atomic(path, {"n": 1})

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        write_json_atomic(path, {"n": 2})
    assert json.loads(path.read_text()) == {"n": 1}
    assert os.listdir(tmp_path) == ["report.json"]


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permissions")
def test_write_json_atomic_makes_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_json_atomic(path, {})
    assert path.stat().st_mode & 0o777 == 0o644


def test_append_line_appends_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    for n in range(3):
        append_line(path, json.dumps({"n": n}))
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_concurrent_appends_never_tear_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    payload = "x" * 5000  # longer than any buffer a partial write would split

    def writer(name: str) -> None:
        for n in range(200):
            append_line(path, json.dumps({"writer": name, "n": n, "pad": payload}))

    threads = [threading.Thread(target=writer, args=(str(i),)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 800
    for i in range(4):
        assert [line["n"] for line in lines if line["writer"] == str(i)] == list(range(200))


@pytest.mark.parametrize("line", ["a\nb", "a\r", "\n"])
def test_append_line_refuses_line_breaks(tmp_path: Path, line: str) -> None:
    with pytest.raises(ValueError):
        append_line(tmp_path / "events.jsonl", line)
    assert not (tmp_path / "events.jsonl").exists()


# --- JUnit --------------------------------------------------------------------------------------


def test_junit_parses_with_one_testcase_per_session(ledger: Ledger) -> None:
    root = ET.fromstring(junit_xml(ledger))
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [SID, "second", "third"]
    assert {c.get("classname") for c in cases} == {"cachepin"}
    assert [len(c.findall("failure")) for c in cases] == [0, 1, 0]
    for element in (root, suite):
        assert (element.get("tests"), element.get("failures"), element.get("errors")) == ("3", "1", "0")
    failure = cases[1].find("failure")
    assert failure is not None and failure.text is not None
    assert failure.text.splitlines() == [f.message for f in ledger.failures]


@pytest.mark.parametrize(
    ("sessions", "failing"),
    [
        ({}, 0),
        ({"a": [0, 900]}, 0),
        ({"a": [0, 0], "b": [0, 0], "c": [0, 900]}, 2),
        ({"a": [0, 0, 0, 0]}, 1),  # several messages, one failing testcase
    ],
)
def test_junit_failure_count(sessions: dict[str, list[int]], failing: int) -> None:
    ledger = Ledger(expect="warm")
    for sid, reads in sessions.items():
        for read in reads:
            record(ledger, sid, read)
    suite = ET.fromstring(junit_xml(ledger)).find("testsuite")
    assert suite is not None
    assert suite.get("tests") == str(len(sessions))
    assert suite.get("failures") == str(failing)
    assert len(suite.findall("testcase/failure")) == failing


def test_junit_lists_failing_evicted_sessions() -> None:
    ledger = Ledger(expect="warm", max_sessions=1)
    for sid, read in [("gone-ok", 0), ("gone-bad", 0), ("gone-bad", 0), ("here", 0)]:
        record(ledger, sid, read)
    suite = ET.fromstring(junit_xml(ledger)).find("testsuite")
    assert suite is not None
    assert [c.get("name") for c in suite.findall("testcase")] == ["here", "gone-bad"]
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")


def test_junit_survives_control_characters_in_session_ids() -> None:
    ledger = Ledger(expect="warm")
    for read in (0, 0):
        record(ledger, "bad\x01id\x1b[31m", read)
    case = ET.fromstring(junit_xml(ledger)).find("testsuite/testcase")
    assert case is not None and case.get("name") == "bad\ufffdid\ufffd[31m"


# --- table and log lines ------------------------------------------------------------------------


def test_summary_table(ledger: Ledger) -> None:
    lines = summary_table(ledger).splitlines()
    assert lines[0].split() == ["session", "source", "turns", "hit/miss", "errors", "read", "creation", "input",
                                "output", "hit", "ratio", "judged", "status"]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in lines[2:5]}
    assert rows["3f2a9c1e-000…"][2:] == ["2", "1/0", "1", "9000", "9000", "20", "14", "49.9%", "99.9%", "ok"]
    assert rows["second"][2:] == ["2", "0/1", "0", "0", "3076", "24", "14", "0.0%", "0.0%", "FAIL"]
    assert rows["third"][2:] == ["1", "0/0", "0", "-", "-", "-", "-", "n/a", "n/a", "ok"]
    assert lines[6].split() == ["TOTAL", "5", "1/1", "1", "9000", "12076", "44", "28", "42.6%", "85.2%", "FAIL"]
    assert len({len(line) for line in (lines[1], lines[5])}) == 1
    assert len(lines) == 7


def test_summary_table_of_nothing_shows_na_and_mentions_evictions() -> None:
    assert summary_table(Ledger()).splitlines()[-1].split() == ["TOTAL", "0", "0/0", "0", "-", "-", "-", "-", "n/a",
                                                                "n/a", "ok"]
    ledger = Ledger(max_sessions=1)
    record(ledger, "a", 0)
    record(ledger, "b", 0)
    assert "1 older sessions evicted" in summary_table(ledger).splitlines()[-1]


@pytest.mark.parametrize(
    ("turn", "expected"),
    [
        (
            Turn(index=2, flow_id="f", started_at=0.0, status=200, stream=True, verdict=Verdict.HIT,
                 model="claude-sonnet-4-5", input_tokens=12, cache_creation_input_tokens=640,
                 cache_read_input_tokens=9000, output_tokens=85, ttft_ms=412.6),  # fmt: skip
            "cachepin session=3f2a9c1e-000… turn=2 model=claude-sonnet-4-5 verdict=hit read=9000 creation=640 "
            "input=12 output=85 ttft_ms=413",
        ),
        (
            Turn(index=1, flow_id="f", started_at=0.0, status=200, stream=False, verdict=Verdict.NONE),
            "cachepin session=3f2a9c1e-000… turn=1 model=- verdict=none read=- creation=- input=- output=-",
        ),
        (
            Turn(index=3, flow_id="f", started_at=0.0, status=529, stream=True, verdict=Verdict.ERROR,
                 model="odd model\nname", ttft_ms=None),  # fmt: skip
            "cachepin session=3f2a9c1e-000… turn=3 model=odd_model_name verdict=error read=- creation=- input=- "
            "output=- status=529",
        ),
        (
            Turn(index=4, flow_id="f", started_at=0.0, status=200, stream=True, verdict=Verdict.ERROR,
                 error="overloaded_error: Overloaded, see the prompt you sent"),  # fmt: skip
            "cachepin session=3f2a9c1e-000… turn=4 model=- verdict=error read=- creation=- input=- "
            "output=- status=200 error=overloaded_error",
        ),
        (
            Turn(index=5, flow_id="f", started_at=0.0, status=0, stream=True, verdict=Verdict.ERROR,
                 error="the prompt was: secret plans"),  # fmt: skip
            "cachepin session=3f2a9c1e-000… turn=5 model=- verdict=error read=- creation=- input=- "
            "output=- status=0",
        ),
    ],
)
def test_turn_log_line(turn: Turn, expected: str) -> None:
    assert turn_log_line(SID, turn) == expected


def test_log_line_keeps_short_session_ids_whole() -> None:
    turn = Turn(index=1, flow_id="f", started_at=0.0, status=200, stream=False, verdict=Verdict.COLD)
    assert turn_log_line("abc", turn).startswith("cachepin session=abc turn=1 ")


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
    report = report_dict(ledger)
    assert report["totals"]["cost"] == {"billed": round(3.75 + 0.3 + 3 + 3 * out, 6),
                                        "uncached": round(9 + 3 * out, 6),
                                        "saving": round(9 - 3.75 - 0.3 - 3, 6)}
    (b,) = report["sessions"]
    assert b["cost"] == {"billed": round(3 + out, 6), "uncached": round(3 + out, 6), "saving": 0.0}
    assert b["turns"][0]["cost"] == b["cost"]


def test_unknown_models_have_no_cost() -> None:
    ledger = Ledger(pricer=lambda turn: cost(turn.usage(), PriceTable({})))
    record(ledger, "a", 0)
    report = report_dict(ledger)
    assert report["totals"]["cost"] is None and report["sessions"][0]["turns"][0]["cost"] is None
