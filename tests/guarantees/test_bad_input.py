"""Guarantee 2, bad input never breaks the proxy: one real mitmdump with both addons takes every kind of
malformed request and response in turn. Each flow passes through byte for byte, costs at most one clear
WARNING line, and no "Addon error", traceback or ERROR appears; every LLM flow is one turn in the report.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import brotli
import pytest
from cache_audit import CacheAudit
from case_proxy import CaseProxy, case_proxy
from codings import zstd
from flows import drive, harness, make_request, make_response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inject import Inject
from logs import captured_logs, connections_closed, problems
from mitmproxy.test import tflow
from raw_client import exchange
from scripted_upstream import Close, Send

from cachepin.views.junit import junit_xml
from cachepin.views.report import report_json
from cachepin.views.table import summary_table
from cachepin_tools.harness.processes import wait_until
from cachepin_tools.wire.http1 import chunk, chunked_head, response_bytes

JSON = [("content-type", "application/json")]
SSE = [("content-type", "text/event-stream")]
USAGE = {"input_tokens": 3, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100, "output_tokens": 2}
OK_BODY = json.dumps({"type": "message", "model": "claude-sonnet-4-6", "usage": USAGE}).encode()
REQUEST = {"model": "claude-sonnet-4-6", "system": "Be brief.", "messages": [{"role": "user", "content": "hi"}]}
PLAIN_REQUEST = json.dumps(REQUEST).encode()
BIG = 50 * 1024 * 1024


def streamed(headers: list[tuple[str, str]], body: bytes, pieces: int = 5) -> bytes:
    step = max(1, len(body) // pieces)
    return chunked_head(200, headers) + b"".join(chunk(body[i:i + step]) for i in range(0, len(body), step)) \
        + chunk(b"")


def sse(*lines: bytes) -> bytes:
    return b"".join(line + b"\n\n" for line in lines)


START = b'event: message_start\ndata: ' + json.dumps(
    {"type": "message_start", "message": {"model": "claude-sonnet-4-6", "usage": USAGE}}).encode()
DELTA = b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":7}}'


@dataclass(frozen=True)
class Case:
    answer: bytes  # what the upstream sends back
    warns: bool  # a WARNING is expected (else none may appear)
    body: bytes = json.dumps(REQUEST).encode()  # what the client sends
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
    pinned: bool = True  # the request carries something that identifies the conversation


def _big_response() -> bytes:
    return json.dumps({"type": "message", "model": "claude-sonnet-4-6", "pad": "x" * BIG, "usage": USAGE}).encode()


def _huge_line_sse() -> bytes:
    return sse(START, b'data: {"type":"content_block_delta","_tokens":"' + b"y" * (9 * 1024 * 1024) + b'"}', DELTA)


CASES: dict[str, Case] = {
    # -- response bodies --
    "json-malformed": Case(response_bytes(200, JSON, b'{"usage": {"input_tokens": 3,'), warns=True),
    "json-array": Case(response_bytes(200, JSON, b"[1, {\"usage\": null}, \"x\"]"), warns=False),
    "json-string": Case(response_bytes(200, JSON, b'"just a string"'), warns=False),
    "json-null": Case(response_bytes(200, JSON, b"null"), warns=False),
    "json-usage-not-object": Case(response_bytes(200, JSON, b'{"usage": [1, 2]}'), warns=True),
    "json-usage-wrong-types": Case(response_bytes(200, JSON, json.dumps({"usage": {
        "input_tokens": "12", "cache_read_input_tokens": -5, "output_tokens": True,
        "cache_creation_input_tokens": 1.5, "cache_creation": "x"}}).encode()), warns=True),
    "json-usage-huge": Case(response_bytes(200, JSON, b'{"usage": {"input_tokens": 1e400, "output_tokens": -1e9}}'),
                            warns=True),
    "json-lying-gzip": Case(response_bytes(200, [*JSON, ("content-encoding", "gzip")], OK_BODY), warns=False),
    "json-lying-br": Case(response_bytes(200, [*JSON, ("content-encoding", "br")], gzip.compress(OK_BODY)),
                          warns=True),
    "json-unknown-encoding": Case(response_bytes(200, [*JSON, ("content-encoding", "snappy")], OK_BODY), warns=False),
    "json-truncated-zstd": Case(response_bytes(200, [*JSON, ("content-encoding", "zstd")],
                                               zstd.compress(OK_BODY)[:-6]), warns=True),
    "json-invalid-utf8": Case(response_bytes(200, JSON, b'{"usage": {"input_tokens": 1}, "t": "\xff\xfe\xc3("}'),
                              warns=True),
    "json-empty": Case(response_bytes(200, JSON, b""), warns=False),
    "json-50mb": Case(response_bytes(200, JSON, _big_response()), warns=False),
    "sse-lying-gzip": Case(streamed([*SSE, ("content-encoding", "gzip")], sse(START, DELTA)), warns=True),
    "sse-unknown-encoding": Case(streamed([*SSE, ("content-encoding", "lzma")], sse(START, DELTA)), warns=True),
    "sse-truncated-br": Case(streamed([*SSE, ("content-encoding", "br")], brotli.compress(sse(START, DELTA))[:-4]),
                             warns=True),
    "sse-binary-garbage": Case(streamed(SSE, sse(START, b"\x00\xff\xfe garbage \x80\x81", b'data: {"_tokens": \xff}',
                                                 b"\xc3(" * 300, DELTA)), warns=True),
    "sse-events-without-data": Case(streamed(SSE, sse(b"event: message_start", b"event: ping", b"id: 7",
                                                      b": comment", b"retry: 10", b"data:", b"data: ")), warns=False),
    "sse-done-in-odd-places": Case(streamed(SSE, sse(b"data: [DONE]", START, b"data: [DONE]", DELTA,
                                                     b"data: [DONE]", b"data: [DONE]")), warns=False),
    "sse-usage-wrong-types": Case(streamed(SSE, sse(START.replace(b'"input_tokens": 3', b'"input_tokens": "3"'),
                                                    b'data: {"type":"message_delta","usage":{"output_tokens":-4}}')),
                                  warns=True),
    "sse-huge-line": Case(streamed(SSE, _huge_line_sse(), pieces=40), warns=True),
    # -- request bodies --
    "request-malformed-json": Case(response_bytes(400, JSON, b'{"type":"error","error":{"type":"invalid_request_error"'
                                                             b',"message":"bad json"}}'),
                                   warns=False, body=b'{"model": "claude-sonnet-4-6", "messages": [', pinned=False),
    "request-not-object": Case(response_bytes(200, JSON, OK_BODY), warns=False, body=b'[{"role": "user"}]',
                               pinned=False),
    "request-invalid-utf8": Case(response_bytes(200, JSON, OK_BODY), warns=False,
                                 body=b'{"model": "m", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
                                 pinned=False),
    "request-zstd": Case(response_bytes(200, JSON, OK_BODY), warns=False, body=zstd.compress(PLAIN_REQUEST),
                         headers=(("content-type", "application/json"), ("content-encoding", "zstd"))),
    "request-gzip": Case(response_bytes(200, JSON, OK_BODY), warns=False, body=gzip.compress(PLAIN_REQUEST),
                         headers=(("content-type", "application/json"), ("content-encoding", "gzip"))),
    "request-br": Case(response_bytes(200, JSON, OK_BODY), warns=False, body=brotli.compress(PLAIN_REQUEST),
                       headers=(("content-type", "application/json"), ("content-encoding", "br"))),
    "request-lying-gzip": Case(response_bytes(200, JSON, OK_BODY), warns=False, body=json.dumps(REQUEST).encode(),
                               headers=(("content-type", "application/json"), ("content-encoding", "gzip"))),
    "request-model-not-a-string": Case(response_bytes(200, JSON, json.dumps({"usage": USAGE}).encode()), warns=False,
                                       body=json.dumps({**REQUEST, "model": {"name": ["x"]}}).encode()),
    "request-model-a-number": Case(response_bytes(200, JSON, json.dumps({"usage": USAGE}).encode()), warns=False,
                                   body=json.dumps({**REQUEST, "model": 7}).encode()),
    "request-odd-shapes": Case(response_bytes(200, JSON, OK_BODY), warns=False, body=json.dumps({
        "model": 7, "system": {"text": 5, "cache_control": "x"}, "cache_control": [1],
        "messages": [{"role": 1, "content": {"x": None}}, 5, "s", {"role": "user", "content": [None, 3, {"type": 1}]}],
    }).encode()),
    "request-50mb": Case(response_bytes(200, JSON, OK_BODY), warns=False, body=json.dumps(
        {**REQUEST, "messages": [{"role": "user", "content": "z" * BIG}]}).encode()),
}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CaseProxy]:
    with case_proxy(tmp_path_factory.mktemp("bad_input"), lambda case: [Send(CASES[case].answer), Close()],
                    keep_host_header=True) as proxy:
        yield proxy
    output = proxy.mitmdump.output
    assert "Traceback" not in output and "Addon error" not in output, output[-3000:]


@pytest.mark.e2e
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_passes_through_with_at_most_one_warning(proxy: CaseProxy, name: str) -> None:
    case = CASES[name]
    since = len(proxy.log.read_text(errors="replace"))
    sent = [("Host", "api.example.com"), *case.headers, ("content-length", str(len(case.body))),
            ("connection", "close")]
    got = exchange(proxy.mitmdump.port, "POST", f"/v1/messages?case={name}", sent, case.body, timeout=60)

    received = proxy.upstream.requests[-1]
    assert received.body == case.body, "the upstream must get the body exactly as the client sent it"
    assert [h for h in received.headers if h[0].lower() not in ("x-session-id", "x-session-affinity")] == sent
    assert (received.header("x-session-id") is not None) == case.pinned
    head, _, _ = case.answer.partition(b"\r\n\r\n")
    assert got.status == int(head.split()[1])
    expected_body = case.answer.partition(b"\r\n\r\n")[2]
    if got.header("transfer-encoding"):
        expected_body = _dechunk(expected_body)
    assert got.body == expected_body, "the client must get the body exactly as the upstream sent it"

    # The turn's line comes once its request is read (by a reader process: moments after the response), and
    # after the flow's warnings.
    assert wait_until(lambda: any("cachepin session=" in line for line in proxy.new_lines(since)), timeout=30)
    lines = proxy.new_lines(since)
    problems = [line for line in lines if line.split(" ", 1)[0] in ("WARNING", "ERROR", "CRITICAL")]
    assert len(problems) <= 1, problems
    assert all(line.startswith("WARNING") and "cachepin" in line for line in problems), problems
    assert bool(problems) == case.warns, problems
    assert sum("cachepin session=" in line for line in lines) == 1, "one turn logged for the flow"


def _dechunk(raw: bytes) -> bytes:
    out = bytearray()
    while True:
        size_line, _, raw = raw.partition(b"\r\n")
        size = int(size_line, 16)
        if not size:
            return bytes(out)
        out += raw[:size]
        raw = raw[size + 2:]


@pytest.mark.e2e
def test_the_ledger_has_every_bad_flow_once(proxy: CaseProxy) -> None:
    """Runs after the cases above (same module proxy): the report holds one turn per LLM request so far."""
    exchange(proxy.mitmdump.port, "POST", "/v1/messages?case=json-null", [("Host", "h"), ("connection", "close")],
             json.dumps(REQUEST).encode())
    requests = len(proxy.upstream.requests)
    report_path = exchange(proxy.mitmdump.port, "GET", "/v1/models?case=json-null", [("Host", "h")])  # not a turn
    assert report_path.status == 200
    assert wait_until(lambda: connections_closed(proxy.mitmdump.output))
    proxy.mitmdump.stop()
    report = json.loads(proxy.report.read_text())
    flow_ids = [turn["flow_id"] for session in report["sessions"] for turn in session["turns"]]
    assert len(flow_ids) == len(set(flow_ids)) == requests
    assert report["totals"]["requests"] == sum(
        1 for session in report["sessions"] for turn in session["turns"] if turn["verdict"] != "error")


# -- in process: any request shape with any usage shape, through both addons ------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=10,
)
_keys = st.sampled_from(["model", "system", "messages", "input", "instructions", "contents", "systemInstruction",
                         "cache_control", "tools", "metadata", "prompt_cache_key", "prompt_cache_retention", "stream"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=st.dictionaries(_keys, _json | st.lists(st.dictionaries(
           st.sampled_from(["role", "content", "parts", "cache_control", "type", "text"]), _json), max_size=3)),
       usage=st.dictionaries(st.sampled_from(["input_tokens", "cache_read_input_tokens", "output_tokens",
                                              "cache_creation_input_tokens", "prompt_tokens", "cached_tokens",
                                              "prompt_tokens_details", "cache_creation"]), _json),
       model=_json, path=st.sampled_from(["/v1/messages", "/v1/chat/completions", "/v1/responses",
                                          "/v1beta/models/g:generateContent", "/model/m/converse"]),
       turns=st.integers(1, 3))
def test_any_request_and_usage_shape_is_recorded_without_an_exception(
        request: dict, usage: dict, model: object, path: str, turns: int) -> None:
    inject, audit = Inject(), CacheAudit()
    body = json.dumps(request).encode()
    answer = json.dumps({"model": model, "usage": usage, "usageMetadata": usage}).encode()
    with harness(inject, audit), captured_logs() as records:
        for _ in range(turns):  # later turns exercise the miss explainer against the earlier one
            flow = tflow.tflow(req=make_request("POST", path, [("content-type", "application/json")], body))
            assert drive(inject, audit, flow, make_response(200, [("content-type", "application/json")]),
                         [answer]) is None
            assert flow.request.raw_content == body and flow.response.raw_content == answer
            # a bad request and a bad response are two inputs: one line each at most, one per addon
            warned = [r.name for r in records if r.levelno >= logging.WARNING]
            assert len(warned) == len(set(warned)) and all(r.levelno == logging.WARNING for r in records
                                                           if r.levelno >= logging.WARNING), problems(records)
            records.clear()
        report = json.loads("".join(report_json(audit.ledger)))  # renders and serialises
        summary_table(audit.ledger)
        "".join(junit_xml(audit.ledger))
    assert sum(len(s["turns"]) for s in report["sessions"]) == turns
