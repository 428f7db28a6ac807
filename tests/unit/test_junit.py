"""JUnit XML: one test case per session, failed when its expectations failed, parsable whatever the ids hold."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from ledgers import SID, long_session, record

from cachepin.turns.ledger import Ledger
from cachepin.views.junit import junit_xml


def junit_text(ledger: Ledger) -> str:
    return "".join(junit_xml(ledger))


def evicted_and_failing() -> Ledger:
    ledger = Ledger(expect="warm", max_sessions=1)
    for sid, read in [("gone-ok", 0), ("gone-bad", 0), ("gone-bad", 0), ("here\x01<&>\"", 0)]:
        record(ledger, sid, read)
    ledger.finalize()
    return ledger


def run_failure() -> Ledger:
    ledger = Ledger(expect="warm")
    record(ledger, "only-errors", 0, status=529)
    ledger.finalize()
    return ledger


@pytest.mark.parametrize("make", [lambda: None, Ledger, evicted_and_failing, run_failure],
                         ids=["fixture", "empty", "evicted", "run failure"])
def test_the_file_written_in_pieces_is_what_elementtree_writes(ledger: Ledger, make) -> None:
    """Byte for byte ElementTree's own indented document of the same tree: only the writing changed."""
    text = junit_text(make() or ledger)
    root = ET.fromstring(text)
    ET.indent(root)
    assert text == ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def test_junit_parses_with_one_testcase_per_session(ledger: Ledger) -> None:
    root = ET.fromstring(junit_text(ledger))
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
    suite = ET.fromstring(junit_text(ledger)).find("testsuite")
    assert suite is not None
    assert suite.get("tests") == str(len(sessions))
    assert suite.get("failures") == str(failing)
    assert len(suite.findall("testcase/failure")) == failing


def test_junit_lists_failing_evicted_sessions() -> None:
    ledger = Ledger(expect="warm", max_sessions=1)
    for sid, read in [("gone-ok", 0), ("gone-bad", 0), ("gone-bad", 0), ("here", 0)]:
        record(ledger, sid, read)
    suite = ET.fromstring(junit_text(ledger)).find("testsuite")
    assert suite is not None
    assert [c.get("name") for c in suite.findall("testcase")] == ["here", "gone-bad"]
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")


def test_junit_survives_control_characters_in_session_ids() -> None:
    ledger = Ledger(expect="warm")
    for read in (0, 0):
        record(ledger, "bad\x01id\x1b[31m", read)
    case = ET.fromstring(junit_text(ledger)).find("testsuite/testcase")
    assert case is not None and case.get("name") == "bad\ufffdid\ufffd[31m"


def test_each_case_carries_the_judged_ratio_of_its_session_and_threads(ledger: Ledger) -> None:
    """What cache_min_hit judges (turns after each thread's first), next to the all-turns ratio."""
    case = ET.fromstring(junit_text(ledger)).find("./testsuite/testcase")
    assert case is not None
    properties = {p.get("name"): p.get("value") for p in case.findall("./properties/property")}
    assert properties["judged_hit_ratio"] == f"{9000 / 9010:.4f}"
    assert properties["hit_ratio"] == f"{9000 / 18020:.4f}"
    assert properties["thread model:claude-sonnet-4-5 judged_hit_ratio"] == f"{9000 / 9010:.4f}"


@pytest.mark.parametrize("max_turns", [1, 100])
def test_a_long_session_has_the_same_case_whatever_it_holds(max_turns: int) -> None:
    """Its ratios and failures sum the turns folded out of memory (max_turns) too."""
    def junit(limit: int) -> str:
        ledger = long_session(Ledger(expect="warm", min_hit=96, max_turns=limit), 5000)
        ledger.finalize()
        return junit_text(ledger)
    held = junit(max_turns)
    assert held == junit(0)
    assert "below min_hit 96%" in held and held.count("judged_hit_ratio") > 3
