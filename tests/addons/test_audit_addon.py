"""The audit addon inside mitmproxy's test harness: verdicts, the stream tee, options, hooks, reports, exit."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cache_audit
import pytest
from cache_audit import MISS_MARK, CacheAudit
from inject import Inject
from llm_upstream import words
from mitmproxy import contentviews, exceptions, hooks, http
from mitmproxy import io as mitmio
from mitmproxy.test import taddons, tflow

from cachepin import handover
from cachepin.response.readers import StreamTap
from cachepin.turns.verdicts import short_id
from cachepin_mitmproxy import audit_requests
from cachepin_tools.wire import anthropic, bedrock, framing, gemini, openai
from cachepin_tools.wire.tokens import Tokens

SECRET_KEY = "sk-ant-api03-SECRETKEYDONOTLEAK"
PROMPT = "PROMPT-TEXT-that-must-never-be-logged"
REPLY = "REPLY-TEXT-that-must-never-be-logged"
SSE = "text/event-stream; charset=utf-8"


# --- the dialects: request body, JSON response for given cache figures, and what the ledger must hold ---

Figures = tuple[int | None, int | None, int | None, int | None]  # input, creation, read, output


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    provider: str
    model: str | None
    request: Callable[[str], dict]  # prompt -> request body
    response: Callable[[int, int], dict]  # (read, written) -> response body with cache figures
    figures: Callable[[int, int], Figures]  # (read, written) -> normalised figures
    no_cache: dict  # a response whose usage says nothing about the cache


def _anthropic_request(prompt: str) -> dict:
    return {"model": "claude-sonnet-4-6", "max_tokens": 64, "system": "Be brief.",
            "messages": [{"role": "user", "content": prompt}]}


CASES = [
    Case("anthropic", "/v1/messages", "anthropic", "claude-sonnet-4-6", _anthropic_request,
         lambda read, written: anthropic.message(anthropic.usage(Tokens(12, read=read, creation=written, output=85)),
                                                 REPLY, "claude-sonnet-4-6"),
         lambda read, written: (12, written, read, 85),
         anthropic.message(anthropic.usage(Tokens(12, read=None, creation=None, output=85)), REPLY,
                           "claude-sonnet-4-6")),
    Case("openai-chat", "/v1/chat/completions", "openai", "gpt-5",
         lambda prompt: {"model": "gpt-5", "messages": [{"role": "system", "content": "Be brief."},
                                                        {"role": "user", "content": prompt}]},
         lambda read, written: openai.completion(openai.chat_usage(Tokens(300, read=read, output=52)), REPLY, "gpt-5"),
         lambda read, written: (300, None, read, 52),  # writes are not reported (only from GPT-5.6 on)
         openai.completion(openai.chat_usage(Tokens(300, read=None, creation=None, output=52)), REPLY, "gpt-5")),
    Case("openai-responses", "/v1/responses", "openai", "gpt-5",
         lambda prompt: {"model": "gpt-5", "instructions": "Be brief.", "input": prompt},
         lambda read, written: openai.response(openai.responses_usage(Tokens(7000, read=read, creation=None,
                                                                             output=140)), REPLY, "gpt-5"),
         lambda read, written: (7000, None, read, 140),
         openai.response(openai.responses_usage(Tokens(70, read=None, creation=None, output=14)), REPLY, "gpt-5")),
    Case("gemini", "/v1beta/models/gemini-2.5-flash:generateContent", "gemini", "gemini-2.5-flash",
         lambda prompt: {"systemInstruction": {"parts": [{"text": "Be brief."}]},
                         "contents": [{"role": "user", "parts": [{"text": prompt}]}]},
         lambda read, written: gemini.response(gemini.usage_metadata(Tokens(900, read=read, creation=None, output=20)),
                                               REPLY, "gemini-2.5-flash"),
         lambda read, written: (900, None, read, 20),
         gemini.response(None, REPLY, "gemini-2.5-flash")),
    Case("bedrock-converse", "/model/anthropic.claude-sonnet-4-6/converse", "bedrock", None,
         lambda prompt: {"system": [{"text": "Be brief."}], "messages": [{"role": "user", "content": [
             {"text": prompt}]}]},
         lambda read, written: bedrock.converse(bedrock.converse_usage(Tokens(30, read=read, creation=written,
                                                                              output=95)), REPLY),
         lambda read, written: (30, written, read, 95),
         bedrock.converse(bedrock.converse_usage(Tokens(30, read=None, creation=None, output=95)), REPLY)),
    Case("bedrock-invoke", "/model/anthropic.claude-sonnet-4-6/invoke", "bedrock", "claude-sonnet-4-6",
         lambda prompt: {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "system": "Be brief.",
                         "messages": [{"role": "user", "content": prompt}]},
         lambda read, written: anthropic.message(anthropic.usage(Tokens(12, read=read, creation=written, output=85)),
                                                 REPLY, "claude-sonnet-4-6"),
         lambda read, written: (12, written, read, 85),
         anthropic.message(anthropic.usage(Tokens(12, read=None, creation=None, output=85)), REPLY,
                           "claude-sonnet-4-6")),
]
CASE_IDS = [case.name for case in CASES]


# --- flows and helpers ---

def make_flow(path: str = "/v1/messages", body: dict | bytes | None = None, *, response: dict | bytes | None = None,
              status: int = 200, content_type: str = "application/json", headers: dict | None = None,
              response_headers: dict | None = None, live: bool = True) -> http.HTTPFlow:
    content = body if isinstance(body, bytes) else json.dumps(body or _anthropic_request(PROMPT)).encode()
    request = http.Request.make("POST", f"https://api.example.com{path}", content,
                                {"content-type": "application/json", "x-api-key": SECRET_KEY,
                                 "authorization": f"Bearer {SECRET_KEY}", **(headers or {})})
    resp = None
    if response is not None:
        data = response if isinstance(response, bytes) else json.dumps(response).encode()
        resp = http.Response.make(status, b"", {"content-type": content_type, **(response_headers or {})})
        resp.raw_content = data  # as received: already encoded when a content-encoding header is given
        resp.headers["content-length"] = str(len(data))
    return tflow.tflow(req=request, resp=resp or False, live=live)


def turn_flow(case: Case, read: int, written: int = 0, session: str | None = "s-1", **kwargs) -> http.HTTPFlow:
    headers = {"x-session-id": session} if session else {}
    return make_flow(case.path, case.request(PROMPT), response=case.response(read, written), headers=headers,
                     **kwargs)


def figures(turn) -> Figures:
    return (turn.input_tokens, turn.cache_creation_input_tokens, turn.cache_read_input_tokens, turn.output_tokens)


def turns(addon: CacheAudit) -> list:
    return [turn for session in addon.ledger.sessions for turn in session.turns]


def verdicts(addon: CacheAudit) -> list[str]:
    return [turn.verdict.value for turn in turns(addon)]


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


STREAMED = words(REPLY + " more words")
SSE_CASES = {
    "anthropic": ("/v1/messages",
                  framing.stream(anthropic.events(anthropic.usage(Tokens(12, read=1538, creation=0, output=85)),
                                                  STREAMED, "claude-sonnet-4-6")),
                  ("anthropic", "claude-sonnet-4-6", 12, 0, 1538, 85)),
    "openai-chat": ("/v1/chat/completions",
                    framing.stream(openai.chat_events(openai.chat_usage(Tokens(204, read=4096, output=52)), STREAMED,
                                                      "gpt-5")),
                    ("openai", "gpt-5", 204, None, 4096, 52)),
    "openai-responses": ("/v1/responses",
                         framing.stream(openai.responses_events(openai.responses_usage(
                             Tokens(288, read=6912, creation=None, output=140)), STREAMED, "gpt-5")),
                         ("openai", "gpt-5", 288, None, 6912, 140)),
    "gemini": ("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
               framing.stream([(None, gemini.response(gemini.usage_metadata(Tokens(1928, read=3072, creation=None,
                                                                                  output=n)),
                                                      f"w{n} ", "gemini-2.5-flash", "STOP" if n == 5 else None))
                               for n in range(1, 6)],
                              framing.GEMINI),
               ("gemini", "gemini-2.5-flash", 1928, None, 3072, 5)),
}


@pytest.fixture
def addon() -> Iterator[CacheAudit]:
    audit = CacheAudit()
    yield audit
    handover._parked.clear()  # nothing parked by a done() may reach a later test's master


async def run(tctx: taddons.context, addon: CacheAudit, *flows: http.HTTPFlow) -> None:
    for flow in flows:
        await tctx.cycle(addon, flow)


def stream_through(addon: CacheAudit, flow: http.HTTPFlow, parts: list[bytes]) -> bytes:
    """What mitmproxy does with a streamed response: headers hook, the callable per chunk, b"", response hook."""
    addon.responseheaders(flow)
    assert callable(flow.response.stream)
    out = b"".join(flow.response.stream(part) for part in [*parts, b""])
    addon.response(flow)
    return out


# --- verdicts of JSON bodies ---

@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_json_cold_hit_miss_with_figures(addon: CacheAudit, case: Case) -> None:
    flows = [turn_flow(case, 0, 1538), turn_flow(case, 1538, 0), turn_flow(case, 0, 1600)]
    with taddons.context(addon) as tctx:
        await run(tctx, addon, *flows)
    session, = addon.ledger.sessions
    assert session.session_id == "s-1" and session.source == "header:x-session-id"
    assert [t.verdict.value for t in session.turns] == ["cold", "hit", "miss"]
    assert [figures(t) for t in session.turns] == [case.figures(0, 1538), case.figures(1538, 0),
                                                   case.figures(0, 1600)]
    assert {t.provider for t in session.turns} == {case.provider}
    assert {t.model for t in session.turns} == {case.model}
    assert [t.flow_id for t in session.turns] == [f.id for f in flows]
    assert [t.stream for t in session.turns] == [False] * 3
    marks = [f.metadata["cachepin_turn"] for f in flows]
    assert [(m["session_id"], m["turn"], m["verdict"], m["cache_read_input_tokens"]) for m in marks] == [
        ("s-1", 1, "cold", 0), ("s-1", 2, "hit", 1538), ("s-1", 3, "miss", 0)]
    assert [m["thread"] for m in marks] == [t.thread for t in session.turns]
    assert "reason" in marks[2] and "reason" not in marks[0]
    assert addon.ledger.ok  # no expectation set


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_json_without_cache_figures_is_none(addon: CacheAudit, case: Case) -> None:
    with taddons.context(addon) as tctx:
        flow = make_flow(case.path, case.request(PROMPT), response=case.no_cache)
        await run(tctx, addon, flow)
    turn, = turns(addon)
    assert turn.verdict.value == "none" and turn.cache_read_input_tokens is None
    assert flow.marked == ""


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("status, response", [
    (529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    (200, {"type": "error", "error": {"type": "api_error", "message": "Internal"}}),
], ids=["status-529", "error-body-200"])
async def test_json_errors_are_error_turns_counted_nowhere(addon: CacheAudit, case: Case, status: int,
                                                           response: dict) -> None:
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_expect="warm")
        await run(tctx, addon, turn_flow(case, 0, 1538),
                  make_flow(case.path, case.request(PROMPT), response=response, status=status,
                            headers={"x-session-id": "s-1"}),
                  turn_flow(case, 1538, 0))
    assert verdicts(addon) == ["cold", "error", "hit"]
    error_turn = turns(addon)[1]
    assert error_turn.status == status and error_turn.error and figures(error_turn) == (None,) * 4
    assert addon.ledger.totals.requests == 2  # the error turn is not counted
    assert addon.ledger.ok  # ... and does not fail warm


async def test_first_turn_after_an_error_may_be_cold(addon: CacheAudit) -> None:
    case = CASES[0]
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_expect="warm")
        await run(tctx, addon, make_flow(case.path, case.request(PROMPT), response=b"{}", status=500,
                                         headers={"x-session-id": "s-1"}), turn_flow(case, 0, 1538))
    assert verdicts(addon) == ["error", "cold"] and addon.ledger.ok


async def test_non_llm_flows_are_ignored(addon: CacheAudit) -> None:
    with taddons.context(addon) as tctx:
        flows = [make_flow("/v1/embeddings", response={"usage": {"prompt_tokens": 3}}),
                 tflow.tflow(resp=True), tflow.tflow(err=True)]
        await run(tctx, addon, *flows)
    assert addon.ledger.sessions == [] and all(not f.comment and "cachepin_turn" not in f.metadata for f in flows)


# --- the stream tee ---

@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
@pytest.mark.parametrize("name", list(SSE_CASES))
async def test_sse_tee_is_byte_identical_and_records_figures(addon: CacheAudit, name: str, size: int) -> None:
    path, body, expected = SSE_CASES[name]
    with taddons.context(addon):
        flow = make_flow(path, CASES[0].request(PROMPT) if name == "anthropic" else {"model": "m", "input": "x"},
                         response=b"", content_type=SSE, headers={"x-session-id": "s-sse"})
        out = stream_through(addon, flow, split(body, size))
    assert out == body
    turn, = turns(addon)
    assert (turn.provider, turn.model, *figures(turn)) == expected
    assert turn.verdict.value == "hit" and turn.stream is True
    assert turn.ttft_ms is not None and turn.ttft_ms >= 0


@pytest.mark.parametrize("size", [1, 13, 4096])
async def test_gzip_sse_is_passed_compressed_and_read_decoded(addon: CacheAudit, size: int) -> None:
    path, body, expected = SSE_CASES["anthropic"]
    compressed = gzip.compress(body)
    with taddons.context(addon):
        flow = make_flow(path, response=b"", content_type=SSE, response_headers={"content-encoding": "gzip"})
        out = stream_through(addon, flow, split(compressed, size))
    assert out == compressed
    turn, = turns(addon)
    assert (turn.provider, turn.model, *figures(turn)) == expected


async def test_sse_chunks_pass_at_once(addon: CacheAudit) -> None:
    """Each chunk comes back from the callable as it goes in: nothing is held back until the end."""
    path, body, _ = SSE_CASES["anthropic"]
    with taddons.context(addon):
        flow = make_flow(path, response=b"", content_type=SSE)
        addon.responseheaders(flow)
        for part in split(body, 10):
            assert flow.response.stream(part) == part
        assert flow.response.stream(b"") == b""


async def test_a_stream_callable_of_another_addon_is_left_alone(addon: CacheAudit) -> None:
    def preset(chunk: bytes) -> bytes:
        return chunk

    with taddons.context(addon):
        flow = make_flow(response=b"", content_type=SSE)
        flow.response.stream = preset
        addon.responseheaders(flow)
    assert flow.response.stream is preset


async def test_plain_streaming_of_sse_becomes_the_tap(addon: CacheAudit) -> None:
    """stream_large_bodies sets stream = True: the tap streams just the same, and reads the usage."""
    with taddons.context(addon):
        flow = make_flow(response=b"", content_type=SSE)
        flow.response.stream = True
        addon.responseheaders(flow)
    assert isinstance(flow.response.stream, StreamTap)


EVENT_STREAM = "application/vnd.amazon.eventstream"
BEDROCK_STREAMS = {  # path, request body, stream for (read, written), provider and model as recorded
    "converse-stream": ("/model/anthropic.claude-sonnet-4-6/converse-stream", CASES[4].request(PROMPT),
                        lambda read, written: bedrock.converse_stream(bedrock.converse_usage(
                            Tokens(30, read=read, creation=written, output=95)), STREAMED),
                        ("bedrock", None)),
    "invoke-with-response-stream": (
        "/model/anthropic.claude-sonnet-4-6/invoke-with-response-stream", CASES[5].request(PROMPT),
        lambda read, written: bedrock.invoke_stream(anthropic.events(anthropic.usage(
            Tokens(30, read=read, creation=written, output=95)), STREAMED, "claude-sonnet-4-6"),
            bedrock.invocation_metrics(Tokens(30, read=read, creation=written, output=95))),
        ("bedrock", "claude-sonnet-4-6")),
}


@pytest.mark.parametrize("size", [1, 9, 100_000])
@pytest.mark.parametrize("name", list(BEDROCK_STREAMS))
async def test_bedrock_event_streams_are_read_as_they_pass(addon: CacheAudit, name: str, size: int) -> None:
    """Each chunk comes back from the tap as it went in, at once; the figures are read on the side."""
    path, request, frames, recorded = BEDROCK_STREAMS[name]
    with taddons.context(addon):
        for read, written in [(0, 1538), (1538, 0)]:
            body = b"".join(frames(read, written))
            flow = make_flow(path, request, response=b"", content_type=EVENT_STREAM,
                             headers={"x-session-id": "s-bedrock"})
            addon.responseheaders(flow)
            assert isinstance(flow.response.stream, StreamTap)
            for part in [*split(body, size), b""]:
                assert flow.response.stream(part) is part
            assert flow.response.stream.result.warning is None
            flow.response.raw_content = None  # what streaming leaves behind
            addon.response(flow)
    assert [(t.verdict.value, t.provider, t.model, *figures(t)) for t in turns(addon)] == [
        ("cold", *recorded, 30, 1538, 0, 95), ("hit", *recorded, 30, 0, 1538, 95)]
    assert all(t.ttft_ms is not None for t in turns(addon))


@pytest.mark.parametrize("name", list(BEDROCK_STREAMS))
async def test_a_kept_bedrock_stream_is_read_from_the_capture(addon: CacheAudit, name: str) -> None:
    """store_streamed_bodies=true keeps the bytes: a replay reads them with the same scanner."""
    path, request, frames, recorded = BEDROCK_STREAMS[name]
    with taddons.context(addon) as tctx:
        await run(tctx, addon, make_flow(path, request, response=b"".join(frames(1538, 0)),
                                         content_type=EVENT_STREAM, live=False))
    turn, = turns(addon)
    assert (turn.provider, turn.model, *figures(turn)) == (*recorded, 30, 0, 1538, 95)


async def test_a_bedrock_exception_mid_stream_is_an_error_turn_by_its_type(addon: CacheAudit, caplog) -> None:
    path, request, frames, _ = BEDROCK_STREAMS["converse-stream"]
    parts = [*frames(0, 1538)[:3], bedrock.exception("throttlingException", f"Too many requests {SECRET_KEY}")]
    with taddons.context(addon):
        caplog.set_level(logging.INFO)
        flow = make_flow(path, request, response=b"", content_type=EVENT_STREAM)
        out = stream_through(addon, flow, parts)
    assert out == b"".join(parts)
    turn, = turns(addon)
    assert turn.verdict.value == "error" and turn.error == "throttlingException"
    assert "error=throttlingException" in caplog.text and SECRET_KEY not in caplog.text


async def test_a_corrupt_bedrock_stream_is_one_warning_and_passes_through(addon: CacheAudit, caplog) -> None:
    path, request, frames, _ = BEDROCK_STREAMS["invoke-with-response-stream"]
    parts = frames(0, 1538)
    damaged = bytearray(parts[4])
    damaged[-1] ^= 0xFF
    parts[4] = bytes(damaged)
    with taddons.context(addon):
        out = stream_through(addon, make_flow(path, request, response=b"", content_type=EVENT_STREAM), parts)
    assert out == b"".join(parts)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "AWS" in r.getMessage()]
    assert len(warnings) == 1 and "the AWS event stream is corrupt (message CRC mismatch at byte" in warnings[0]
    turn, = turns(addon)
    assert turn.cache_creation_input_tokens == 1538 and turn.output_tokens == 1  # message_start, before the damage


async def test_a_stream_tapped_before_a_hot_reload_is_read_after_it(addon: CacheAudit) -> None:
    path, body, expected = SSE_CASES["anthropic"]
    flow = make_flow(path, response=b"", content_type=SSE)
    with taddons.context(addon):
        addon.responseheaders(flow)
        for part in split(body, 100):
            flow.response.stream(part)
        flow.response.stream(b"")
    reloaded = CacheAudit()
    with taddons.context(reloaded):
        reloaded.response(flow)
    assert figures(turns(reloaded)[0]) == expected[2:]


@pytest.mark.parametrize("reload_first", [False, True], ids=["no-reload", "across-a-reload"])
async def test_streams_in_flight_at_shutdown_are_settled_before_the_reports(addon: CacheAudit, tmp_path: Path,
                                                                            reload_first: bool) -> None:
    path, body, _ = SSE_CASES["anthropic"]
    report = tmp_path / "report.json"
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_report=str(report))
        flow = make_flow(path, response=b"", content_type=SSE, headers={"x-session-id": "in-flight"})
        addon.request(flow)
        addon.responseheaders(flow)
        flow.response.stream(body[: _final_event_at(body) - 3])  # cut before the final usage
        stopping = addon
        if reload_first:
            tctx.master.addons.remove(addon)  # done() of a reload: hands over
            stopping = CacheAudit()
            tctx.master.addons.add(stopping)
        tctx.master.should_exit.set()
        stopping.done()
        stopping.error(flow)  # mitmproxy tears the connection down after every done(): no second turn
    session, = json.loads(report.read_text())["sessions"]
    assert [(t["verdict"], t["cache_read_input_tokens"]) for t in session["turns"]] == [("error", 1538)]
    assert len(stopping.ledger.sessions[0].turns) == 1 and not stopping.in_flight


async def test_an_intercepted_request_is_read_after_its_edit(addon: CacheAudit) -> None:
    case = CASES[0]
    with taddons.context(addon):
        flow = make_flow(case.path, response=case.response(0, 100), headers={"x-session-id": "s"})
        flow.intercept()
        addon.request(flow)
        await asyncio.sleep(audit_requests.READ_DELAY * 3)  # a user takes longer than the early read to edit
        flow.request.content = json.dumps({**case.request(PROMPT), "model": "claude-opus-4-6"}).encode()
        flow.resume()
        addon.response(flow)
    assert turns(addon)[0].requested_model == "claude-opus-4-6"


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every request body the audit parses, recorded instead of parsed."""
    bodies: list[bytes] = []
    monkeypatch.setattr(audit_requests, "parse_json_object", lambda data: bodies.append(data))
    return bodies


