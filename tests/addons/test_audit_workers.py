"""The audit with its requests read by a reader process: turns recorded in the order their responses ended, once
read; the reports wait for them; a reader that dies loses none. The process is stood in for by futures the test
completes, so that every interleaving is chosen, not timed."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
from cache_audit import CacheAudit
from held_readers import HeldReaders, llm_flow
from mitmproxy.test import taddons

from cachepin.audit import RequestFacts
from cachepin.worker import Readers, Reading


def running_audit(tctx: taddons.context, addon: CacheAudit, **options: object) -> HeldReaders:
    readers = HeldReaders()
    tctx.configure(addon, **options)
    addon.readers = addon.turns.readers = readers
    addon.is_running = True
    return readers


def recorded_flows(addon: CacheAudit) -> list[str]:
    return [turn.flow_id for session in addon.ledger.sessions for turn in session.turns]


async def settled() -> None:
    for _ in range(5):  # the futures' callbacks reach the event loop through call_soon_threadsafe
        await asyncio.sleep(0)


async def test_turns_are_recorded_once_read_in_the_order_their_responses_ended() -> None:
    addon = CacheAudit()
    with taddons.context(addon) as tctx:
        readers = running_audit(tctx, addon)
        first, second = llm_flow(1), llm_flow(2)
        for flow in (first, second):
            addon.request(flow)
        assert len(readers.readings) == 2 and isinstance(addon.requests[first.id], Reading)
        for flow in (first, second):
            addon.response(flow)
        assert recorded_flows(addon) == []  # nothing read yet: nothing recorded, and nothing waited for
        readers.answer(readers.readings[1])
        await settled()
        assert recorded_flows(addon) == []  # the second waits for the first
        readers.answer(readers.readings[0])
        await settled()
        assert recorded_flows(addon) == [first.id, second.id]
        assert [turn.verdict.value for turn in addon.ledger.sessions[0].turns] == ["cold", "hit"]
        assert first.comment.startswith("cold · ") and second.comment.startswith("hit · ")  # shown once recorded


async def test_cache_report_waits_for_the_turns_being_read(tmp_path: Path) -> None:
    addon = CacheAudit()
    with taddons.context(addon) as tctx:
        readers = running_audit(tctx, addon, cache_report=str(tmp_path / "report.json"))
        flow = llm_flow(1)
        addon.request(flow)
        addon.response(flow)
        threading.Timer(0.2, readers.answer, [readers.readings[0]]).start()  # answered while the report waits
        addon.report()
        report = json.loads((tmp_path / "report.json").read_text())
        assert report["totals"]["requests"] == 1 and recorded_flows(addon) == [flow.id]


@pytest.mark.parametrize("then", ["dies", "error_hook_too"])
async def test_a_queued_turn_is_recorded_once(caplog: pytest.LogCaptureFixture, then: str) -> None:
    """A reader that dies loses no turn (it is read in the proxy instead); an error hook after a queued response
    (mitmproxy may fire both for one flow) adds no second one."""
    addon = CacheAudit()
    with taddons.context(addon) as tctx:
        readers = running_audit(tctx, addon)
        flow = llm_flow(2)
        addon.request(flow)
        addon.response(flow)
        with caplog.at_level(logging.WARNING):
            if then == "dies":
                readers.readings[0].future.set_exception(BrokenProcessPool("killed"))
            else:
                addon.error(flow)
                readers.answer(readers.readings[0])
            await settled()
        assert recorded_flows(addon) == [flow.id]
        died = any("request reader process died; read in the proxy instead" in r.getMessage() for r in caplog.records)
        assert died == (then == "dies")


async def test_a_request_the_reader_cannot_take_is_read_in_the_proxy() -> None:
    addon = CacheAudit()
    with taddons.context(addon) as tctx:
        running_audit(tctx, addon, cache_workers=0)
        addon.readers = addon.turns.readers = Readers(0)
        flow = llm_flow(1)
        addon.request(flow)
        assert not isinstance(addon.requests[flow.id], Reading | RequestFacts)  # read later, here
        addon.response(flow)
        assert recorded_flows(addon) == [flow.id]


async def test_a_late_turn_of_a_live_flow_fails_at_error_level(caplog: pytest.LogCaptureFixture) -> None:
    """mitmproxy marks a flow not live once its response has gone: a turn recorded after that is still live
    traffic's, and its failures are ERRORs (a replay's are WARNINGs)."""
    addon = CacheAudit()
    with taddons.context(addon) as tctx:
        readers = running_audit(tctx, addon, cache_expect="warm")
        first, second = llm_flow(1), llm_flow(2, read=0)
        for flow in (first, second):
            addon.request(flow)
            addon.response(flow)
            flow.live = False  # its response went out
        with caplog.at_level(logging.WARNING):
            for reading in readers.readings:
                readers.answer(reading)
            await settled()
        failed = [r for r in caplog.records if "cachepin audit FAILED" in r.getMessage()]
        assert [r.levelname for r in failed] == ["ERROR"]

