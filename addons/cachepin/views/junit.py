"""JUnit XML, one test case per session, so CI systems show failing sessions natively."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from cachepin.turns.counts import Counts
from cachepin.turns.ledger import Ledger, Session

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    """Session ids can come from request bodies; control characters would make the XML unparsable."""
    return _NOT_XML.sub("\ufffd", text)


RUN_CASE = "(the whole run)"


def _properties(case: ET.Element, session: Session) -> None:
    """Both hit ratios of the session and of each of its threads, the judged one named as min_hit judges it."""
    properties = ET.SubElement(case, "properties")
    rows = [("", session.counts(), session.judged_counts())]
    for thread, turns in session.thread_turns():
        ok = [turn for turn in turns if turn.ok]
        rows.append((f"thread {thread.thread_id} ", Counts.of(ok), Counts.of(turn for turn in ok if not turn.opens)))
    for prefix, counts, judged in rows:
        for name, ratio in (("hit_ratio", counts.hit_ratio), ("judged_hit_ratio", judged.hit_ratio)):
            value = "n/a" if ratio is None else f"{ratio:.4f}"
            ET.SubElement(properties, "property", name=_xml_text(prefix + name), value=value)


def junit_xml(ledger: Ledger) -> str:
    """JUnit XML, one testcase per session, so CI systems show failing sessions natively; failures name the
    session's thread where one is to blame, and the case's properties carry the hit ratios (judged and all
    turns) of the session and of each thread.

    Evicted sessions that failed get a testcase too; the ones that passed are
    no longer known by id.
    """
    messages = ledger.failure_messages()
    session_ids = [session.session_id for session in ledger.sessions]
    held = set(session_ids)
    session_ids += [sid for sid in messages if sid not in held]
    failed = sum(1 for sid in session_ids if sid in messages)
    counts = {"tests": str(len(session_ids)), "failures": str(failed), "errors": "0", "skipped": "0"}
    root = ET.Element("testsuites", {"name": "cachepin", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": "cachepin", **counts})
    sessions = {session.session_id: session for session in ledger.sessions}
    for sid in session_ids:
        name = sid or RUN_CASE  # a failure of the whole run (no successful response at all) has no session
        case = ET.SubElement(suite, "testcase", name=_xml_text(name), classname="cachepin")
        if sid in sessions:
            _properties(case, sessions[sid])
        if sid in messages:
            failure = ET.SubElement(case, "failure", message=_xml_text(messages[sid][0]), type="cachepin")
            failure.text = _xml_text("\n".join(messages[sid]))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