async def test_without_the_explainer_a_session_header_spares_the_parse(addon: CacheAudit, parsed: list) -> None:
    """The audit alone, cache_explain=false: a client that names its session is never parsed."""
    case = CASES[0]
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_explain=False)
        await run(tctx, addon, make_flow(case.path, response=case.response(0, 3500), headers={"x-session-id": "h"}))
    assert parsed == [] and addon.ledger.sessions[0].session_id == "h"
    assert turns(addon)[0].requested_model is None and turns(addon)[0].model == case.model


async def test_json_responses_are_not_streamed(addon: CacheAudit) -> None:
    with taddons.context(addon):
        flow = turn_flow(CASES[0], 0, 10)
        addon.responseheaders(flow)
    assert flow.response.stream is False


async def test_a_cut_stream_is_one_error_turn_with_the_figures_seen(addon: CacheAudit) -> None:
    path, body, _ = SSE_CASES["anthropic"]
    with taddons.context(addon):
        flow = make_flow(path, response=b"", content_type=SSE, headers={"x-session-id": "cut"})
        addon.responseheaders(flow)
        flow.response.stream(body[: len(body) // 2])
        flow.error = tflow.terr("connection closed by peer")
        addon.error(flow)
        addon.error(flow)
    turn, = turns(addon)
    assert turn.verdict.value == "error" and turn.stream is True
    assert (turn.input_tokens, turn.cache_creation_input_tokens, turn.cache_read_input_tokens) == (12, 0, 1538)
    assert turn.error == "connection closed by peer"


def _final_event_at(body: bytes) -> int:
    """Where the last event carrying usage ends in an SSE body (each case's final usage event)."""
    ends = [m.end() for m in re.finditer(rb"\r?\n\r?\n", body)]
    starts = [0, *ends[:-1]]
    return max(end for start, end in zip(starts, ends, strict=True)
               if re.search(rb'"usage(Metadata)?": ?\{', body[start:end]))


def _interrupted_flow(addon: CacheAudit, case: str, upto: int, message: str) -> http.HTTPFlow:
    """A live SSE flow whose stream ends early: the client left, or the upstream cut it, after ``upto`` bytes."""
    path, body, _ = SSE_CASES[case]
    flow = make_flow(path, response=b"", content_type=SSE, headers={"x-session-id": f"s-{case}"})
    flow.response.raw_content = None  # as mitmproxy holds a streamed body that did not end: none at all
    addon.responseheaders(flow)
    flow.response.stream(body[:upto])
    flow.error = tflow.terr(message)
    return flow


def _replayed(flows: list[http.HTTPFlow]) -> list[http.HTTPFlow]:
    """The flows as ``-w`` saved them and ``-nr`` reads them back."""
    buffer = io.BytesIO()
    writer = mitmio.FlowWriter(buffer)
    for flow in flows:
        writer.add(flow)
    buffer.seek(0)
    return list(mitmio.FlowReader(buffer).stream())


@pytest.mark.parametrize("case", SSE_CASES)
async def test_a_client_that_hangs_up_after_the_final_usage_leaves_a_complete_turn(addon: CacheAudit,
                                                                                  case: str) -> None:
    """The OpenAI SDK closes the connection at [DONE], often before the proxy has read the body's end."""
    _, body, expected = SSE_CASES[case]
    with taddons.context(addon):
        flow = _interrupted_flow(addon, case, _final_event_at(body), "Client disconnected.")
        addon.error(flow)
    turn, = turns(addon)
    assert (turn.provider, turn.model, *figures(turn)) == expected
    assert turn.verdict.value == "hit" and turn.error is None


@pytest.mark.parametrize("case", SSE_CASES)
async def test_a_stream_cut_before_its_final_usage_is_an_error_turn(addon: CacheAudit, case: str) -> None:
    _, body, _ = SSE_CASES[case]
    with taddons.context(addon):
        flow = _interrupted_flow(addon, case, _final_event_at(body) - 3, "Client disconnected.")
        addon.error(flow)
    turn, = turns(addon)
    assert turn.verdict.value == "error" and turn.error == "Client disconnected."


@pytest.mark.parametrize("case", SSE_CASES)
@pytest.mark.parametrize("cut", ["before-final", "after-final"])
async def test_a_replay_records_an_interrupted_stream_as_the_live_run_did(addon: CacheAudit, case: str,
                                                                          cut: str) -> None:
    """mitmproxy keeps no body of a stream that did not end, and replays its response before its error."""
    _, body, _ = SSE_CASES[case]
    upto = _final_event_at(body) - (3 if cut == "before-final" else 0)
    with taddons.context(addon):
        live = _interrupted_flow(addon, case, upto, "connection closed by peer")
        addon.error(live)
    replayed, = _replayed([live])
    assert replayed.response.raw_content is None and not replayed.live
    again = CacheAudit()
    with taddons.context(again) as tctx:
        await run(tctx, again, replayed)  # response, then error
    live_turn, = turns(addon)
    turn, = turns(again)
    assert (turn.verdict, turn.error, figures(turn)) == (live_turn.verdict, live_turn.error, figures(live_turn))
    assert turn.verdict.value == ("error" if cut == "before-final" else "hit")


async def test_a_replayed_stream_with_nothing_kept_says_what_the_capture_lacks(addon: CacheAudit, caplog) -> None:
    path, _, _ = SSE_CASES["anthropic"]
    flow = make_flow(path, response=b"", content_type=SSE, live=False)
    flow.response.raw_content = None  # captured without the audit and without store_streamed_bodies
    with taddons.context(addon) as tctx:
        await run(tctx, addon, flow)
    assert verdicts(addon) == ["none"]
    assert "the capture holds neither this streamed response's body nor the audit's reading of it" in caplog.text
    assert "add --set store_streamed_bodies=true" not in caplog.text


@pytest.mark.parametrize("reading", [
    {"version": 2, "final": True, "usage": None},
    {"version": 1, "final": "yes", "usage": None},
    {"version": 1, "final": True, "usage": {"provider": "anthropic", "model": None, "input_tokens": -1}},
    {"version": 1, "final": True, "usage": None, "error": 5},
    "not a dict",
], ids=["other-version", "final-not-bool", "negative-count", "error-not-text", "not-a-dict"])
async def test_a_replay_refuses_a_reading_it_did_not_write(addon: CacheAudit, reading: object) -> None:
    path, _, _ = SSE_CASES["anthropic"]
    flow = make_flow(path, response=b"", content_type=SSE, live=False)
    flow.response.raw_content = None
    flow.metadata["cachepin_read"] = reading
    with taddons.context(addon) as tctx:
        await run(tctx, addon, flow)
    assert verdicts(addon) == ["none"] and turns(addon)[0].input_tokens is None


async def test_a_live_flow_sent_again_drops_the_reading_of_its_earlier_response(addon: CacheAudit) -> None:
    flow = turn_flow(CASES[0], 0, 1538)
    flow.metadata["cachepin_read"] = {"stale": True}
    with taddons.context(addon) as tctx:
        await run(tctx, addon, flow)
    assert "cachepin_read" not in flow.metadata and verdicts(addon) == ["cold"]


# --- the error hook ---

async def test_response_and_error_both_firing_make_one_turn(addon: CacheAudit) -> None:
    flow = turn_flow(CASES[0], 0, 1538)
    flow.error = tflow.terr("client disconnected")
    with taddons.context(addon) as tctx:
        await run(tctx, addon, flow)  # cycles requestheaders … response, then error
    turn, = turns(addon)
    assert turn.verdict.value == "cold" and flow.comment.startswith("cold · ") and "\n" not in flow.comment


async def test_error_without_response_is_an_error_turn(addon: CacheAudit, caplog) -> None:
    caplog.set_level(logging.INFO)
    flow = make_flow(headers={"x-session-id": "s-err"})
    flow.error = tflow.terr("Connection refused")
    with taddons.context(addon) as tctx:
        await run(tctx, addon, flow)
    turn, = turns(addon)
    assert (turn.verdict.value, turn.status, turn.error) == ("error", 0, "Connection refused")
    assert f"cachepin session=s-err turn=1 thread={short_id(turns(addon)[0].thread)} model=claude-sonnet-4-6 " \
           "verdict=error" in caplog.text
    assert "status=0" in caplog.text and addon.ledger.totals.requests == 0


# --- replayed flows ---

@pytest.mark.parametrize("encoding_name", ["", "gzip"])
async def test_replayed_flows_are_parsed_from_content(addon: CacheAudit, encoding_name: str) -> None:
    path, body, expected = SSE_CASES["openai-chat"]
    raw = gzip.compress(body) if encoding_name else body
    flow = make_flow(path, {"model": "gpt-5", "messages": [{"role": "user", "content": "x"}]}, response=raw,
                     content_type=SSE, response_headers={"content-encoding": encoding_name} if encoding_name else {},
                     live=False)
    with taddons.context(addon) as tctx:
        await run(tctx, addon, flow)
    assert flow.response.stream is False  # no tee for replays: there is nothing to stream
    turn, = turns(addon)
    assert (turn.provider, turn.model, *figures(turn)) == expected and turn.stream is True


async def test_a_flow_saved_by_a_live_run_is_recorded_again_on_replay(addon: CacheAudit, tmp_path: Path) -> None:
    """What ``mitmdump -nr flows.mitm -s cache_audit.py`` does: the saved flows carry the live run's metadata."""
    case = CASES[0]
    live = [turn_flow(case, 0, 1538), turn_flow(case, 0, 10)]
    with taddons.context(addon) as tctx:
        await run(tctx, addon, *live)
    buffer = io.BytesIO()
    writer = mitmio.FlowWriter(buffer)
    for flow in live:
        writer.add(flow)
    buffer.seek(0)
    replayed = list(mitmio.FlowReader(buffer).stream())
    for flow in replayed:
        flow.live = False
    again = CacheAudit()
    with taddons.context(again) as tctx:
        await run(tctx, again, *replayed)
    assert verdicts(again) == verdicts(addon) == ["cold", "miss"]
    assert [figures(t) for t in turns(again)] == [figures(t) for t in turns(addon)]


# --- sessions ---

async def test_session_comes_from_inject_metadata(addon: CacheAudit) -> None:
    flow = turn_flow(CASES[0], 0, 5, session="from-header")
    flow.metadata["cachepin"] = {"session_id": "pinned-by-inject", "source": "option", "injected": []}
    with taddons.context(addon) as tctx:
        await run(tctx, addon, flow)
    session, = addon.ledger.sessions
    assert (session.session_id, session.source) == ("pinned-by-inject", "option")


@pytest.mark.parametrize("headers", [{}, {"x-claude-code-session-id": "cc-42"}])
@pytest.mark.parametrize("case", CASES[:3], ids=CASE_IDS[:3])
async def test_without_inject_the_same_session_is_resolved(case: Case, headers: dict) -> None:
    with_inject, alone = CacheAudit(), CacheAudit()
    inject = Inject()
    first = make_flow(case.path, case.request(PROMPT), response=case.response(0, 10), headers=headers)
    second = first.copy()
    with taddons.context(inject, with_inject) as tctx:
        await tctx.cycle(inject, first)
        await tctx.cycle(with_inject, first)
    with taddons.context(alone) as tctx:
        await tctx.cycle(alone, second)
    assert "cachepin" in first.metadata and "cachepin" not in second.metadata
    pinned = first.metadata["cachepin"]
    expected_source = "header:x-claude-code-session-id" if headers else "fingerprint"
    assert [(s.session_id, s.source) for s in with_inject.ledger.sessions] == [
        (pinned["session_id"], expected_source)]
    assert [(s.session_id, s.source) for s in alone.ledger.sessions] == [(pinned["session_id"], expected_source)]


@pytest.mark.parametrize("model", [5, {"name": "x"}, ["claude"], None])
@pytest.mark.parametrize("response_model", ["claude-sonnet-4-6", None])
async def test_a_request_model_that_is_not_a_string_is_ignored(addon: CacheAudit, model: object,
                                                               response_model: str | None) -> None:
    response = CASES[0].response(0, 10)
    response["model"] = response_model
    with taddons.context(addon) as tctx:
        await run(tctx, addon, make_flow(body={**_anthropic_request(PROMPT), "model": model}, response=response))
    turn, = turns(addon)
    assert turn.model == response_model and turn.verdict.value == "cold"


async def test_evicted_sessions_failing_min_hit_are_logged_at_once(addon: CacheAudit, caplog) -> None:
    caplog.set_level(logging.ERROR)
    case = CASES[0]
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_max_sessions=1, cache_min_hit=90)
        await run(tctx, addon, turn_flow(case, 0, 1538, session="old"), turn_flow(case, 10, 1528, session="old"))
        assert caplog.messages == []
        await run(tctx, addon, turn_flow(case, 0, 1538, session="new"))
        assert len(caplog.messages) == 1 and caplog.messages[0].startswith("cachepin audit FAILED: session old: ")
    assert [s.session_id for s in addon.ledger.sessions] == ["new"] and addon.ledger.evicted == 1
    assert addon.ledger.totals.requests == 3 and not addon.ledger.ok


async def test_unidentified_requests_are_each_their_own_session(addon: CacheAudit) -> None:
    """Pooled, unrelated requests would look like one session whose later turns all miss."""
    with taddons.context(addon) as tctx:
        flows = [make_flow(body=b"not json", response=CASES[0].response(0, 5)) for _ in range(2)]
        for flow in flows:
            await run(tctx, addon, flow)
    assert [s.session_id for s in addon.ledger.sessions] == [f"unidentified:{f.id}" for f in flows]
    assert [s.turns[0].verdict for s in addon.ledger.sessions] == ["cold", "cold"]


# --- logs, comments, marks ---

async def test_turn_log_lines_comments_and_marks(addon: CacheAudit, caplog) -> None:
    caplog.set_level(logging.INFO)
    case = CASES[0]
    flows = [turn_flow(case, 0, 1538, session="sess"), turn_flow(case, 1538, 0, session="sess"),
             turn_flow(case, 0, 1700, session="sess")]
    flows[2].comment = "kept from before"
    with taddons.context(addon) as tctx:
        await run(tctx, addon, *flows)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("cachepin session=")]
    thread = short_id(turns(addon)[0].thread)  # the lineage of the case's prompt: one thread, three turns
    assert lines[:2] == [
        f"cachepin session=sess turn=1 thread={thread} model=claude-sonnet-4-6 verdict=cold read=0 creation=1538 "
        "input=12 output=85",
        f"cachepin session=sess turn=2 thread={thread} model=claude-sonnet-4-6 verdict=hit read=1538 creation=0 "
        "input=12 output=85",
    ]
    assert lines[2].startswith(f"cachepin session=sess turn=3 thread={thread} model=claude-sonnet-4-6 verdict=miss "
                               "read=0 creation=1700 input=12 output=85 reason=no_breakpoint (")
    thread_note = f"thread {thread} · session sess (header:x-session-id)"
    assert flows[0].comment == f"cold · read 0 · wrote 1,538 · uncached 12 · turn 1 · {thread_note}"
    assert flows[1].comment == f"hit · read 1,538 · wrote 0 · uncached 12 · turn 2 · {thread_note}"
    assert flows[2].comment.startswith(
        f"kept from before\nmiss · read 0 · wrote 1,700 · uncached 12 · turn 3 · {thread_note} · no_breakpoint: ")
    assert [f.marked for f in flows] == ["", "", MISS_MARK]
    assert turns(addon)[2].miss.reason == "no_breakpoint"


