"""The audit's life around its flows: the events file read back at start, the reports rewritten on a timer,
SIGHUP handled as SIGTERM, and the exit status of a run that failed."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledgers import usage

from cachepin import lifecycle
from cachepin.audit import Audit, RequestFacts
from cachepin.lifecycle import EXIT_EXPECTATIONS_FAILED, EXIT_OUTPUT_FAILED, Exit
from cachepin.response.extract import Extracted
from cachepin.views.files import append_line

# --- resume: the events file read back ---------------------------------------------------------------------


def write_events(path: Path, reads: list[int]) -> Audit:
    """An earlier run that recorded one turn per read figure and appended its event lines to ``path``."""
    earlier = Audit()
    for n, read in enumerate(reads):
        request = RequestFacts("s-1", "header:x-session-id", "claude-sonnet-4-5", None)
        recorded = earlier.record(request, Extracted(usage(read, 1538 - read)), flow_id=f"flow-{n}",
                                  started_at=1000.0 + n, status=200, stream=True, first_byte_at=None, ended_at=None)
        append_line(str(path), earlier.event_line(request, recorded))
    return earlier


def test_resume_seeds_the_audit_and_says_how_much_it_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    events = tmp_path / "events.jsonl"
    earlier = write_events(events, [0, 1538])
    with events.open("a") as file:
        file.write("{torn\n")
    audit = Audit()
    lifecycle.resume(audit, str(events))
    assert audit.resumed and list(audit.runs.items()) == [(earlier.run, 2), (audit.run, 0)]
    assert [t.index for t in audit.ledger.sessions[0].turns] == [1, 2]
    [skipped, resumed] = caplog.records
    assert skipped.levelno == logging.WARNING
    assert skipped.getMessage().startswith(f"cachepin audit: cache_resume skipped {events}:3: not JSON")
    assert (resumed.levelno, resumed.getMessage()) == (
        logging.INFO, f"cachepin audit: resumed 2 turns of 1 earlier runs from {events}")


@pytest.mark.parametrize(("path", "level", "message"), [
    ("missing.jsonl", logging.INFO, "cachepin audit: nothing to resume: {path} does not exist yet"),
    (".", logging.ERROR, "cachepin audit: cache_resume: cache_events {path} is not a regular file; nothing resumed"),
    ("file/events.jsonl", logging.ERROR, "cachepin audit: cache_resume: cannot read cache_events {path}: "),
], ids=["missing", "a directory", "unreadable"])
def test_resume_of_nothing_to_read_says_why_and_seeds_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                              path: str, level: int, message: str) -> None:
    caplog.set_level(logging.INFO)
    (tmp_path / "file").write_text("not a folder")
    where = str(tmp_path / path)
    audit = Audit()
    lifecycle.resume(audit, where)
    assert audit.ledger.sessions == [] and list(audit.runs) == [audit.run]
    [record] = caplog.records
    assert record.levelno == level and record.getMessage().startswith(message.format(path=where))


# --- rewrite_every: the reports rewritten on a timer -------------------------------------------------------


async def test_no_interval_is_no_task() -> None:
    assert lifecycle.rewrite_every(0, lambda: None) is None


async def test_the_rewrites_go_on_past_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def rewrite() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise OSError("disk full")

    task = lifecycle.rewrite_every(0.01, rewrite)
    assert task is not None
    try:
        for _ in range(500):
            if len(calls) >= 3:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
    assert len(calls) >= 3
    [failure] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failure.getMessage() == "cachepin audit: cache_report_interval: the reports could not be rewritten"
    assert failure.exc_info is not None and failure.exc_info[0] is OSError


# --- end_on_hangup: SIGHUP ends the proxy as SIGTERM does ---------------------------------------------------


@pytest.fixture
def hangup() -> Iterator[None]:
    """SIGHUP's handler as it was before the test, restored after it."""
    previous = signal.getsignal(signal.SIGHUP)
    yield
    signal.signal(signal.SIGHUP, previous)


@pytest.mark.parametrize(("before", "handled"), [
    (signal.SIG_DFL, True),  # unhandled, it would kill the proxy before any report
    (signal.SIG_IGN, False),  # nohup: the user wants the proxy to outlive the terminal
    (lambda signum, frame: None, False),  # someone else's handler
], ids=["default", "ignored", "handled elsewhere"])
async def test_a_hangup_shuts_down_unless_someone_decided_otherwise(hangup: None, before: object,
                                                                    handled: bool) -> None:
    signal.signal(signal.SIGHUP, before)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    lifecycle.end_on_hangup(lambda: None)
    assert loop.remove_signal_handler(signal.SIGHUP) is handled
    if not handled:
        assert signal.getsignal(signal.SIGHUP) is before


def test_without_a_running_loop_a_hangup_is_left_alone(hangup: None) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    lifecycle.end_on_hangup(lambda: None)
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL


async def test_the_handler_calls_the_shutdown(hangup: None) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    stopped = asyncio.Event()
    lifecycle.end_on_hangup(stopped.set)
    try:
        signal.raise_signal(signal.SIGHUP)
        await asyncio.wait_for(stopped.wait(), 5)
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)


# --- exit_status: which failure ends the run with which status ----------------------------------------------


@pytest.mark.parametrize(("unwritten", "ok", "expected"), [
    (set(), True, None),
    (set(), False, Exit(EXIT_EXPECTATIONS_FAILED, "cache expectations failed")),
    ({"cache_report"}, True, Exit(EXIT_OUTPUT_FAILED, "could not write cache_report")),
    ({"cache_junit", "cache_events"}, False,
     Exit(EXIT_OUTPUT_FAILED, "could not write cache_events, cache_junit; cache expectations failed")),
], ids=["passed", "expectations", "an output", "both"])
def test_an_unwritten_output_wins_over_failed_expectations(unwritten: set[str], ok: bool,
                                                           expected: Exit | None) -> None:
    assert lifecycle.exit_status(unwritten, ok) == expected


def test_the_statuses_are_the_documented_ones() -> None:
    assert (EXIT_EXPECTATIONS_FAILED, EXIT_OUTPUT_FAILED) == (3, 4)
