"""mitmproxy's own body streaming (stream_large_bodies) must not make the audit lose turns silently."""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
import pytest
from llm_upstream import FakeUpstream

pytestmark = pytest.mark.e2e

SYSTEM = [{"type": "text", "text": "Be brief. " * 50, "cache_control": {"type": "ephemeral"}}]


def one_turn(url: str, stream: bool) -> None:
    with anthropic.Anthropic(base_url=url, api_key="k", max_retries=0) as client:
        messages = [{"role": "user", "content": f"hello, streaming {stream}"}]
        if stream:
            with client.messages.stream(model="claude-sonnet-4-6", max_tokens=8, system=SYSTEM,
                                        messages=messages) as events:
                events.get_final_text()
        else:
            client.messages.create(model="claude-sonnet-4-6", max_tokens=8, system=SYSTEM, messages=messages)


@pytest.mark.parametrize("store", [False, True])
def test_stream_large_bodies(upstream: FakeUpstream, mitmdump, tmp_path: Path, store: bool) -> None:
    report_path = tmp_path / "report.json"
    proxy = mitmdump(upstream.url, ["inject.py", "cache_audit.py"], options={
        "cache_report": str(report_path), "stream_large_bodies": "1", "store_streamed_bodies": store})
    one_turn(proxy.url, stream=True)
    one_turn(proxy.url, stream=False)
    assert proxy.stop() == 0

    sse, json_turn = (s["turns"][0] for s in json.loads(report_path.read_text())["sessions"])
    assert (sse["stream"], sse["cache_creation_input_tokens"], sse["output_tokens"]) == (True, 1538, 85)
    warning = "usage was not read: add --set store_streamed_bodies=true"
    if store:
        assert (json_turn["verdict"], json_turn["cache_creation_input_tokens"]) == ("cold", 1538)
        assert warning not in proxy.output
    else:
        assert (json_turn["verdict"], json_turn["cache_creation_input_tokens"]) == ("none", None)
        assert proxy.output.count(warning) == 1