async def test_comment_follows_the_inject_note(addon: CacheAudit) -> None:
    inject = Inject()
    flow = turn_flow(CASES[0], 0, 1538, session="abc")
    with taddons.context(inject, addon) as tctx:
        await tctx.cycle(inject, flow)
        await tctx.cycle(addon, flow)
    assert flow.comment.startswith("cold · read 0 · wrote 1,538 · ")  # the verdict first: mitmweb's column
    assert flow.comment.endswith(" · session abc (header:x-session-id)")  # the session once, the note replaced
    assert "\n" not in flow.comment


@pytest.mark.parametrize("kept", ["", "a person's note", "a person's note\nanother addon's"])
async def test_the_inject_note_alone_is_replaced_by_the_turn(addon: CacheAudit, kept: str) -> None:
    inject = Inject()
    flow = turn_flow(CASES[0], 0, 1538, session="abc")
    flow.comment = kept
    with taddons.context(inject, addon) as tctx:
        await tctx.cycle(inject, flow)
        assert flow.comment.endswith("cachepin: session abc (header:x-session-id)")
        await tctx.cycle(addon, flow)
    *before, turn = flow.comment.split("\n")
    assert before == ([] if not kept else kept.split("\n")) and turn.startswith("cold · ")


async def test_an_error_turn_says_its_status(addon: CacheAudit) -> None:
    flow = make_flow(headers={"x-session-id": "s-err"})
    flow.error = tflow.terr("Connection refused")
    with taddons.context(addon) as tctx:
        await run(tctx, addon, flow)
    assert flow.comment.startswith("error · status 0 · turn 1 · thread ")  # mitmproxy's message: no type
    assert flow.comment.endswith(" · session s-err (header:x-session-id)")


