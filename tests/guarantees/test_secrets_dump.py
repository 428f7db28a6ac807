"""Guarantee 5, secrets, in the lines people read as traffic passes.

cachepin's log line and mitmweb comment name a provider's error by the type the provider put in a structured
field, never by its message, which may quote the request's key (``{"error": "AIza…: API key not valid"}``).
mitmdump's own flow dump is not cachepin's: it shows the request URL, query string included, from
``flow_detail=1`` up; ``flow_detail=0`` or a ``dumper_filter`` keeps a ``?key=`` out of it (docs/guarantees.md).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx2
import pytest
from cache_audit import CacheAudit
from flows import harness, run_hook
from logs import captured_logs, connections_closed, level_log_addon
from mitmproxy import http
from mitmproxy.test import tflow
from scripted_upstream import RawRequest, ScriptedUpstream, Send

from cachepin_tools.harness.processes import ADDONS, BIN, Process, wait_until
from cachepin_tools.wire import framing, openai
from cachepin_tools.wire.http1 import response_bytes
from cachepin_tools.wire.tokens import Tokens

KEY = "AIzaSyPLANTED-dump-0123456789abcdefghij"  # shaped like an error type: only its place can keep it out
JSON = {"content-type": "application/json"}
SSE = {"content-type": "text/event-stream"}
REQUEST = json.dumps({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}).encode()
GEMINI_PATH = "/v1beta/models/gemini-2.5-pro:generateContent"


# -- the log line and the mitmweb comment, in process ------------------------------------------------


@pytest.mark.parametrize("path, headers, body, kind", [
    pytest.param("/v1/chat/completions", JSON, {"error": f"{KEY}: API key not valid. Please pass a valid API key."},
                 "provider_error", id="plain-string"),
    pytest.param("/v1/chat/completions", JSON, {"code": "Client specified an invalid argument",
                                                "error": f"Incorrect API key provided: {KEY}"},
                 "provider_error", id="xai"),
    pytest.param("/v1/chat/completions", JSON, {"error": {"message": f"{KEY}: refused"}},
                 "provider_error", id="message-only"),
    pytest.param("/v1/chat/completions", JSON, {"error": {"message": f"{KEY}: refused", "type": "invalid_request_error",
                                                          "code": "invalid_api_key"}},
                 "invalid_request_error", id="openai"),
    pytest.param(GEMINI_PATH, JSON, {"error": {"code": 400, "message": f"{KEY}: API key not valid",
                                               "status": "INVALID_ARGUMENT"}},
                 "INVALID_ARGUMENT", id="gemini"),
    pytest.param("/v1/responses", SSE, {"type": "error", "code": None, "message": f"{KEY}: refused"},
                 "provider_error", id="responses-stream"),
])
async def test_an_error_is_named_by_its_structured_type_only(path: str, headers: dict[str, str], body: dict,
                                                            kind: str) -> None:
    audit = CacheAudit()
    flow = tflow.tflow(req=http.Request.make("POST", f"https://h{path}?key={KEY}", REQUEST, JSON))
    with harness(audit), captured_logs() as records:
        run_hook("request", flow, audit)
        flow.response = http.Response.make(200 if headers is SSE else 400, b"", headers)
        audit.responseheaders(flow)
        if callable(flow.response.stream):
            flow.response.stream(framing.frame(body, "error"))
            flow.response.stream(b"")
        else:
            flow.response.raw_content = json.dumps(body).encode()
        audit.response(flow)
    (turn,) = audit.ledger.sessions[0].turns
    assert turn.verdict.value == "error" and turn.error == kind, "the ledger keeps the type, nothing of the message"
    assert flow.comment.startswith(f"error · status {flow.response.status_code} {kind} · turn 1 · ")
    lines = [flow.comment, *(record.getMessage() for record in records)]
    assert not [line for line in lines if KEY in line]


# -- mitmdump's own flow dump, end to end ------------------------------------------------------------

LISTENING = re.compile(r"listening at (?:http://)?(\S+?):(\d+)\.?\s*$")


def _gateway(request: RawRequest) -> list[Send]:
    """Refuses a key in the query string the way providers and gateways do: by quoting it."""
    if GEMINI_PATH in request.target:
        body: dict = {"error": {"code": 400, "message": f"{KEY}: API key not valid", "status": "INVALID_ARGUMENT"}}
    elif "?key=" in request.target:
        body = {"error": f"{KEY}: API key not valid. Please pass a valid API key."}
    else:
        body = openai.completion(openai.chat_usage(Tokens(12, read=4096, output=5)), "Hi.", "gpt-5")
    status = 400 if "error" in body else 200
    return [Send(response_bytes(status, list(JSON.items()), json.dumps(body).encode()))]


@pytest.mark.e2e
@pytest.mark.parametrize("options, shown", [
    pytest.param({"flow_detail": 0}, False, id="flow_detail=0"),
    pytest.param({"flow_detail": 1, "dumper_filter": r"!~u \?"}, False, id="dumper_filter"),
    pytest.param({"flow_detail": 1}, True, id="flow_detail=1"),
    pytest.param({"flow_detail": 1, "view_filter": r"!~u \?"}, True, id="view_filter-is-not-mitmdumps"),
    pytest.param({"flow_detail": 2}, True, id="flow_detail=2"),
    pytest.param({"flow_detail": 3}, True, id="flow_detail=3"),
    pytest.param({"flow_detail": 4}, True, id="flow_detail=4"),
])
def test_a_query_key_stays_out_of_cachepins_lines_and_out_of_the_dump_as_documented(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, object], shown: bool) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # a wide terminal: flow_detail=1 cuts the URL to the terminal's width only
    script, levels = level_log_addon(tmp_path)
    files = {"events": tmp_path / "events.jsonl", "report": tmp_path / "report.json"}
    settings = {"confdir": tmp_path / "confdir", "termlog_verbosity": "debug", "cache_events": files["events"],
                "cache_report": files["report"], **options}
    with ScriptedUpstream(_gateway) as upstream:
        upstream_url = upstream.url
        argv = [str(BIN / "mitmdump"), "--mode", f"reverse:{upstream_url}", "-p", "0", "--listen-host", "127.0.0.1",
                *(arg for name, value in settings.items() for arg in ("--set", f"{name}={value}")),
                "-s", str(ADDONS / "inject.py"), "-s", str(ADDONS / "cache_audit.py"), "-s", str(script)]
        with Process(argv, LISTENING) as proxy:
            for path in (f"{GEMINI_PATH}?key={KEY}", f"/v1/chat/completions?key={KEY}", "/v1/chat/completions"):
                httpx2.post(f"http://127.0.0.1:{proxy.match.group(2)}{path}", content=REQUEST, headers=JSON,
                            trust_env=False)
            assert wait_until(lambda: proxy.output.count("cachepin session=") == 3
                              and connections_closed(proxy.output))
    turns = [re.findall(r" (?:verdict|error)=(\S+)", line) for line in proxy.lines if "cachepin session=" in line]
    assert turns == [["error", "INVALID_ARGUMENT"], ["error", "provider_error"], ["hit"]]
    logged = levels.read_text()
    assert "DEBUG" in logged and "cachepin session=" in logged
    for where, text in {"any log record": logged, **{name: path.read_text() for name, path in files.items()}}.items():
        assert KEY not in text, f"the key reached {where}"
    assert (KEY in proxy.output) is shown, "mitmproxy's flow dump, and nothing else, prints the URL"
    assert (f"{upstream_url}/v1/chat/completions" in proxy.output) is (options["flow_detail"] != 0), \
        "a dumper_filter leaves the other flows in the dump"
