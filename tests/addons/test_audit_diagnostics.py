"""cache_diagnostics in the audit addon: each later turn of a thread asks the provider about the thread's latest
response, by one member spliced into the body before it leaves, and the provider's answer becomes the turn's
``provider_diagnosis``. Off (the default), the request hook is as it always was."""

from __future__ import annotations

import gzip
import json

import pytest
from cache_audit import CacheAudit
from flows import harness, run_hook
from inject import Inject
from logs import captured_logs, problems
from mitmproxy import http
from mitmproxy.test import tflow

from cachepin.audit import RequestFacts
from cachepin.response.diagnostics import Diagnosis

SYSTEM = [{"type": "text", "text": "You review code. " * 60, "cache_control": {"type": "ephemeral"}}]


def claude_body(turns: int, **changes: object) -> dict:
    messages: list[dict] = []
    for turn in range(turns):
        messages += [{"role": "assistant", "content": "ok"}] if turn else []
        messages.append({"role": "user", "content": f"question {turn}"})
    return {"model": "claude-opus-4-8", "max_tokens": 64, "system": SYSTEM, "messages": messages} | changes


def responses_body(turns: int, **changes: object) -> dict:
    items: list[dict] = []
    for turn in range(turns):
        items += [{"role": "assistant", "content": "ok"}] if turn else []
        items.append({"role": "user", "content": f"question {turn}"})
    return {"model": "gpt-5.6", "instructions": "You review code. " * 60, "input": items} | changes


def llm_flow(path: str, body: dict | bytes, headers: dict | None = None, **options: object) -> http.HTTPFlow:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = http.Request.make("POST", f"https://api.example.com{path}", b"",
                                {"content-type": "application/json", "x-session-id": "s1", **(headers or {})})
    request.raw_content = raw
    return tflow.tflow(req=request, **options)


def claude_answer(flow: http.HTTPFlow, message_id: str, read: int, **members: object) -> None:
    usage = {"input_tokens": 5, "cache_creation_input_tokens": 100, "cache_read_input_tokens": read,
             "output_tokens": 7}
    body = {"id": message_id, "type": "message", "model": "claude-opus-4-8", "usage": usage} | members
    flow.response = http.Response.make(200, json.dumps(body).encode(), {"content-type": "application/json"})


def responses_answer(flow: http.HTTPFlow, response_id: str, **members: object) -> None:
    usage = {"input_tokens": 300, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 2}
    body = {"id": response_id, "object": "response", "model": "gpt-5.6", "status": "completed", "usage": usage}
    flow.response = http.Response.make(200, json.dumps(body | members).encode(), {"content-type": "application/json"})


def turn_of(audit: CacheAudit, flow: http.HTTPFlow) -> None:
    """The request hooks of both addons, as mitmproxy runs them before the body leaves."""
    run_hook("requestheaders", flow, audit)
    run_hook("request", flow, audit)


def sent(flow: http.HTTPFlow) -> dict:
    return json.loads(flow.request.get_content())


def test_each_later_turn_asks_about_its_threads_latest_response() -> None:
    audit = CacheAudit()
    with harness(audit) as tctx:
        tctx.configure(audit, cache_diagnostics=True)
        first = llm_flow("/v1/messages", claude_body(1))
        original = first.request.raw_content
        turn_of(audit, first)
        assert first.request.raw_content == b'{"diagnostics":{"previous_message_id":null},' + original[1:]
        assert isinstance(audit.requests[first.id], RequestFacts)  # read at once, not after the body left
        claude_answer(first, "msg_1", 0, diagnostics=None)
        audit.response(first)

        second = llm_flow("/v1/messages", claude_body(2))
        turn_of(audit, second)
        assert sent(second)["diagnostics"] == {"previous_message_id": "msg_1"}
        changed = {"cache_miss_reason": {"type": "system_changed", "cache_missed_input_tokens": 41850}}
        claude_answer(second, "msg_2", 0, diagnostics=changed)
        audit.response(second)
    (session,) = audit.ledger.sessions
    assert [turn.provider_diagnosis for turn in session.turns] == [Diagnosis("opted_in"),  # its null compared nothing
                                                                   Diagnosis("system_changed", 41850)]
    assert "provider: system_changed" in second.comment


def test_a_responses_thread_asks_from_its_second_turn() -> None:
    audit = CacheAudit()
    with harness(audit) as tctx:
        tctx.configure(audit, cache_diagnostics=True)
        first = llm_flow("/v1/responses", responses_body(1))
        original = first.request.raw_content
        turn_of(audit, first)
        assert first.request.raw_content == original  # OpenAI: "Omit the comparison ID on the first turn"
        responses_answer(first, "resp_1")
        audit.response(first)
        second = llm_flow("/v1/responses", responses_body(2, prompt_cache_options={"ttl": "30m"}))
        turn_of(audit, second)
        assert sent(second)["prompt_cache_options"] == {"comparison_response_id": "resp_1", "ttl": "30m"}
        responses_answer(second, "resp_2", prompt_cache_diagnostics={
            "type": "cache_miss", "reason": "input_changed", "comparison_reusable_tokens": 300,
            "cache_missed_tokens": 120})
        audit.response(second)
    assert audit.ledger.sessions[0].turns[1].provider_diagnosis == Diagnosis("input_changed", 120)


