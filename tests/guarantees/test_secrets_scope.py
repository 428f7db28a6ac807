"""Guarantee 5, scope and secrets.

Session headers go only on in-scope LLM calls: never on other hosts (regular and HTTPS proxy modes), tunnels
mitmproxy does not open, non-LLM paths, excluded hosts or replays. Client session ids that are not 1-256
printable ASCII characters without spaces are refused. No API key and no prompt or response text reaches
any log line (at debug verbosity), event line, report or JUnit file. Report files are replaced atomically
and event lines appended whole, so a crash at any moment leaves parsable files.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx2
import openai
import pytest
from flows import harness, make_request, run_hook
from inject import Inject
from llm_upstream import FakeUpstream
from logs import captured_logs, connections_closed, level_log_addon
from mitmproxy import exceptions, http
from mitmproxy.test import tflow
from pki import TestPKI, client_context
from raw_client import exchange
from scripted_upstream import RawRequest, ScriptedUpstream, Send

from cachepin.views import files as reports
from cachepin_tools.harness.processes import Mitmdump, wait_until
from cachepin_tools.wire.http1 import response_bytes

BODY = json.dumps({"model": "claude-sonnet-4-6", "system": "Be brief.",
                   "messages": [{"role": "user", "content": "hi"}]}).encode()
SESSION_NAMES = ("x-session-id", "x-session-affinity")


def pinned(record: RawRequest) -> bool:
    return any(record.header(name) is not None for name in SESSION_NAMES)


# -- scope, in process -------------------------------------------------------------------------------


@pytest.mark.parametrize("method, url, options", [
    ("POST", "https://evil.example.com/v1/messages", {"affinity_scope": "~d api.anthropic.com"}),
    ("POST", "https://opencode.ai/zen/v1/messages", {}),
    ("POST", "https://api.anthropic.com/v1/models", {}),
    ("GET", "https://api.anthropic.com/v1/messages", {}),
    ("POST", "https://api.openai.com/v1/embeddings", {}),
    ("POST", "https://api.anthropic.com/v1/messages/batches", {}),
    ("POST", "https://api.anthropic.com/v1/messages/count_tokens", {}),
    ("CONNECT", "https://api.anthropic.com:443/v1/messages", {}),
    ("POST", "https://api.anthropic.com/v1/messages", {"affinity_exclude": "~d anthropic"}),
], ids=["other-host", "excluded-host", "models", "get", "embeddings", "batches", "count-tokens", "connect",
        "custom-exclude"])
def test_out_of_scope_flows_get_no_header(method: str, url: str, options: dict[str, str]) -> None:
    inject = Inject()
    request = http.Request.make(method, url, BODY, {"content-type": "application/json"})
    before = request.get_state()
    flow = tflow.tflow(req=request)
    with harness(inject) as tctx:
        tctx.configure(inject, affinity_prompt_cache_key=True, **options)
        run_hook("requestheaders", flow, inject)
        run_hook("request", flow, inject)
    assert request.get_state() == before
    assert "cachepin" not in flow.metadata


def test_replayed_flows_are_not_pinned() -> None:
    inject = Inject()
    flow = tflow.tflow(req=http.Request.make("POST", "https://api.anthropic.com/v1/messages", BODY), live=False)
    with harness(inject):
        run_hook("requestheaders", flow, inject)
        run_hook("request", flow, inject)
    assert not any(name in flow.request.headers for name in SESSION_NAMES)


# -- refused client session ids ----------------------------------------------------------------------

BAD_IDS = ["has space", "line\r\nbreak", "new\nline", "tab\there", "caf\u00e9", "\u4f1a\u8bdd", "x" * 257, "",
           "nul\x00byte", "del\x7f"]


@pytest.mark.parametrize("bad", BAD_IDS, ids=["space", "crlf", "lf", "tab", "latin1", "cjk", "257-chars", "empty",
                                              "nul", "del"])
@pytest.mark.parametrize("where", ["x-session-id", "x-claude-code-session-id", "body:metadata.user_id",
                                   "body:prompt_cache_key"])
def test_malformed_client_session_ids_are_refused(bad: str, where: str) -> None:
    body = json.loads(BODY)
    headers: list[tuple[str, str]] = [("content-type", "application/json")]
    if where == "body:metadata.user_id":
        body["metadata"] = {"user_id": json.dumps({"session_id": bad})}
    elif where == "body:prompt_cache_key":
        body["prompt_cache_key"] = bad
    else:
        headers.append((where, bad))
    inject = Inject()
    flow = tflow.tflow(req=make_request("POST", "/v1/messages", headers, json.dumps(body).encode()))
    with harness(inject), captured_logs() as records:
        run_hook("requestheaders", flow, inject)
        run_hook("request", flow, inject)
    session_id = flow.metadata["cachepin"]["session_id"]
    assert session_id != bad and session_id.startswith("fp_")
    assert flow.request.headers.get_all("x-session-id") == [session_id]
    assert flow.request.headers.get_all("x-session-affinity") == [session_id]
    if bad:
        assert all(bad not in record.getMessage() for record in records), "a refused id is never logged"
        warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "ignored the session id" in warnings[0]


@pytest.mark.parametrize("bad", ["has space", "x" * 257, "caf\u00e9", "a\r\nb"])
def test_a_malformed_fixed_session_option_is_refused(bad: str) -> None:
    inject = Inject()
    with harness(inject) as tctx, pytest.raises(exceptions.OptionsError):
        tctx.configure(inject, affinity_session=bad)


@pytest.mark.e2e
def test_malformed_ids_on_the_wire_never_reach_the_upstream(mitmdump) -> None:
    values = [b"has space", b"x" * 300, "caf\u00e9".encode("latin-1"), "\u4f1a".encode(), b"a\x01b"]
    with ScriptedUpstream() as upstream:
        proxy = mitmdump(upstream.url, ("inject.py",))
        for value in values:
            headers = [("Host", "h"), ("content-type", "application/json"), ("content-length", str(len(BODY))),
                       ("X-Session-Id", value.decode("latin-1"))]
            assert exchange(proxy.port, "POST", "/v1/messages", headers, BODY).status == 200
        proxy.stop()
    forwarded = [r.header("x-session-id") for r in upstream.requests]
    assert len(forwarded) == len(values) and len(set(forwarded)) == 1 and forwarded[0].startswith("fp_")
    assert all(r.header("x-session-affinity") == forwarded[0] for r in upstream.requests)


# -- scope through real proxy modes ------------------------------------------------------------------


@pytest.mark.e2e
def test_regular_mode_pins_only_llm_calls_to_hosts_in_scope(mitmdump) -> None:
    with ScriptedUpstream() as upstream:
        proxy = mitmdump("", ("inject.py", "cache_audit.py"), mode="regular",
                         options={"affinity_exclude": "~d localhost"})
        for host in ("127.0.0.1", "localhost"):
            for path in ("/v1/messages", "/v1/models"):
                target = f"http://{host}:{upstream.port}{path}"
                headers = [("Host", f"{host}:{upstream.port}"), ("content-type", "application/json"),
                           ("content-length", str(len(BODY)))]
                assert exchange(proxy.port, "POST", target, headers, BODY).status == 200
        proxy.stop()
    # 127.0.0.1: the LLM path only; localhost (excluded): nothing
    assert [pinned(r) for r in upstream.requests] == [True, False, False, False]
    assert proxy.output.count("cachepin inject new session=") == 1 and "Traceback" not in proxy.output
    assert proxy.output.count("cachepin session=") == 2  # the audit reads both LLM calls; it changes neither


@pytest.mark.e2e
def test_https_interception_and_tunnels(mitmdump, tmp_path: Path) -> None:
    """Intercepted 127.0.0.1 is pinned; intercepted localhost is out of scope; a tunnel through ignore_hosts
    is never opened by mitmproxy, so nothing can be added to it."""
    pki = TestPKI(tmp_path / "pki")
    with ScriptedUpstream(tls=pki.server_context()) as upstream:
        proxy = mitmdump("", ("inject.py", "cache_audit.py"), mode="regular", options={
            "ssl_verify_upstream_trusted_ca": str(pki.ca_pem), "affinity_scope": "~d 127.0.0.1",
            "ignore_hosts": r"^localhost:"})
        trust = client_context(Path(proxy.confdir) / "mitmproxy-ca-cert.pem", pki.ca_pem)
        with httpx2.Client(proxy=proxy.url, verify=trust, trust_env=False, timeout=10) as client:
            for host in ("127.0.0.1", "localhost"):
                reply = client.post(f"https://{host}:{upstream.port}/v1/messages", content=BODY,
                                    headers={"content-type": "application/json"})
                assert reply.status_code == 200
        proxy.stop()
    assert [pinned(r) for r in upstream.requests] == [True, False]
    assert "cachepin session=" in proxy.output  # the intercepted flow was audited
    assert proxy.output.count("cachepin session=") == 1  # and the tunnel was not


# -- secrets -----------------------------------------------------------------------------------------

SECRETS = {
    "x-api-key": "sk-ant-api03-PLANTED-xapikey-0001",
    "authorization": "sk-proj-PLANTED-bearer-0002",
    "api-key": "azure-PLANTED-apikey-0003",
    "x-goog-api-key": "AIzaPLANTED-goog-0004",
    "query key": "AIzaPLANTED-query-0005",
    "prompt": "PROMPT-PLANTED-the-secret-plan-0006",
    "system": "SYSTEM-PLANTED-confidential-0007",
    "response": "RESPONSE-PLANTED-model-text-0008",
    "error echo": "ECHOED-PLANTED-in-error-0009",
}


@pytest.mark.e2e
def test_no_secret_reaches_any_output(tmp_path: Path) -> None:
    script, levels = level_log_addon(tmp_path)
    files = {"report": tmp_path / "report.json", "events": tmp_path / "events.jsonl",
             "junit": tmp_path / "junit.xml"}
    with FakeUpstream() as upstream, ScriptedUpstream(_echoing_upstream) as echo:
        upstream.behaviour.text = f"Sure. {SECRETS['response']} done"
        proxy = Mitmdump(upstream.url, ("inject.py", "cache_audit.py", str(script)), confdir=str(tmp_path / "c1"),
                         options={"termlog_verbosity": "debug", "cache_report": str(files["report"]),
                                  "cache_events": str(files["events"]), "cache_junit": str(files["junit"]),
                                  "cache_expect": "warm", "cache_min_hit": 50})
        gemini = Mitmdump(echo.url, ("inject.py", "cache_audit.py", str(script)), confdir=str(tmp_path / "c2"),
                          options={"termlog_verbosity": "debug", "cache_report": str(tmp_path / "report2.json"),
                                   "cache_events": str(files["events"])})
        try:
            _talk(proxy.url, gemini.url)
            assert wait_until(lambda: connections_closed(proxy.output + gemini.output))
        finally:
            proxy.stop()
            gemini.stop()
    assert proxy.proc.returncode == 3, "expectations failed on purpose, so failure messages are written too"
    outputs = {"mitmdump stdout": proxy.output + gemini.output, "levels": levels.read_text(),
               "report2": (tmp_path / "report2.json").read_text()}
    outputs |= {name: path.read_text() for name, path in files.items()}
    assert "DEBUG" in outputs["levels"] and "cachepin session=" in outputs["levels"]
    json.loads(outputs["report"])
    for where, text in outputs.items():
        for what, secret in SECRETS.items():
            assert secret not in text, f"the {what} leaked into {where}"
    assert len(outputs["events"].splitlines()) == 5  # claude x2, chat, azure, gemini


def _echoing_upstream(request: RawRequest) -> list[Send]:
    """A gateway that quotes everything it got in its error message: headers, query and body."""
    everything = f"{SECRETS['error echo']}: {request.target} {request.headers} {request.body.decode(errors='replace')}"
    body = json.dumps({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": everything}})
    return [Send(response_bytes(400, [("content-type", "application/json")], body.encode()))]


def _talk(anthropic_url: str, gemini_url: str) -> None:
    with anthropic.Anthropic(base_url=anthropic_url, api_key=SECRETS["x-api-key"], max_retries=0) as claude:
        messages = [{"role": "user", "content": SECRETS["prompt"]}]
        claude.messages.create(model="claude-sonnet-4-6", max_tokens=16, system=SECRETS["system"],
                               messages=messages)
        with claude.messages.stream(model="claude-sonnet-4-6", max_tokens=16, system=SECRETS["system"],
                                    messages=messages) as stream:
            stream.get_final_text()
    with openai.OpenAI(base_url=f"{anthropic_url}/v1", api_key=SECRETS["authorization"], max_retries=0) as gpt:
        gpt.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": SECRETS["prompt"]}])
    azure = httpx2.post(f"{anthropic_url}/openai/deployments/gpt-5/chat/completions?api-version=2024-10-21",
                        headers={"api-key": SECRETS["api-key"]}, trust_env=False,
                        json={"messages": [{"role": "system", "content": SECRETS["system"]},
                                           {"role": "user", "content": SECRETS["prompt"]}]})
    assert azure.status_code == 200
    gemini = httpx2.post(f"{gemini_url}/v1beta/models/gemini-2.5-pro:generateContent?key={SECRETS['query key']}",
                         headers={"x-goog-api-key": SECRETS["x-goog-api-key"]}, trust_env=False,
                         json={"systemInstruction": {"parts": [{"text": SECRETS["system"]}]},
                               "contents": [{"role": "user", "parts": [{"text": SECRETS["prompt"]}]}]})
    assert gemini.status_code == 400 and SECRETS["query key"] in gemini.text  # the echo did its part
    assert SECRETS["error echo"] in gemini.text


# -- crash safety of the files -----------------------------------------------------------------------

_WRITER = """
import json, sys
from cachepin.views.files import append_line, write_atomic
report, events = sys.argv[1], sys.argv[2]
print("ready", flush=True)
n = 0
while True:
    n += 1
    write_atomic(report, [json.dumps({"version": 1, "n": n, "pad": ["x" * 1000] * 2000})])
    append_line(events, '{"n": %d, "pad": "%s"}' % (n, "y" * 5000))
"""


@pytest.mark.e2e
@pytest.mark.parametrize("delay", [0.05, 0.13, 0.31])
def test_a_crash_mid_write_leaves_whole_files(tmp_path: Path, delay: float) -> None:
    report, events = tmp_path / "report.json", tmp_path / "events.jsonl"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(report),
                               str(events)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        time.sleep(delay)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        writer.stdout.close()
    if report.exists():
        assert json.loads(report.read_text())["version"] == 1
    for line in events.read_text().splitlines() if events.exists() else []:
        assert json.loads(line)["pad"] == "y" * 5000
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("report.json", "events.jsonl")]
    assert all(name.startswith(".report.json.") for name in leftovers)  # a temp file at most, never the report


def test_a_failed_write_keeps_the_previous_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.json"
    reports.write_atomic(target, [json.dumps({"version": 1, "n": 1})])

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(reports.os, "fsync", crash)
    with pytest.raises(OSError):
        reports.write_atomic(target, [json.dumps({"version": 1, "n": 2})])
    assert json.loads(target.read_text()) == {"version": 1, "n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
