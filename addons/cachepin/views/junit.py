"""JUnit XML, one test case per session, so CI systems show failing sessions natively."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

from cachepin.turns.ledger import Ledger, Session

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    """Session ids can come from request bodies; control characters would make the XML unparsable."""
    return _NOT_XML.sub("\ufffd", text)


RUN_CASE = "(the whole run)"
_CASES = "(the test cases)"  # stands in for them while the frame around them is written: a text of ours alone


def _properties(case: ET.Element, session: Session) -> None:
    """Both hit ratios of the session and of each of its threads, the judged one named as min_hit judges it."""
    properties = ET.SubElement(case, "properties")
    rows = [("", session.sums())] + [(f"thread {thread.thread_id} ", sums) for thread, _, sums in session.thread_sums()]
    for prefix, sums in rows:
        for name, ratio in (("hit_ratio", sums.counts.hit_ratio), ("judged_hit_ratio", sums.judged.hit_ratio)):
            value = "n/a" if ratio is None else f"{ratio:.4f}"
            ET.SubElement(properties, "property", name=_xml_text(prefix + name), value=value)


def junit_xml(ledger: Ledger) -> Iterator[str]:
    """JUnit XML, one testcase per session, so CI systems show failing sessions natively; failures name the
    session's thread where one is to blame, and the case's properties carry the hit ratios (judged and all
    turns) of the session and of each thread.

    Written as ElementTree would write the whole tree, indented, but in
    pieces: a test case at a time, so that a long run's file never has to
    be in memory whole. Evicted sessions that failed get a testcase too; the
    ones that passed are no longer known by id.
    """
    messages = ledger.failure_messages()  # popped below: what is left failed in sessions no longer held
    sessions = ledger.sessions
    tests = len(sessions) + len(messages) - sum(session.session_id in messages for session in sessions)
    counts = {"tests": str(tests), "failures": str(len(messages)), "errors": "0", "skipped": "0"}
    root = ET.Element("testsuites", {"name": "cachepin", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": "cachepin", **counts})
    if not tests:
        yield _xml(root)
        return
    suite.text = _CASES
    head, tail = _xml(root).split(_CASES)
    yield head
    for session in sessions:
        yield _case(session.session_id, session, messages.pop(session.session_id, None))
    for sid, evicted in messages.items():
        yield _case(sid, None, evicted)
    yield "\n  " + tail


def _xml(root: ET.Element) -> str:
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _case(sid: str, session: Session | None, messages: list[str] | None) -> str:
    """One test case, indented as it is in the whole document."""
    name = sid or RUN_CASE  # a failure of the whole run (no successful response at all) has no session
    case = ET.Element("testcase", name=_xml_text(name), classname="cachepin")
    if session is not None:
        _properties(case, session)
    if messages:
        failure = ET.SubElement(case, "failure", message=_xml_text(messages[0]), type="cachepin")
        failure.text = _xml_text("\n".join(messages))
    ET.indent(case, level=2)
    return "\n    " + ET.tostring(case, encoding="unicode")
