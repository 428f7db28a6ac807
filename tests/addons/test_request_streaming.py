"""Requests whose headers name their session are streamed upstream (request/tee.py), unless something needs
the body first; the flow holds the body afterwards as if it had been buffered."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cache_audit import CacheAudit
from inject import Inject
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from cachepin import handover
from cachepin.request.tee import RequestTee

BODY = json.dumps({"model": "claude-sonnet-4-6", "system": "Be brief.", "max_tokens": 8,
                   "messages": [{"role": "user", "content": "hi"}]}).encode()
NAMED = {"x-session-id": "s-1"}


def flow(path: str = "/v1/messages", headers: dict[str, str] | None = None) -> http.HTTPFlow:
    request = http.Request.make("POST", f"https://api.example.com{path}", b"",
                                {"content-type": "application/json", **(headers or {})})
    request.headers["content-length"] = str(len(BODY))
    made = tflow.tflow(req=request)
    made.request.data.content = None  # headers only: what requestheaders sees
    return made


def stream_body(made: http.HTTPFlow) -> None:
    """What mitmproxy does with a streamed body: each chunk through the callable, then b""."""
    stream = made.request.stream
    assert callable(stream)
    assert b"".join([stream(BODY[:10]), stream(BODY[10:]), stream(b"")]) == BODY


@pytest.fixture
def addons() -> Iterator[tuple[Inject, CacheAudit]]:
    yield Inject(), CacheAudit()
    handover._parked.clear()


@pytest.mark.parametrize("headers, options, streamed", [
    (NAMED, {}, True),
    ({"x-claude-code-session-id": "cc-1"}, {}, True),
    ({}, {}, False),  # the fingerprint needs the body
    ({}, {"affinity_session": "ci-run-7"}, True),
    (NAMED, {"affinity_stream_requests": False}, False),
    (NAMED, {"cache_diagnostics": True}, False),  # the audit edits the body before it leaves
    (NAMED, {"intercept_active": True}, False),
])
async def test_both_addons_stream_a_named_request_unless_its_body_is_needed(
        addons: tuple[Inject, CacheAudit], headers: dict[str, str], options: dict[str, object],
        streamed: bool) -> None:
    inject, audit = addons
    made = flow(headers=headers)
    with taddons.context(inject, audit) as tctx:
        if "intercept_active" in options:
            tctx.options.add_option("intercept_active", bool, False, "as mitmproxy's intercept addon declares it")
        tctx.configure(inject, **options)
        inject.requestheaders(made)
        audit.requestheaders(made)
    assert isinstance(made.request.stream, RequestTee) is streamed
    assert made.request.stream is not True


async def test_prompt_cache_key_keeps_an_openai_request_buffered(addons: tuple[Inject, CacheAudit]) -> None:
    inject, audit = addons
    chat, messages = flow("/v1/chat/completions", NAMED), flow("/v1/messages", NAMED)
    with taddons.context(inject, audit) as tctx:
        tctx.configure(inject, affinity_prompt_cache_key=True)
        for made in (chat, messages):
            inject.requestheaders(made)
            audit.requestheaders(made)
    assert chat.request.stream is False and isinstance(messages.request.stream, RequestTee)


async def test_the_audit_alone_streams_a_named_request(addons: tuple[Inject, CacheAudit]) -> None:
    _, audit = addons
    named, anonymous = flow(headers=NAMED), flow()
    with taddons.context(audit):
        for made in (named, anonymous):
            audit.requestheaders(made)
    assert isinstance(named.request.stream, RequestTee) and anonymous.request.stream is False


@pytest.mark.parametrize("case", ["stream_large_bodies", "replay"])
async def test_a_stream_of_stream_large_bodies_and_a_replay_are_left_alone(addons: tuple[Inject, CacheAudit],
                                                                         case: str) -> None:
    inject, audit = addons
    made = flow(headers=NAMED)
    if case == "replay":
        made.is_replay = "request"
    else:
        made.request.stream = True  # mitmproxy's stream_large_bodies: the user's choice, body not kept
    with taddons.context(inject, audit):
        inject.requestheaders(made)
        audit.requestheaders(made)
    assert made.request.stream is (True if case == "stream_large_bodies" else False)


async def test_a_streamed_body_is_the_flows_content_again_and_audited(addons: tuple[Inject, CacheAudit]) -> None:
    inject, audit = addons
    made = flow(headers=NAMED)
    with taddons.context(inject, audit):
        inject.requestheaders(made)
        audit.requestheaders(made)
        stream_body(made)
        assert made.request.raw_content is None  # mitmproxy kept nothing while it streamed
        inject.request(made)
        audit.request(made)
        assert made.request.raw_content == BODY
        made.response = http.Response.make(200, json.dumps({
            "type": "message", "model": "claude-sonnet-4-6", "content": [],
            "usage": {"input_tokens": 12, "output_tokens": 3, "cache_read_input_tokens": 0,
                      "cache_creation_input_tokens": 1538}}).encode(), {"content-type": "application/json"})
        audit.response(made)
    (session,) = audit.ledger.sessions
    (turn,) = session.turns
    assert session.session_id == "s-1" and turn.position == "start" and turn.thread.startswith("ln_")


@pytest.mark.parametrize("option", [{"cache_diagnostics": True}, {"affinity_stream_requests": False}])
async def test_the_audit_loaded_first_still_keeps_the_body_for_its_edit(addons: tuple[Inject, CacheAudit],
                                                                        option: dict[str, object]) -> None:
    """``-s cache_audit.py -s inject.py``: the audit's hook runs first, so inject must ask about the edit too."""
    inject, audit = addons
    made = flow(headers=NAMED)
    with taddons.context(audit, inject) as tctx:
        tctx.configure(audit, **option)
        audit.requestheaders(made)
        inject.requestheaders(made)
    assert made.request.stream is False