def test_the_option_off_leaves_the_request_hook_as_it_was() -> None:
    audit = CacheAudit()
    with harness(audit):
        flow = llm_flow("/v1/messages", claude_body(1))
        original = flow.request.raw_content
        turn_of(audit, flow)
        assert flow.request.raw_content is original
        assert callable(audit.requests[flow.id])  # read after the body has left, as always
        claude_answer(flow, "msg_1", 0, diagnostics=None)  # a client that asked itself: read all the same
        audit.response(flow)
    assert audit.ledger.sessions[0].turns[0].provider_diagnosis == Diagnosis("no_divergence")


@pytest.mark.parametrize(("path", "body", "headers"), [
    ("/v1/messages", claude_body(1, diagnostics={"previous_message_id": None}), {}),  # the client asks itself
    ("/v1/messages", claude_body(1, model="deepseek-chat"), {}),
    ("/model/anthropic.claude-opus-4-8/invoke", claude_body(1), {}),  # Bedrock
    ("/anthropic/v1/messages", claude_body(1), {}),
    ("/v1/responses", responses_body(2, model="gpt-5.5"), {}),
    ("/v1/chat/completions", {"model": "gpt-5.6", "messages": [{"role": "user", "content": "hi"}]}, {}),
    ("/v1/messages", b'{"model": "claude-opus-4-8", "messages": [', {}),  # no JSON
    ("/v1/messages", gzip.compress(b'{"model": "claude-opus-4-8"}'), {"content-encoding": "br"}),  # a lying coding
    ("/v1/messages", json.dumps(claude_body(1)).encode(), {"content-encoding": "gzip"}),  # labelled, not gzip
])
def test_requests_that_cannot_ask_go_as_they_came(path: str, body: dict | bytes, headers: dict) -> None:
    audit = CacheAudit()
    flow = llm_flow(path, body, headers)
    before = flow.request.copy()
    with harness(audit) as tctx, captured_logs() as records:
        tctx.configure(audit, cache_diagnostics=True)
        turn_of(audit, flow)
    assert flow.request.raw_content == before.raw_content and flow.request.headers == before.headers
    assert problems(records) == []


@pytest.mark.parametrize("kind", ["read from a file", "replayed"])
def test_captures_and_replays_are_not_edited(kind: str) -> None:
    audit = CacheAudit()
    flow = llm_flow("/v1/messages", claude_body(1), live=kind != "read from a file")
    if kind == "replayed":
        flow.is_replay = "request"
    original = flow.request.raw_content
    with harness(audit) as tctx:
        tctx.configure(audit, cache_diagnostics=True)
        turn_of(audit, flow)
    assert flow.request.raw_content == original


def test_a_gzipped_body_is_edited_and_sent_gzipped() -> None:
    audit = CacheAudit()
    plain = json.dumps(claude_body(1)).encode()
    flow = llm_flow("/v1/messages", gzip.compress(plain), {"content-encoding": "gzip"})
    with harness(audit) as tctx:
        tctx.configure(audit, cache_diagnostics=True)
        turn_of(audit, flow)
    assert flow.request.headers["content-encoding"] == "gzip"
    assert flow.request.headers["content-length"] == str(len(flow.request.raw_content))
    assert gzip.decompress(flow.request.raw_content) == b'{"diagnostics":{"previous_message_id":null},' + plain[1:]


def test_with_prompt_cache_key_both_members_are_added() -> None:
    """The two body edits cachepin may make, on one Responses request: the inject addon's key, then the audit's
    comparison id."""
    inject, audit = Inject(), CacheAudit()
    with harness(inject, audit) as tctx:
        tctx.configure(inject, affinity_prompt_cache_key=True)
        tctx.configure(audit, cache_diagnostics=True)
        first = llm_flow("/v1/responses", responses_body(1))
        run_hook("requestheaders", first, inject, audit)
        run_hook("request", first, inject, audit)
        responses_answer(first, "resp_1")
        run_hook("response", first, inject, audit)
        second = llm_flow("/v1/responses", responses_body(2))
        original = second.request.raw_content
        run_hook("requestheaders", second, inject, audit)
        run_hook("request", second, inject, audit)
    assert second.request.raw_content == (b'{"prompt_cache_options":{"comparison_response_id":"resp_1"},'
                                          b'"prompt_cache_key":"s1",' + original[1:])


def test_a_proxy_that_never_saw_the_thread_opts_it_in_again() -> None:
    """A restart, another replica: a continuation without a known baseline asks with null, and Anthropic's null
    answer then says nothing about the request."""
    audit = CacheAudit()
    with harness(audit) as tctx:
        tctx.configure(audit, cache_diagnostics=True)
        flow = llm_flow("/v1/messages", claude_body(3))
        turn_of(audit, flow)
        assert sent(flow)["diagnostics"] == {"previous_message_id": None}
        claude_answer(flow, "msg_9", 0, diagnostics=None)
        audit.response(flow)
    (turn,) = audit.ledger.sessions[0].turns
    assert turn.provider_diagnosis == Diagnosis("opted_in") and turn.position == "continuation"
    assert audit.ledger.diagnoses.as_dict()["inconclusive"] == 1
