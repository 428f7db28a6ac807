"""The audit reads each request once it has gone upstream (or from the response, when that comes first), and
both addons parse a request body once between them."""

from __future__ import annotations

import asyncio
import json

import pytest
from bodies import tool_conversation
from cache_audit import CacheAudit
from inject import Inject
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from cachepin.audit import RequestFacts
from cachepin.request import body
from cachepin.turns.turn import Turn, Verdict
from cachepin_mitmproxy import audit_requests


def llm_flow(body: dict, headers: dict | None = None) -> http.HTTPFlow:
    request = http.Request.make("POST", "https://api.example.com/v1/messages", json.dumps(body).encode(),
                                {"content-type": "application/json", **(headers or {})})
    return tflow.tflow(req=request, resp=False)


def answer(flow: http.HTTPFlow, read: int) -> None:
    usage = {"input_tokens": 5, "cache_creation_input_tokens": 100, "cache_read_input_tokens": read,
             "output_tokens": 7}
    flow.response = http.Response.make(200, json.dumps({"type": "message", "model": "claude-sonnet-4-5",
                                                        "usage": usage}).encode(),
                                       {"content-type": "application/json"})


def first_turn(addon: CacheAudit) -> Turn:
    (recorded,) = addon.ledger.sessions
    return recorded.turns[0]


def compares_next_turn(addon: CacheAudit, body: dict) -> bool:
    """Whether the explainer kept the first turn: a repeat of ``body`` that reads nothing gets a miss reason."""
    flow = llm_flow(body, {"x-session-id": "s1"})
    answer(flow, read=0)
    addon.response(flow)
    (recorded,) = addon.ledger.sessions
    return recorded.turns[-1].miss is not None


async def test_the_request_is_read_before_its_response_arrives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_requests, "READ_DELAY", 0)
    addon = CacheAudit()
    with taddons.context(addon):
        flow = llm_flow(tool_conversation(2), {"x-session-id": "s1"})
        addon.request(flow)
        for _ in range(10):
            await asyncio.sleep(0)
        assert isinstance(addon.requests[flow.id], RequestFacts)
        flow.request.content = b"not the body that was sent"  # read already: this must not matter
        answer(flow, read=0)
        addon.response(flow)
        assert not addon.requests
        assert compares_next_turn(addon, tool_conversation(2))
    turn = first_turn(addon)
    # a continuation that read nothing, seen by a proxy that never saw its earlier turns: still a miss
    assert (turn.requested_model, turn.verdict, turn.position) == ("claude-sonnet-4-5", Verdict.MISS, "continuation")


async def test_a_response_before_the_read_reads_the_request_itself() -> None:
    addon = CacheAudit()
    with taddons.context(addon):
        for read in (0, 0):  # the second turn misses: explained from both requests' snapshots
            flow = llm_flow(tool_conversation(2), {"x-session-id": "s1"})
            addon.request(flow)
            answer(flow, read)
            addon.response(flow)
    (recorded,) = addon.ledger.sessions
    assert [turn.requested_model for turn in recorded.turns] == ["claude-sonnet-4-5"] * 2
    assert recorded.turns[1].miss.reason == "below_minimum"  # a short prompt: compared, explained
    assert not addon.requests


def test_a_response_without_a_request_hook_is_still_read() -> None:
    addon = CacheAudit()
    with taddons.context(addon):
        flow = llm_flow(tool_conversation(1), {"x-session-id": "s1"})
        answer(flow, read=0)
        addon.response(flow)
        assert compares_next_turn(addon, tool_conversation(1))
    turn = first_turn(addon)
    assert turn.requested_model == "claude-sonnet-4-5"


async def test_both_addons_parse_a_request_body_once(monkeypatch: pytest.MonkeyPatch) -> None:
    inject, audit = Inject(), CacheAudit()
    flow = llm_flow(tool_conversation(3))  # no session header: inject fingerprints the body
    parsed: list[object] = []
    real_loads = body.loads
    monkeypatch.setattr(body, "loads", lambda data: parsed.append(data) or real_loads(data))
    with taddons.context(inject, audit) as tctx:
        tctx.configure(audit)
        for hook in ("requestheaders", "request"):
            for addon in (inject, audit):
                getattr(addon, hook)(flow)
        await asyncio.sleep(audit_requests.READ_DELAY * 2)
        answer(flow, read=0)
        audit.response(flow)
    assert parsed.count(flow.request.raw_content) == 1
    assert first_turn(audit).requested_model == "claude-sonnet-4-5"
    assert flow.metadata["cachepin"]["source"] == "fingerprint"


def test_requests_that_never_end_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_requests, "MAX_PENDING", 3)
    addon = CacheAudit()
    with taddons.context(addon):
        flows = [llm_flow(tool_conversation(1)) for _ in range(10)]
        for flow in flows:
            addon.request(flow)
        assert list(addon.requests) == [flow.id for flow in flows[-3:]]
        flows[-1].error = tflow.terr()
        addon.error(flows[-1])
        assert flows[-1].id not in addon.requests
