"""End to end: a real mitmdump with both addons in reverse mode before the fake upstream, driven by the SDKs."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import anthropic
import openai
import pytest
from llm_upstream import FakeUpstream
from sdk_conversation import KINDS, SYSTEM, ask, turn_text

from cachepin_tools.harness.processes import ADDONS, BIN, Mitmdump, wait_until
from cachepin_tools.wire.tokens import Tokens

pytestmark = pytest.mark.e2e

API_KEY = "sk-test-SECRETKEY-must-not-leak"
PROMPT = "Summarise-the-secret-design-document"
TEXT = "Hello from the fake upstream."
COUNTS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")


# --- driving a conversation through one SDK, with the cache figures the upstream reports for each turn ---

def client_for(kind: str, proxy: Mitmdump) -> anthropic.Anthropic | openai.OpenAI:
    if kind == "anthropic":
        return anthropic.Anthropic(base_url=proxy.url, api_key=API_KEY, max_retries=0)
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=API_KEY, max_retries=0)


def set_cache(upstream: FakeUpstream, kind: str, read: int, written: int) -> None:
    """What the upstream reports for the next turn: ``read`` tokens from the cache, ``written`` to it."""
    behaviour = upstream.behaviour
    if kind == "anthropic":
        behaviour.anthropic = Tokens(12, read=read, creation=written, output=85)
    elif kind == "chat":
        behaviour.chat = Tokens(4300 - read, read=read, output=52)
    else:
        behaviour.responses = Tokens(7200 - read, read=read, creation=None, output=140, reasoning=64)


def expected_figures(kind: str, read: int, written: int) -> tuple[int | None, ...]:
    """The usage set_cache sends, as the ledger must normalise it (additive counts, Anthropic semantics)."""
    if kind == "anthropic":
        return 12, written, read, 85
    if kind == "chat":
        return 4300 - read, None, read, 52  # writes are not reported (only from GPT-5.6 on)
    return 7200 - read, None, read, 140


def converse(upstream: FakeUpstream, proxy: Mitmdump, kind: str, stream: bool,
             plan: list[tuple[int, int]], first: str = PROMPT) -> None:
    """One conversation, a turn per (read, written) of ``plan``; the client is closed before returning."""
    history: list[dict] = []
    with client_for(kind, proxy) as client:
        for index, (read, written) in enumerate(plan):
            set_cache(upstream, kind, read, written)
            reply = ask(client, kind, stream, history, turn_text(index, first))
            assert reply.split() == TEXT.split()


def report_turns(report: dict) -> list[tuple]:
    return [(s["session_id"], t["index"], t["verdict"], t["model"], t["provider"], t["stream"],
             tuple(t[k] for k in COUNTS)) for s in report["sessions"] for t in s["turns"]]


def outputs(tmp_path: Path) -> dict[str, str]:
    return {"cache_report": str(tmp_path / "report.json"), "cache_events": str(tmp_path / "events.jsonl"),
            "cache_junit": str(tmp_path / "junit.xml")}


def junit_counts(path: str) -> tuple[int, int]:
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    return int(suite.get("tests", "-1")), int(suite.get("failures", "-1"))


# --- the report equals what the upstream sent, for every SDK and API ---

@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("kind", KINDS)
def test_report_figures_equal_what_the_upstream_sent(upstream: FakeUpstream, mitmdump, tmp_path: Path,
                                                     kind: str, stream: bool) -> None:
    files = outputs(tmp_path)
    proxy = mitmdump(upstream.url, ("inject.py", "cache_audit.py"), options={**files, "cache_expect": "warm"})
    plan = [(0, 1538), (1536, 0), (3072, 2)]
    converse(upstream, proxy, kind, stream, plan)
    assert proxy.stop() == 0

    report = json.loads(Path(files["cache_report"]).read_text())
    session_id = upstream.records[0].header("x-session-id")
    assert session_id and all(r.header("x-session-id") == session_id for r in upstream.records)
    model = "claude-sonnet-4-6" if kind == "anthropic" else "gpt-5"
    provider = "anthropic" if kind == "anthropic" else "openai"
    assert report_turns(report) == [
        (session_id, i, verdict, model, provider, stream, expected_figures(kind, read, written))
        for i, ((read, written), verdict) in enumerate(zip(plan, ["cold", "hit", "hit"], strict=True), 1)]
    assert report["ok"] is True and report["failures"] == []
    assert report["totals"]["requests"] == 3
    assert report["totals"]["cache_read_input_tokens"] == 1536 + 3072

    events = Path(files["cache_events"]).read_text().splitlines()
    assert len(events) == 3
    assert [(e["session_id"], e["turn"]["index"], tuple(e["turn"][k] for k in COUNTS))
            for e in map(json.loads, events)] == [
        (session_id, i, expected_figures(kind, *figures)) for i, figures in enumerate(plan, 1)]
    assert junit_counts(files["cache_junit"]) == (1, 0)

    logged = [line for line in proxy.lines if "cachepin session=" in line]
    assert len(logged) == 3 and "verdict=cold" in logged[0] and "verdict=hit" in logged[2]
    everything = proxy.output + "".join(Path(p).read_text() for p in files.values())
    for secret in (API_KEY, PROMPT, SYSTEM, TEXT):
        assert secret not in everything
    assert "Traceback" not in proxy.output


# --- streaming: incremental and byte-identical ---

def raw_stream(proxy: Mitmdump, gzip_accepted: bool) -> tuple[bytes, float]:
    """POST a streaming request with http.client; returns the raw (still encoded) body and when its
    first bytes arrived."""
    body = json.dumps({"model": "claude-sonnet-4-6", "max_tokens": 64, "stream": True, "system": SYSTEM,
                       "messages": [{"role": "user", "content": PROMPT}]})
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        conn.request("POST", "/v1/messages", body, {"content-type": "application/json", "x-api-key": API_KEY,
                                                    "accept-encoding": "gzip" if gzip_accepted else "identity"})
        response = conn.getresponse()
        assert response.status == 200
        assert (response.getheader("content-encoding") == "gzip") is gzip_accepted
        first = response.read1(65536)
        first_at = time.monotonic()
        assert first
        return first + response.read(), first_at
    finally:
        conn.close()


@pytest.mark.parametrize("gzip_sse", [False, True], ids=["identity", "gzip"])
def test_raw_stream_is_incremental_and_byte_identical(upstream: FakeUpstream, mitmdump, tmp_path: Path,
                                                      gzip_sse: bool) -> None:
    upstream.behaviour.event_delay = 0.2  # 11 events: the last one leaves the upstream ~2 s after the first
    upstream.behaviour.gzip_sse = gzip_sse
    files = outputs(tmp_path)
    proxy = mitmdump(upstream.url, ("inject.py", "cache_audit.py"), options=files)
    received, first_at = raw_stream(proxy, gzip_sse)
    assert upstream.last_event_sent_at is not None
    assert first_at < upstream.last_event_sent_at - 1.0  # the first event did not wait for the last
    assert received == upstream.sent[-1]
    assert received.startswith(b"\x1f\x8b") is gzip_sse
    assert proxy.stop() == 0
    turn, = [t for s in json.loads(Path(files["cache_report"]).read_text())["sessions"] for t in s["turns"]]
    assert tuple(turn[k] for k in COUNTS) == (12, 1538, 0, 85) and turn["stream"] is True
    assert turn["verdict"] == "cold" and turn["ttft_ms"] is not None


def test_sdk_stream_is_incremental(upstream: FakeUpstream, mitmdump, tmp_path: Path) -> None:
    upstream.behaviour.event_delay = 0.2
    upstream.behaviour.gzip_sse = True  # httpx asks for gzip: the tee reads a compressed stream
    files = outputs(tmp_path)
    proxy = mitmdump(upstream.url, ("inject.py", "cache_audit.py"), options=files)
    seen: list[float] = []
    with client_for("chat", proxy) as client:
        chunks = client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": PROMPT}],
                                                stream=True, stream_options={"include_usage": True})
        for _ in chunks:
            seen.append(time.monotonic())
    assert upstream.last_event_sent_at is not None and len(seen) == 7  # 5 words, finish, usage
    assert seen[0] < upstream.last_event_sent_at - 0.5  # 8 events 0.2 s apart: [DONE] left ~1.4 s after the first
    assert proxy.stop() == 0
    turn, = [t for s in json.loads(Path(files["cache_report"]).read_text())["sessions"] for t in s["turns"]]
    assert tuple(turn[k] for k in COUNTS) == (204, None, 4096, 52) and turn["verdict"] == "hit"


# --- exit status 3 exactly when an expectation fails ---

@pytest.mark.parametrize("options, second_reads, status, failed_sessions", [
    ({"cache_expect": "warm"}, (1536, 1536), 0, 0),
    ({"cache_expect": "warm"}, (1536, 0), 3, 1),
    ({"cache_expect": "warm"}, (0, 0), 3, 2),
    ({"cache_min_hit": 90}, (1536, 1536), 0, 0),
    ({"cache_min_hit": 90}, (1536, 100), 3, 1),
    ({}, (0, 0), 0, 0),
], ids=["warm-ok", "warm-one-miss", "warm-two-misses", "min-hit-ok", "min-hit-low", "no-expectation"])
def test_exit_status_is_3_exactly_when_an_expectation_fails(upstream: FakeUpstream, mitmdump, tmp_path: Path,
                                                            options: dict, second_reads: tuple[int, int],
                                                            status: int, failed_sessions: int) -> None:
    files = outputs(tmp_path)
    proxy = mitmdump(upstream.url, ("inject.py", "cache_audit.py"), options={**files, **options})
    for first, read in zip(("first conversation", "second conversation"), second_reads, strict=True):
        converse(upstream, proxy, "anthropic", False, [(0, 1538), (read, 1538 - read)], first=first)
    assert proxy.stop() == status, proxy.output
    report = json.loads(Path(files["cache_report"]).read_text())
    assert report["ok"] is (status == 0)
    assert len({f["session_id"] for f in report["failures"]}) == failed_sessions
    assert junit_counts(files["cache_junit"]) == (2, failed_sessions)
    failed_lines = [line for line in proxy.lines if "cachepin audit FAILED" in line]
    assert len(failed_lines) == failed_sessions
    assert ("exiting with status 3" in proxy.output) is (status == 3)


# --- offline replay of a saved run gives the live figures and verdicts ---

def test_replay_of_saved_flows_matches_the_live_report(upstream: FakeUpstream, mitmdump, tmp_path: Path) -> None:
    flows = tmp_path / "flows.mitm"
    live = outputs(tmp_path)
    upstream.behaviour.gzip_sse = True
    proxy = mitmdump(upstream.url, ("inject.py", "cache_audit.py"),
                     options={**live, "store_streamed_bodies": True}, extra=["-w", str(flows)])
    converse(upstream, proxy, "anthropic", True, [(0, 1538), (1536, 0), (0, 1600)], first="streamed")
    converse(upstream, proxy, "chat", True, [(0, 0), (4096, 0)], first="chat streamed")
    converse(upstream, proxy, "responses", False, [(0, 0), (6912, 0)], first="responses json")
    assert proxy.stop() == 0
    live_report = json.loads(Path(live["cache_report"]).read_text())
    assert [t[2] for t in report_turns(live_report)] == ["cold", "hit", "miss", "cold", "hit", "cold", "hit"]

    status, replayed = replay(flows, tmp_path, "cache_expect=warm")
    assert status == 3  # the live run's miss fails warm offline
    assert report_turns(replayed) == report_turns(live_report)
    assert replayed["totals"] == live_report["totals"]
    assert [f["turn"] for f in replayed["failures"]] == [3]


def replay(flows: Path, tmp_path: Path, *options: str) -> tuple[int, dict]:
    """``mitmdump -nr flows -s cache_audit.py``: its exit status and its report."""
    report = tmp_path / "replay.json"
    sets = [arg for option in options for arg in ("--set", option)]
    done = subprocess.run(
        [str(BIN / "mitmdump"), "-n", "-r", str(flows), "-s", str(ADDONS / "cache_audit.py"),
         "--set", f"confdir={tmp_path / 'replay-confdir'}", "--set", "flow_detail=0",
         "--set", f"cache_report={report}", *sets],
        capture_output=True, text=True, timeout=60)
    assert report.exists(), done.stdout + done.stderr
    return done.returncode, json.loads(report.read_text())


def test_a_stream_cut_by_the_upstream_is_an_error_turn_live_and_in_replay(upstream: FakeUpstream, mitmdump,
                                                                          tmp_path: Path) -> None:
    flows = tmp_path / "flows.mitm"
    live = outputs(tmp_path)
    proxy = mitmdump(upstream.url, ("inject.py", "cache_audit.py"),
                     options={**live, "store_streamed_bodies": True, "cache_expect": "warm"},
                     extra=["-w", str(flows)])
    converse(upstream, proxy, "anthropic", True, [(0, 1538), (1536, 0)], first="cut later")
    upstream.behaviour.cut_after = 3
    with client_for("anthropic", proxy) as client, pytest.raises(Exception, match="incomplete chunked read"):
        ask(client, "anthropic", True, [], "cut later")
    assert proxy.stop() == 0  # an error turn is counted nowhere: warm holds
    live_report = json.loads(Path(live["cache_report"]).read_text())
    assert [t[2] for t in report_turns(live_report)] == ["cold", "hit", "error"]

    status, replayed = replay(flows, tmp_path, "cache_expect=warm")
    assert status == 0
    assert report_turns(replayed) == report_turns(live_report)
    assert replayed["totals"] == live_report["totals"]


def test_a_client_that_hangs_up_at_done_leaves_complete_turns_live_and_in_replay(upstream: FakeUpstream, mitmdump,
                                                                                 tmp_path: Path) -> None:
    """The OpenAI SDK closes the connection at [DONE]; here the upstream ends its body a second later."""
    flows = tmp_path / "flows.mitm"
    live = outputs(tmp_path)
    upstream.behaviour.end_delay = 1.0
    proxy = mitmdump(upstream.url, ("inject.py", "cache_audit.py"), options={**live, "cache_expect": "warm"},
                     extra=["-w", str(flows)])
    converse(upstream, proxy, "chat", True, [(0, 0), (4096, 0)], first="hang up at done")
    assert proxy.stop() == 0
    live_report = json.loads(Path(live["cache_report"]).read_text())
    assert [(t[2], t[6]) for t in report_turns(live_report)] == [("cold", (4300, None, 0, 52)),
                                                                 ("hit", (204, None, 4096, 52))]
    assert live_report["totals"]["errors"] == 0

    status, replayed = replay(flows, tmp_path, "cache_expect=warm")  # no body kept: the tap's reading is
    assert status == 0 and report_turns(replayed) == report_turns(live_report)


# --- two conversations that start alike share a fingerprint, not a history ---

def test_conversations_that_start_alike_are_told_apart_by_their_histories(upstream: FakeUpstream, mitmdump,
                                                                          tmp_path: Path) -> None:
    """Two runs of one script, interleaved: one fingerprint session; B's second turn has a history of its own."""
    files = outputs(tmp_path)
    proxy = mitmdump(upstream.url, ("inject.py", "cache_audit.py"), options={**files, "cache_expect": "warm"})
    a: list[dict] = []
    b: list[dict] = []
    with client_for("anthropic", proxy) as client:
        for history, text, read in [(a, PROMPT, 0), (b, PROMPT, 1538), (a, "and then?", 1538), (a, "more?", 1538),
                                    (b, "something else?", 0), (b, "and more?", 2000)]:
            set_cache(upstream, "anthropic", read, 1538 - read if read < 1538 else 0)
            ask(client, "anthropic", False, history, text)
    assert proxy.stop() == 0, proxy.output  # B's first own turn opens its branch: cold, not a miss
    session, = json.loads(Path(files["cache_report"]).read_text())["sessions"]
    assert session["source"] == "fingerprint"
    assert [t["verdict"] for t in session["turns"]] == ["cold", "hit", "hit", "hit", "cold", "hit"]
    assert [(t["source"], t["turns"]) for t in session["threads"]] == [("lineage", [1, 2, 3, 4]), ("branch", [5, 6])]