async def test_routing_miss_is_explained(addon: CacheAudit, caplog) -> None:
    caplog.set_level(logging.INFO)
    body = {"model": "claude-sonnet-4-6", "max_tokens": 64,
            "system": [{"type": "text", "text": "policy " * 2000, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": PROMPT}]}
    case = CASES[0]
    with taddons.context(addon) as tctx:
        await run(tctx, addon,
                  make_flow(case.path, body, response=case.response(0, 3500), headers={"x-session-id": "r"}),
                  make_flow(case.path, body, response=case.response(0, 3500), headers={"x-session-id": "r"}))
    miss = turns(addon)[1].miss
    assert miss.reason == "routing" and miss.evidence["prefix_tokens"] > 3000
    assert "reason=routing (" in caplog.text and "policy" not in caplog.text


async def test_without_the_explainer_a_pinned_flow_is_not_parsed(addon: CacheAudit, parsed: list) -> None:
    """cache_explain=false: with the inject addon's session at hand, nothing needs the request body."""
    case = CASES[0]
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_explain=False)
        flows = [make_flow(case.path, response=case.response(0, 3500)) for _ in range(2)]
        for flow in flows:
            flow.metadata["cachepin"] = {"session_id": "pinned", "source": "header:x-session-id", "injected": []}
        await run(tctx, addon, *flows)
    assert parsed == []
    assert [t.verdict for t in turns(addon)] == ["cold", "miss"] and turns(addon)[1].miss is None
    assert addon.ledger.sessions[0].session_id == "pinned"


# --- expectations ---

async def test_warm_failure_is_logged_at_once(addon: CacheAudit, caplog) -> None:
    caplog.set_level(logging.INFO)
    case = CASES[0]
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_expect="warm")
        await run(tctx, addon, turn_flow(case, 0, 1538, session="warm-1"))
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        await run(tctx, addon, turn_flow(case, 0, 1600, session="warm-1"))
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == [f"cachepin audit FAILED: session warm-1 turn 2 (thread {short_id(turns(addon)[0].thread)})"
                          ": expected a cache hit, read 0 (creation 1600, input 12)"]
        await run(tctx, addon, turn_flow(case, 1600, 0, session="warm-1"))
    assert not addon.ledger.ok and len(addon.ledger.failures) == 1


@pytest.mark.parametrize("live, level", [(True, logging.ERROR), (False, logging.WARNING)])
async def test_replayed_warm_failures_are_warnings(addon: CacheAudit, caplog, live: bool, level: int) -> None:
    """mitmdump -nr reads flows during startup, where an ERROR makes it exit 1 instead of done()'s 3."""
    caplog.set_level(logging.INFO)
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_expect="warm")
        await run(tctx, addon, turn_flow(CASES[0], 0, 10, live=live), turn_flow(CASES[0], 0, 10, live=live))
        tctx.master.should_exit.set()
        with pytest.raises(SystemExit) as stopped:
            addon.done()
    failed = [r for r in caplog.records if r.getMessage().startswith("cachepin audit FAILED: session s-1 turn 2")]
    assert [r.levelno for r in failed] == [level] and stopped.value.code == 3


