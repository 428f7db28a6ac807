"""Guarantee 6, modes: reverse proxy, regular proxy to an HTTP upstream, and HTTPS interception (the client
trusts mitmproxy's CA, mitmproxy trusts the test upstream's CA), each end to end with the official anthropic
and openai SDKs through both addons: every turn pinned and audited, streamed and not.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anthropic
import httpx2
import openai
import pytest
from llm_upstream import ANTHROPIC_USAGE, OPENAI_USAGE, FakeUpstream
from logs import connections_closed
from pki import TestPKI, client_context

from cachepin_tools.harness.processes import Mitmdump, wait_until

pytestmark = pytest.mark.e2e

SYSTEM = "You answer in one short sentence."
API_KEY = "sk-ant-api03-modes-planted-key"


@dataclass
class Setup:
    upstream: FakeUpstream
    proxy: Mitmdump
    base_url: str  # what the SDK is pointed at
    client: Callable[[], httpx2.Client]  # one per SDK client: closing the SDK closes it
    report: Path


def _client(mode: str, proxy: Mitmdump) -> httpx2.Client:
    if mode == "reverse":
        return httpx2.Client(trust_env=False, timeout=20)
    if mode == "regular-http":
        return httpx2.Client(trust_env=False, proxy=proxy.url, timeout=20)
    verify = client_context(Path(proxy.confdir) / "mitmproxy-ca-cert.pem")  # trusts mitmproxy's CA only
    return httpx2.Client(trust_env=False, proxy=proxy.url, verify=verify, timeout=20)


@pytest.fixture(params=["reverse", "regular-http", "https-interception"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    mode: str = request.param
    tls = TestPKI(tmp_path / "pki") if mode == "https-interception" else None
    report = tmp_path / "report.json"
    options: dict[str, object] = {"cache_report": str(report)}
    if tls is not None:
        options["ssl_verify_upstream_trusted_ca"] = str(tls.ca_pem)
    with FakeUpstream(tls.server_context() if tls else None) as upstream:
        proxy = Mitmdump(upstream.url, ("inject.py", "cache_audit.py"), confdir=str(tmp_path / "conf"),
                         mode=None if mode == "reverse" else "regular", options=options)
        try:
            client = lambda: _client(mode, proxy)  # noqa: E731
            base_url = proxy.url if mode == "reverse" else upstream.url
            yield Setup(upstream, proxy, base_url, client, report)
        finally:
            proxy.stop()


def test_both_sdks_through_the_proxy(setup: Setup) -> None:
    with anthropic.Anthropic(base_url=setup.base_url, api_key=API_KEY, max_retries=0,
                             http_client=setup.client()) as claude:
        messages: list[dict] = []
        for turn in range(2):
            messages.append({"role": "user", "content": "Plan the refactor." if turn == 0 else "And then?"})
            with claude.messages.stream(model="claude-sonnet-4-6", max_tokens=64, system=SYSTEM,
                                        messages=messages) as stream:
                text = stream.get_final_text()
                final = stream.get_final_message()
            assert final.usage.cache_creation_input_tokens == ANTHROPIC_USAGE["cache_creation_input_tokens"]
            messages.append({"role": "assistant", "content": text})
        reply = claude.messages.create(model="claude-sonnet-4-6", max_tokens=64, system=SYSTEM,
                                       messages=[{"role": "user", "content": "Another conversation."}])
        assert reply.usage.input_tokens == ANTHROPIC_USAGE["input_tokens"]
    with openai.OpenAI(base_url=f"{setup.base_url}/v1", api_key=API_KEY, max_retries=0,
                       http_client=setup.client()) as gpt:
        chat: list[dict] = [{"role": "system", "content": SYSTEM}]
        for turn in range(2):
            chat.append({"role": "user", "content": "Hello" if turn == 0 else "More?"})
            chunks = list(gpt.chat.completions.create(model="gpt-5", messages=chat, stream=True,
                                                      stream_options={"include_usage": True}))
            assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == OPENAI_USAGE["prompt_tokens"]
            chat.append({"role": "assistant", "content": "".join(c.choices[0].delta.content or ""
                                                                 for c in chunks if c.choices)})
        response = gpt.responses.create(model="gpt-5", instructions=SYSTEM, input="Summarise.")
        assert response.usage.input_tokens_details.cached_tokens == 6912
    assert wait_until(lambda: connections_closed(setup.proxy.output))
    setup.proxy.stop()

    records = setup.upstream.records
    assert len(records) == 6
    ids = [(r.header("x-session-id"), r.header("x-session-affinity")) for r in records]
    assert all(a is not None and a == b for a, b in ids), ids
    sessions = [a for a, _ in ids]
    assert sessions[0] == sessions[1] and sessions[3] == sessions[4]
    assert len({sessions[0], sessions[2], sessions[3], sessions[5]}) == 4

    report = json.loads(setup.report.read_text())
    by_id = {s["session_id"]: s for s in report["sessions"]}
    assert set(by_id) == set(sessions)
    assert [t["verdict"] for t in by_id[sessions[0]]["turns"]] == ["cold", "miss"]
    assert [t["stream"] for t in by_id[sessions[0]]["turns"]] == [True, True]
    assert [t["verdict"] for t in by_id[sessions[3]]["turns"]] == ["hit", "hit"]
    assert by_id[sessions[5]]["turns"][0]["cache_read_input_tokens"] == 6912
    assert report["totals"]["requests"] == 6
    assert report["totals"]["cache_read_input_tokens"] == 2 * 4096 + 6912
    assert report["totals"]["output_tokens"] == 3 * ANTHROPIC_USAGE["output_tokens"] + 2 * 52 + 140
    assert API_KEY not in setup.proxy.output
    assert "Traceback" not in setup.proxy.output and "Addon error" not in setup.proxy.output
