"""The HTML report: self-contained, failures first, a chart per session and thread, everything from the wire escaped."""

from __future__ import annotations

import re

from ledgers import record, usage

from cachepin.request.thread import Thread
from cachepin.turns.explain import Explanation, Reason
from cachepin.turns.ledger import Ledger
from cachepin.views.html import MAX_BARS, report_html


def render(ledger: Ledger) -> str:
    return "".join(report_html(ledger, {"run_id": "r1", "versions": {"cachepin": "9.9"}}))


def threaded(ledger: Ledger, thread: str, read: int) -> None:
    turn, _ = ledger.record("multi", "header", flow_id="f", started_at=1.0, status=200, stream=False,
                            usage=usage(read, 1000 - read), model="claude-sonnet-4-5", ttft_ms=None, duration_ms=None,
                            thread=Thread(thread, "header:x-agent-id", "main" if thread != "main" else None))
    if read == 0 and turn.index > 2:
        turn.miss = Explanation(Reason.TTL_EXPIRED, "412 s since the thread's previous turn > TTL 300 s", {})


def test_failures_come_first_and_sessions_follow(ledger: Ledger) -> None:
    page = render(ledger)
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>\n")
    assert page.index("Failures (") < page.index("<h2>Totals") < page.index("Session <code>")
    assert ">miss<" in page and "n/a" in page and "versions: cachepin 9.9" in page


def test_the_page_names_no_url_and_runs_no_script(ledger: Ledger) -> None:
    page = render(ledger)
    assert "<svg" in page and not re.search(r"https?://|<script|<link|src=", page)


def test_a_session_and_each_of_its_threads_have_a_chart_and_a_miss_its_reason_beside_its_verdict() -> None:
    ledger = Ledger()
    for thread, read in (("main", 0), ("agent-1", 0), ("main", 0), ("agent-1", 900)):
        threaded(ledger, thread, read)
    page = render(ledger)
    assert page.count("<svg") == 3  # the session's, and one for each of its two threads
    assert ("Thread <code>agent-1</code> (header:x-agent-id) · model claude-sonnet-4-5 · parent <code>main</code>"
            in page)
    assert ('>miss</span></td><td class="text">ttl_expired: 412 s since the thread&#x27;s previous turn &gt; TTL 300 s'
            in page)
    assert "<title>turn 3 miss · ttl_expired: 412 s" in page


def test_a_session_of_one_thread_draws_one_chart(ledger: Ledger) -> None:
    page = render(ledger)
    assert page.count("<svg") == 3 and page.count("its turns are the chart above") == 3


def test_turns_folded_into_the_sums_are_said_in_the_chart() -> None:
    ledger = Ledger(max_turns=3)
    for read in (0, 100, 100):
        record(ledger, "long", read)
    assert "in the sums only" not in render(ledger)
    for _ in range(7):
        record(ledger, "long", 100)
    page = render(ledger)
    assert "7 earlier turns are in the sums only" in page and "<tr><th>requests</th><td>10</td></tr>" in page


def test_a_session_of_error_turns_renders_its_errors() -> None:
    ledger = Ledger()
    for _ in range(2):
        record(ledger, "broken", None, status=529)
    page = render(ledger)
    assert page.count(">error</span>") == 2 and "<tr><th>errors</th><td>2</td></tr>" in page


def test_wire_text_is_escaped() -> None:
    ledger = Ledger(expect="warm")
    for read in (0, 0):
        record(ledger, "<script>alert(1)</script>", read)
    page = render(ledger)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_empty_ledger_says_no_failures() -> None:
    page = render(Ledger())
    assert "None: every expectation held." in page and "Session <code>" not in page


def test_large_sessions_draw_a_bounded_chart() -> None:
    ledger = Ledger()
    for _ in range(MAX_BARS + 5):
        record(ledger, "long", 100)
    page = render(ledger)
    assert page.count("<rect") == 3 * MAX_BARS and f"the last {MAX_BARS} of {MAX_BARS + 5} turns held" in page