async def test_warm_failure_for_a_provider_without_cache_figures(addon: CacheAudit, caplog) -> None:
    caplog.set_level(logging.ERROR)
    case = CASES[1]
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_expect="warm")
        for _ in range(2):
            await run(tctx, addon, make_flow(case.path, case.request(PROMPT), response=case.no_cache,
                                             headers={"x-session-id": "nofig"}))
    assert caplog.messages == [f"cachepin audit FAILED: session nofig turn 2 (thread {short_id(turns(addon)[0].thread)}"
                               "): expected a cache hit, but the provider reports no cache figures (model gpt-5)"]


@pytest.mark.parametrize("min_hit, second_read, ok", [
    (0, 0, True), (50, 1538, True), (96, 1538, True), (97, 1538, False), (50, 0, False), (100, 0, False),
])
async def test_min_hit_is_judged_at_report_time(addon: CacheAudit, caplog, min_hit: int, second_read: int,
                                                ok: bool) -> None:
    caplog.set_level(logging.INFO)
    case = CASES[0]  # turn 2: read / (12 + creation + read)
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_min_hit=min_hit)
        await run(tctx, addon, turn_flow(case, 0, 1538), turn_flow(case, second_read, 1538 - second_read + 40))
        assert addon.ledger.ok  # not judged per turn
        addon.report()
    assert addon.ledger.ok is ok
    errors = [m for m in caplog.messages if m.startswith("cachepin audit FAILED")]
    assert len(errors) == (0 if ok else 1)
    if not ok:
        assert "session s-1: " in errors[0] and f"min_hit {min_hit}%" in errors[0]