# --- more sessions than cache_max_sessions: a session that comes back is judged as what it is ---

def test_sessions_evicted_and_back_are_judged_by_what_their_requests_continue(upstream: FakeUpstream, mitmdump,
                                                                             tmp_path: Path) -> None:
    """300 conversations, 3 turns each in turn, over cache_max_sessions=100: each is evicted before its next turn."""
    files = outputs(tmp_path)
    proxy = mitmdump(upstream.url, ("inject.py", "cache_audit.py"),
                     options={**files, "cache_expect": "warm", "cache_max_sessions": 100})
    upstream.behaviour.anthropic = Tokens(12, read=0, creation=0, output=85)  # nothing is ever read
    histories: dict[int, list[dict]] = {c: [] for c in range(300)}
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        for turn in range(3):
            for conversation, history in histories.items():
                history.append({"role": "user", "content": f"conversation {conversation} turn {turn}"})
                body = {"model": "claude-sonnet-4-6", "max_tokens": 64, "system": SYSTEM, "messages": history}
                conn.request("POST", "/v1/messages", json.dumps(body),
                             {"content-type": "application/json", "x-session-id": f"conversation-{conversation}"})
                response = conn.getresponse()
                assert response.status == 200
                reply = json.loads(response.read())["content"][0]["text"]
                history.append({"role": "assistant", "content": reply})
    finally:
        conn.close()
    assert proxy.stop() == 3  # 600 continuations read nothing
    report = json.loads(Path(files["cache_report"]).read_text())
    assert (report["totals"]["sessions"], report["totals"]["evicted_sessions"]) == (300, 800)
    assert len(report["sessions"]) == 100
    assert {(t["index"], t["verdict"]) for s in report["sessions"] for t in s["turns"]} == {(3, "miss")}
    failed = {(f["session_id"], f["turn"]) for f in report["failures"]}
    assert failed == {(f"conversation-{c}", turn) for c in range(300) for turn in (2, 3)}
    events = [json.loads(line) for line in Path(files["cache_events"]).read_text().splitlines()]
    assert len({(e["session_id"], e["turn"]["index"]) for e in events}) == 900  # no session/turn pair twice


