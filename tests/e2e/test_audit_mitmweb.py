"""A real mitmweb with both addons: the miss shows in its own HTTP API as a comment, a mark and the usage view."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest
from llm_upstream import FakeUpstream
from ports import free_port

from cachepin_tools.harness.processes import Mitmdump, wait_until
from cachepin_tools.wire.tokens import Tokens

pytestmark = pytest.mark.e2e

SYSTEM = "You are a careful assistant that answers in one sentence."
TEXT = "Hello from the fake upstream."



class WebApi:
    def __init__(self, port: int, password: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.password = password

    def get(self, path: str, password: str | None = None) -> bytes:
        request = urllib.request.Request(f"{self.base}{path}", headers={
            "Authorization": f"Bearer {self.password if password is None else password}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    def json(self, path: str) -> object:
        return json.loads(self.get(path))


@contextlib.contextmanager
def running_mitmweb(upstream: FakeUpstream, tmp_path: Path, **options: object) -> Iterator[tuple[Mitmdump, WebApi]]:
    password = secrets.token_urlsafe(16)
    port = free_port()
    proc = Mitmdump(upstream.url, ("inject.py", "cache_audit.py"), tool="mitmweb", confdir=str(tmp_path / "confdir"),
                    options={"web_open_browser": False, "web_port": port, "web_host": "127.0.0.1",
                             "web_password": password, "cache_report": str(tmp_path / "report.json"), **options})
    try:
        api = WebApi(port, password)
        assert wait_until(lambda: any("Web server listening" in line for line in proc.lines)), proc.output
        yield proc, api
    finally:
        proc.stop()


@pytest.fixture
def mitmweb(upstream: FakeUpstream, tmp_path: Path) -> Iterator[tuple[Mitmdump, WebApi]]:
    with running_mitmweb(upstream, tmp_path, store_streamed_bodies=True) as running:
        yield running


def test_miss_is_commented_marked_and_viewable_in_mitmweb(upstream: FakeUpstream, mitmweb) -> None:
    proxy, api = mitmweb
    usages = [Tokens(12, read=0, creation=1538, output=85), Tokens(12, read=0, creation=1600, output=85)]
    history: list[dict] = []
    with anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-web", max_retries=0) as client:
        for index, usage in enumerate(usages):
            upstream.behaviour.anthropic = usage
            history.append({"role": "user", "content": "Describe the web UI." if index == 0 else "More?"})
            with client.messages.stream(model="claude-sonnet-4-6", max_tokens=64, system=SYSTEM,
                                        messages=history) as events:
                history.append({"role": "assistant", "content": events.get_final_text()})
    session_id = upstream.records[0].header("x-session-id")
    assert session_id and upstream.records[1].header("x-session-id") == session_id

    with pytest.raises(urllib.error.HTTPError) as denied:
        api.get("/flows", password="wrong")
    assert denied.value.code == 403

    def recorded() -> list[dict]:  # a turn read by a reader process is shown moments after its response ends
        return [f for f in api.json("/flows") if f["request"]["path"] == "/v1/messages" and " · turn " in f["comment"]]

    assert wait_until(lambda: len(recorded()) == 2)
    flows = recorded()
    first, second = flows
    short = session_id[:12] + "…"
    assert "\n" not in first["comment"] and "\n" not in second["comment"]  # one line: the inject note replaced
    assert re.fullmatch(r"cold · read 0 · wrote 1,538 · uncached 12 · turn 1 · thread ln_[0-9a-f]{9}… · "
                        f"session {re.escape(short)} \\(fingerprint\\)", first["comment"]), first["comment"]
    thread = first["comment"].split(" · ")[5]
    assert first["marked"] == ""
    assert second["comment"].startswith(f"miss · read 0 · wrote 1,600 · uncached 12 · turn 2 · {thread} · "
                                        f"session {short} (fingerprint) · no_breakpoint: ")
    assert second["marked"] == "\N{CROSS MARK}"  # the API sends the emoji of the ":x:" shortcode

    view = api.json(f"/flows/{second['id']}/response/content/cachepin%20usage.json")
    assert view["view_name"] == "cachepin usage"
    lines = view["text"].splitlines()
    assert lines[:7] == ["dialect: anthropic", "provider: anthropic", "model: claude-sonnet-4-6",
                         "input_tokens: 12", "cache_creation_input_tokens: 1600", "cache_read_input_tokens: 0",
                         "output_tokens: 85"]
    assert lines[7:9] == ["verdict: miss", "turn: 2"] and lines[10] == f"session_id: {session_id}"
    assert lines[9].startswith(f"thread: {thread.removeprefix('thread ').removesuffix('…')}")
    assert lines[11].startswith("reason: no_breakpoint (") and "cost_usd:" in lines
    assert lines[-2:] == ["text: |", f"  {TEXT} "]
    auto = api.json(f"/flows/{first['id']}/response/content/auto.json")
    assert auto["view_name"] == "cachepin usage" and "cache_creation_input_tokens: 1538" in auto["text"]
    assert proxy.stop() == 0
    assert "Traceback" not in proxy.output and "sk-ant-web" not in proxy.output


def test_a_stream_whose_body_was_not_kept_says_its_turn_in_the_comment(upstream: FakeUpstream,
                                                                        tmp_path: Path) -> None:
    """mitmproxy shows no content view of a body it did not keep ("Content is missing."): the comment is what
    says how the turn went, figures included."""
    upstream.behaviour.anthropic = Tokens(12, read=0, creation=1538, output=85)
    with running_mitmweb(upstream, tmp_path) as (proxy, api):  # mitmproxy's default: streamed bodies not kept
        with anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-web", max_retries=0) as client:
            with client.messages.stream(model="claude-sonnet-4-6", max_tokens=64, system=SYSTEM,
                                        messages=[{"role": "user", "content": "Hi"}]) as events:
                events.get_final_text()
        assert wait_until(lambda: api.json("/flows")[-1]["comment"].startswith("cold · "))
        (flow,) = [f for f in api.json("/flows") if f["request"]["path"] == "/v1/messages"]
        assert flow["comment"].startswith("cold · read 0 · wrote 1,538 · uncached 12 · turn 1 · thread ln_")
        view = api.json(f"/flows/{flow['id']}/response/content/auto.json")
        assert view["text"] == "Content is missing."
        assert proxy.stop() == 0


def test_a_turn_read_by_a_reader_process_is_commented_once_read(upstream: FakeUpstream, tmp_path: Path) -> None:
    """With the reader process up (the first requests are read in the proxy while it starts), a turn is recorded
    moments after its response ended, outside any hook: its flow is still commented and marked."""
    upstream.behaviour.anthropic = Tokens(12, read=0, creation=1538, output=85)
    with running_mitmweb(upstream, tmp_path) as (proxy, api):
        with anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-web", max_retries=0) as client:
            def ask(content: str) -> None:
                client.messages.create(model="claude-sonnet-4-6", max_tokens=64, system=SYSTEM,
                                       messages=[{"role": "user", "content": content}])

            assert wait_until(lambda: ask("warm up") or "request reader process ready" in proxy.output, timeout=60)
            ask("Hi")
        assert wait_until(lambda: " · turn " in api.json("/flows")[-1]["comment"])
        flow = api.json("/flows")[-1]
        assert flow["comment"].startswith("cold · read 0 · wrote 1,538 · uncached 12 · turn 1 · thread ln_")
        assert proxy.stop() == 0