# --- options ---

@pytest.mark.parametrize("option, value, message", [
    ("cache_min_hit", 101, "cache_min_hit must be 0-100"),
    ("cache_min_hit", -1, "cache_min_hit must be 0-100"),
    ("cache_max_sessions", -1, "cache_max_sessions must be >= 0"),
    ("cache_max_turns", -1, "cache_max_turns must be >= 0"),
    ("cache_report_interval", -5, "cache_report_interval must be >= 0 seconds"),
    ("cache_metrics", "nowhere", "cache_metrics must be HOST:PORT"),
    ("cache_ttl_scale", "abc", "cache_ttl_scale must be a number > 0"),
    ("cache_ttl_scale", "0", "cache_ttl_scale must be a number > 0"),
    ("cache_ttl_scale", "nan", "cache_ttl_scale must be a number > 0"),
    ("cache_minimums", ["x"], "cache_minimums: expected MODEL=TOKENS, not 'x'"),
    ("cache_minimums", ["gpt-5=many"], "cache_minimums: expected MODEL=TOKENS"),
    ("cache_minimums", ["=10"], "cache_minimums: expected MODEL=TOKENS"),
    ("cache_expect", "cold", "cache_expect must be 'off' or 'warm', not 'cold'"),
])
def test_invalid_options_are_refused(addon: CacheAudit, option: str, value: object, message: str) -> None:
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match=message):
            tctx.configure(addon, **{option: value})