# --- a hot reload of the script keeps the run's ledger and does not end the run ---

def test_hot_reload_keeps_the_ledger(upstream: FakeUpstream, mitmdump, tmp_path: Path) -> None:
    script = tmp_path / "cache_audit.py"
    shutil.copy(ADDONS / "cache_audit.py", script)
    files = outputs(tmp_path)
    proxy = mitmdump(upstream.url, ("inject.py", str(script)), options={**files, "cache_expect": "warm"})
    history: list[dict] = []
    loads = f"Loading script {script}"
    with client_for("anthropic", proxy) as client:
        for index, (read, written) in enumerate([(0, 1538), (0, 1600), (1600, 0)]):
            if index == 2:  # turn 2 missed: the old instance's done() must hand over, not exit
                assert proxy.output.count(loads) == 1
                future = time.time() + 10
                os.utime(script, (future, future))  # what an editor's save does: the watcher reloads it
                assert wait_until(lambda: proxy.output.count(loads) == 2 and Path(files["cache_report"]).exists())
            set_cache(upstream, "anthropic", read, written)
            ask(client, "anthropic", False, history, turn_text(index, PROMPT))
    assert proxy.proc.poll() is None  # the reload did not end the run
    assert proxy.stop() == 3  # the miss before the reload still fails the run
    report = json.loads(Path(files["cache_report"]).read_text())
    assert [(t[1], t[2]) for t in report_turns(report)] == [(1, "cold"), (2, "miss"), (3, "hit")]
    assert [f["turn"] for f in report["failures"]] == [2]
    assert proxy.output.count("exiting with status 3") == 1


# --- a stream cut by the upstream is one error turn, counted nowhere ---

def test_cut_stream_is_one_error_turn(upstream: FakeUpstream, mitmdump, tmp_path: Path) -> None:
    upstream.behaviour.cut_after = 4  # message_start, content_block_start, ping, one delta: then the line drops
    files = outputs(tmp_path)
    proxy = mitmdump(upstream.url, ("inject.py", "cache_audit.py"), options={**files, "cache_expect": "warm"})
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        raw_stream(proxy, gzip_accepted=False)
    upstream.behaviour.cut_after = None
    raw_stream(proxy, gzip_accepted=False)  # the same conversation again, complete this time
    assert proxy.stop() == 0  # an error turn neither fails warm nor counts as the session's first
    report = json.loads(Path(files["cache_report"]).read_text())
    (cut, complete), = [s["turns"] for s in report["sessions"]]
    assert (cut["verdict"], cut["status"], cut["stream"]) == ("error", 200, True)
    assert tuple(cut[k] for k in COUNTS) == (12, 1538, 0, 1)  # what message_start said before the cut
    assert complete["verdict"] == "cold" and report["totals"]["requests"] == 1
    assert len(Path(files["cache_events"]).read_text().splitlines()) == 2
