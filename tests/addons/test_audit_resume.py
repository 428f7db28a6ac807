"""cache_resume (the ledger seeded from the events file) and cache_report_interval (the reports rewritten)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from cache_audit import CacheAudit
from mitmproxy import exceptions, hooks
from mitmproxy.test import taddons
from test_audit_addon import CASES, run, turn_flow

from cachepin import handover


@pytest.fixture
def addon() -> Iterator[CacheAudit]:
    audit = CacheAudit()
    yield audit
    handover._parked.clear()


async def one_run(events: Path, report: Path, reads: list[int], **options: object) -> CacheAudit:
    """A run of the addon from start to shutdown: load, configure, running, the turns, done."""
    addon = CacheAudit()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_events=str(events), cache_report=str(report), **options)
        tctx.master.addons.invoke_addon_sync(addon, hooks.RunningHook())
        await run(tctx, addon, *(turn_flow(CASES[0], read, 1538 - read) for read in reads))
        addon.done()
    handover._parked.clear()
    return addon


async def test_a_resumed_run_reports_the_whole_history_and_numbers_on(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    events, report = tmp_path / "events.jsonl", tmp_path / "report.json"
    first = await one_run(events, report, [0, 1538], cache_resume=True)
    assert "cachepin audit: nothing to resume: " in caplog.text
    second = await one_run(events, report, [1538, 0], cache_resume=True, cache_expect="warm")
    assert [t.index for t in second.ledger.sessions[0].turns] == [1, 2, 3, 4]
    assert [t.verdict.value for t in second.ledger.sessions[0].turns] == ["cold", "hit", "hit", "miss"]
    written = json.loads(report.read_text())
    assert [(run["run_id"], run["turns"]) for run in written["runs"]] == [(first.audit.run.run_id, 2),
                                                                        (second.audit.run.run_id, 2)]
    assert [json.loads(line)["turn"]["index"] for line in events.read_text().splitlines()] == [1, 2, 3, 4]
    assert "cachepin audit: resumed 2 turns of 1 earlier runs from " in caplog.text
    assert written["ok"] is False and len(written["failures"]) == 1  # turn 4 under warm: this run's


async def test_a_bad_line_is_skipped_with_a_warning(tmp_path: Path, caplog) -> None:
    events, report = tmp_path / "events.jsonl", tmp_path / "report.json"
    await one_run(events, report, [0], cache_resume=True)
    with events.open("a") as file:
        file.write("{torn\n")
    again = await one_run(events, report, [1538], cache_resume=True)
    assert [t.index for t in again.ledger.sessions[0].turns] == [1, 2]
    assert f"cache_resume skipped {events}:2: not JSON" in caplog.text


def test_resume_needs_an_events_file(addon: CacheAudit) -> None:
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match="cache_resume needs cache_events"):
            tctx.configure(addon, cache_resume=True)


def test_the_interval_is_whole_seconds_from_zero(addon: CacheAudit) -> None:
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match="cache_report_interval must be >= 0 seconds"):
            tctx.configure(addon, cache_report_interval=-1)


async def test_the_reports_are_rewritten_every_interval(addon: CacheAudit, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_report=str(report), cache_report_interval=1)
        tctx.master.addons.invoke_addon_sync(addon, hooks.RunningHook())
        await run(tctx, addon, turn_flow(CASES[0], 0, 1538))
        for _ in range(100):  # the first rewrite is due after 1 s; this waits up to 10 s for it
            if report.exists():
                break
            await asyncio.sleep(0.1)
        assert json.loads(report.read_text())["totals"]["requests"] == 1
        await run(tctx, addon, turn_flow(CASES[0], 1538, 0))
        for _ in range(100):
            if json.loads(report.read_text())["totals"]["requests"] == 2:
                break
            await asyncio.sleep(0.1)
        assert json.loads(report.read_text())["totals"]["requests"] == 2
        tctx.configure(addon, cache_report_interval=0)  # off again: no task left
        assert addon.reporter is None


def test_resume_reads_no_pipe_or_device(addon: CacheAudit, caplog) -> None:
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_events="/dev/null", cache_resume=True)
        tctx.master.addons.invoke_addon_sync(addon, hooks.RunningHook())
    assert "cache_resume: cache_events /dev/null is not a regular file; nothing resumed" in caplog.text
    assert addon.audit.resumed is False