async def test_a_session_holds_cache_max_turns_turns_and_sums_them_all(addon: CacheAudit, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_max_turns=3, cache_report=str(report))
        await run(tctx, addon, *(turn_flow(CASES[0], 0 if n == 0 else 1538, 0) for n in range(5)))
        addon.done()
    (session,) = json.loads(report.read_text())["sessions"]
    assert [turn["index"] for turn in session["turns"]] == [3, 4, 5]
    assert (session["requests"], session["folded_turns"], session["cache_read_input_tokens"]) == (5, 2, 4 * 1538)


@pytest.mark.parametrize("content", ["{not json", '["a"]', '{"gpt-5": {"input": -1}}', None])
def test_bad_price_files_are_refused(addon: CacheAudit, tmp_path: Path, content: str | None) -> None:
    prices = tmp_path / "prices.json"
    if content is not None:
        prices.write_text(content)
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match=r"cache_prices: .*prices\.json"):
            tctx.configure(addon, cache_prices=str(prices))


@pytest.mark.parametrize("option", ["cache_report", "cache_events", "cache_junit"])
def test_report_paths_in_missing_folders_are_refused(addon: CacheAudit, tmp_path: Path, option: str) -> None:
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match=f"{option}: cannot write"):
            tctx.configure(addon, **{option: str(tmp_path / "missing" / "out.json")})


async def test_custom_prices_price_turns(addon: CacheAudit, tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"claude-sonnet-4-6": {"input": 1.0, "output": 2.0, "cache_read": 0.5,
                                                        "cache_write_5m": 4.0, "cache_write_1h": 8.0}}))
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_prices=str(prices))
        await run(tctx, addon, turn_flow(CASES[0], 1000, 1000))
    cost = addon.ledger.totals.cost
    assert cost is not None  # 12*1 + 1000*0.5 + 1000*4 + 85*2 = 4682 per million
    assert round(cost.billed * 1e6, 6) == 4682.0


async def test_ttl_scale_and_minimums_reach_the_explainer(addon: CacheAudit) -> None:
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_ttl_scale="0.5", cache_minimums=["claude-sonnet-4-6=9999"])
        await run(tctx, addon, turn_flow(CASES[0], 0, 50), turn_flow(CASES[0], 0, 50))
    assert addon.explainer._ttl_scale == 0.5 and addon.explainer._minimums == {"claude-sonnet-4-6": 9999}


async def test_explainer_is_rebuilt_when_its_options_change_after_a_reload(addon: CacheAudit) -> None:
    with taddons.context(addon) as tctx:
        tctx.master.addons.remove(addon)
        reloaded = CacheAudit()
        tctx.master.addons.add(reloaded)
        tctx.master.addons.invoke_addon_sync(reloaded, hooks.ConfigureHook(set(tctx.options.keys())))
        kept = reloaded.explainer
        tctx.configure(reloaded, cache_ttl_scale="2")
    assert reloaded.explainer is not kept and reloaded.explainer._ttl_scale == 2.0


# --- commands, reports, privacy ---

async def test_reset_forgets_sessions(addon: CacheAudit) -> None:
    case = CASES[0]
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_expect="warm")
        await run(tctx, addon, turn_flow(case, 0, 10), turn_flow(case, 0, 10))
        assert not addon.ledger.ok
        tctx.command(addon.reset)
        assert addon.ledger.sessions == [] and addon.ledger.ok and addon.ledger.totals.requests == 0
        await run(tctx, addon, turn_flow(case, 0, 10))
    assert verdicts(addon) == ["cold"]  # a first turn again, not a miss
    assert addon.ledger.expect.value == "warm"  # the options stay


async def test_reports_events_and_junit_hold_figures_but_no_secrets(addon: CacheAudit, tmp_path: Path,
                                                                    caplog) -> None:
    caplog.set_level(logging.DEBUG)
    paths = {name: tmp_path / f"out.{name}" for name in ("report", "events", "junit")}
    case = CASES[0]
    echo = {"type": "error", "error": {"type": "invalid_request_error", "message": f"bad prompt: {PROMPT}"}}
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_report=str(paths["report"]), cache_events=str(paths["events"]),
                       cache_junit=str(paths["junit"]), cache_expect="warm")
        await run(tctx, addon, turn_flow(case, 0, 1538, session="a"), turn_flow(case, 1538, 0, session="a"),
                  turn_flow(case, 0, 1538, session="b"), turn_flow(case, 0, 1538, session="b"),
                  make_flow(case.path, case.request(PROMPT), response=echo, status=400, headers={"x-session-id": "b"}))
        assert tctx.command(addon.report) == str(paths["report"])
    report = json.loads(paths["report"].read_text())
    assert report["ok"] is False and report["expectations"] == {"expect": "warm", "min_hit": 0}
    assert [(s["session_id"], [t["verdict"] for t in s["turns"]]) for s in report["sessions"]] == [
        ("a", ["cold", "hit"]), ("b", ["cold", "miss", "error"])]
    first = report["sessions"][0]["turns"][0]
    assert {k: first[k] for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                                  "output_tokens", "model", "provider")} == {
        "input_tokens": 12, "cache_creation_input_tokens": 1538, "cache_read_input_tokens": 0, "output_tokens": 85,
        "model": "claude-sonnet-4-6", "provider": "anthropic"}
    assert report["totals"]["requests"] == 4 and report["totals"]["cache_read_input_tokens"] == 1538
    events = paths["events"].read_text().splitlines()
    assert [(e["session_id"], e["turn"]["index"], e["turn"]["verdict"]) for e in map(json.loads, events)] == [
        ("a", 1, "cold"), ("a", 2, "hit"), ("b", 1, "cold"), ("b", 2, "miss"), ("b", 3, "error")]
    suite = ET.parse(paths["junit"]).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    assert [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None] == ["b"]
    everything = caplog.text + "".join(p.read_text() for p in paths.values())
    for secret in (SECRET_KEY, PROMPT, REPLY, "Be brief"):
        assert secret not in everything


