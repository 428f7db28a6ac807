"""JUnit XML, one test case per session, so CI systems show failing sessions natively."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from cachepin.turns.ledger import Ledger

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: str) -> str:
    """Session ids can come from request bodies; control characters would make the XML unparsable."""
    return _NOT_XML.sub("\ufffd", text)


RUN_CASE = "(the whole run)"


def junit_xml(ledger: Ledger) -> str:
    """JUnit XML, one testcase per session, so CI systems show failing sessions natively; failures name the
    session's thread where one is to blame.

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
    for sid in session_ids:
        name = sid or RUN_CASE  # a failure of the whole run (no successful response at all) has no session
        case = ET.SubElement(suite, "testcase", name=_xml_text(name), classname="cachepin")
        if sid in messages:
            failure = ET.SubElement(case, "failure", message=_xml_text(messages[sid][0]), type="cachepin")
            failure.text = _xml_text("\n".join(messages[sid]))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