# --- the content view ---

@pytest.fixture
def loaded(addon: CacheAudit) -> Iterator[CacheAudit]:
    """The addon loaded, which registers its content view."""
    with taddons.context(addon):
        yield addon


def test_usage_view_renders_figures_and_stream_text(loaded: CacheAudit) -> None:
    path, body, _ = SSE_CASES["anthropic"]
    flow = make_flow(path, response=body, content_type=SSE, live=False)
    result = contentviews.prettify_message(flow.response, flow, view_name="cachepin usage")
    assert result.view_name == "cachepin usage"
    assert result.text.splitlines() == [
        "dialect: anthropic", "provider: anthropic", "model: claude-sonnet-4-6", "input_tokens: 12",
        "cache_creation_input_tokens: 0", "cache_read_input_tokens: 1538", "output_tokens: 85", "text: |",
        f"  {REPLY} more words "]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_usage_view_is_chosen_for_llm_responses_only(loaded: CacheAudit, case: Case) -> None:
    flow = turn_flow(case, 1538, 0)
    shown = contentviews.prettify_message(flow.response, flow)
    assert shown.view_name == "cachepin usage"
    read, = [line for line in shown.text.splitlines() if line.startswith("cache_read_input_tokens:")]
    assert read == "cache_read_input_tokens: 1538"
    assert contentviews.prettify_message(flow.request, flow).view_name != "cachepin usage"
    other = make_flow("/v1/embeddings", response={"data": []})
    assert contentviews.prettify_message(other.response, other).view_name != "cachepin usage"


def test_usage_view_says_when_usage_is_missing(loaded: CacheAudit) -> None:
    flow = make_flow(response=b'{"type": "message"}')
    text = contentviews.prettify_message(flow.response, flow, view_name="cachepin usage").text
    assert text == "dialect: anthropic\nusage: not reported\n"


async def test_usage_view_shows_the_turn_next_to_the_figures(addon: CacheAudit) -> None:
    case = CASES[0]
    flows = [turn_flow(case, 0, 1538), turn_flow(case, 0, 1600)]
    with taddons.context(addon) as tctx:
        await run(tctx, addon, *flows)
        lines = contentviews.prettify_message(flows[1].response, flows[1]).text.splitlines()
    thread = turns(addon)[1].thread
    assert lines[lines.index("verdict: miss"):lines.index("verdict: miss") + 4] == [
        "verdict: miss", "turn: 2", f"thread: {thread}", "session_id: s-1"]
    assert any(line.startswith("reason: no_breakpoint (") for line in lines)
    assert "cost_usd:" in lines and any(line.startswith("  billed: ") for line in lines)


# --- lifecycle: hot reload and exit status ---

async def test_hot_reload_keeps_the_ledger_and_does_not_exit(addon: CacheAudit, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    report = tmp_path / "report.json"
    case = CASES[0]
    with taddons.context(addon) as tctx:
        tctx.master.addons.invoke_addon_sync(addon, hooks.ConfigureHook(set(tctx.options.keys())))  # as at startup
        tctx.configure(addon, cache_expect="warm", cache_report=str(report))
        await run(tctx, addon, turn_flow(case, 0, 10), turn_flow(case, 0, 10))
        assert not addon.ledger.ok
        ledger = addon.ledger
        tctx.master.addons.remove(addon)  # what a script reload does: done() on the old instance …
        assert not tctx.master.should_exit.is_set()
        reloaded = CacheAudit()
        tctx.master.addons.add(reloaded)  # … then load(), and configure() with every option
        tctx.master.addons.invoke_addon_sync(reloaded, hooks.ConfigureHook(set(tctx.options.keys())))
        assert reloaded.ledger is ledger
        await run(tctx, reloaded, turn_flow(case, 0, 10), turn_flow(case, 10, 0))
    assert verdicts(reloaded) == ["cold", "miss", "miss", "hit"]
    assert turns(reloaded)[2].miss.reason == "no_breakpoint"  # compared with the turn before the reload
    assert json.loads(report.read_text())["ok"] is False  # done() still wrote the report
    assert "exiting with status" not in caplog.text


@pytest.mark.parametrize("second_read, shutting_down, exits", [
    (0, True, True), (10, True, False), (0, False, False),
])
async def test_exit_status_3_only_at_shutdown_with_failures(addon: CacheAudit, second_read: int,
                                                            shutting_down: bool, exits: bool) -> None:
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_expect="warm")
        await run(tctx, addon, turn_flow(CASES[0], 0, 10), turn_flow(CASES[0], second_read, 0))
        if shutting_down:
            tctx.master.should_exit.set()
        if exits:
            with pytest.raises(SystemExit) as stopped:
                addon.done()
            assert stopped.value.code == 3
        else:
            addon.done()


async def test_min_hit_failure_exits_3_at_shutdown(addon: CacheAudit) -> None:
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_min_hit=80)
        await run(tctx, addon, turn_flow(CASES[0], 0, 1000), turn_flow(CASES[0], 100, 900))
        tctx.master.should_exit.set()
        with pytest.raises(SystemExit) as stopped:
            addon.done()
    assert stopped.value.code == 3


@pytest.mark.parametrize(("broken", "kept"), [("cache_report", "cache_junit"), ("cache_html", "cache_report"),
                                               ("cache_junit", "cache_html")])
async def test_an_unwritable_report_at_shutdown_is_logged_the_others_written_and_exits_4(
        addon: CacheAudit, tmp_path: Path, caplog, broken: str, kept: str) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, **{broken: str(folder / "file"), kept: str(tmp_path / "file")})
        await run(tctx, addon, turn_flow(CASES[0], 0, 1538))
        folder.rmdir()
        tctx.master.should_exit.set()
        with pytest.raises(SystemExit) as stopped:
            addon.done()
    assert stopped.value.code == 4
    assert f"cachepin audit: cannot write {broken} {folder / 'file'}: [Errno 2]" in caplog.text
    assert "s-1" in (tmp_path / "file").read_text()


def test_the_script_exposes_one_named_addon() -> None:
    assert [type(a) for a in cache_audit.addons] == [CacheAudit] and cache_audit.addons[0].name == "cachepin_audit"
