"""End to end: Bedrock's AWS event streams through a real mitmdump with both addons, in reverse mode before a fake
Bedrock that scripts every byte. The client gets the upstream's exact bytes, each part as soon as it is sent, and
the report has the figures and verdicts the streams carried (README: the audit addon; docs/providers.md)."""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from scripted_upstream import Action, Note, RawRequest, ScriptedUpstream, Send

from cachepin_tools.wire import anthropic, bedrock
from cachepin_tools.wire.http1 import chunk, chunked_head
from cachepin_tools.wire.tokens import Tokens

pytestmark = pytest.mark.e2e

EVENT_STREAM = [("content-type", "application/vnd.amazon.eventstream"),
                ("x-amzn-requestid", "6f1c2b3a-0d4e-4f5a-9b8c-7d6e5f4a3b2c")]
COUNTS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
WORDS = ["The ", "cache ", "hit."]


@dataclass(frozen=True)
class Api:
    path: str
    request: dict
    frames: object  # Tokens -> the stream's messages
    model: str | None  # as the report names it


def _converse_frames(tokens: Tokens) -> list[bytes]:
    return bedrock.converse_stream(bedrock.converse_usage(tokens), WORDS)


def _invoke_frames(tokens: Tokens) -> list[bytes]:
    return bedrock.invoke_stream(anthropic.events(anthropic.usage(tokens), WORDS, "claude-sonnet-4-6"),
                                 bedrock.invocation_metrics(tokens))


APIS = {
    "converse-stream": Api("/model/anthropic.claude-sonnet-4-6-v1:0/converse-stream",
                           {"system": [{"text": "Be brief."}],
                            "messages": [{"role": "user", "content": [{"text": "Say hi."}]}]},
                           _converse_frames, None),
    "invoke-with-response-stream": Api("/model/anthropic.claude-sonnet-4-6-v1:0/invoke-with-response-stream",
                                       {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
                                        "system": "Be brief.", "messages": [{"role": "user", "content": "Say hi."}]},
                                       _invoke_frames, "claude-sonnet-4-6"),
}


@dataclass
class FakeBedrock:
    """Answers each request with the next planned stream: its first messages, then, once the client has read them,
    the rest. A proxy that held the stream back would be caught (the fake would wait in vain), not merely slow."""

    plans: list[list[bytes]]
    sent: list[bytes] = field(default_factory=list)
    released_in_time: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client_has_first = [threading.Event() for _ in self.plans]

    def answer(self, request: RawRequest) -> list[Action]:
        n = len(self.sent)
        first, rest = b"".join(self.plans[n][:2]), b"".join(self.plans[n][2:])
        self.sent.append(first + rest)
        return [Send(chunked_head(200, EVENT_STREAM) + chunk(first)),
                Note(lambda: self.released_in_time.append(self.client_has_first[n].wait(20))),
                Send(chunk(rest) + chunk(b""))]

    def call(self, port: int, api: Api, n: int) -> bytes:
        """The n-th call, read as an SDK reads a stream: the first messages as soon as they come, then the rest."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("POST", api.path, json.dumps(api.request),
                         {"content-type": "application/json", "accept": "application/vnd.amazon.eventstream",
                          "x-session-id": "bedrock-1", "authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE"})
            response = conn.getresponse()
            assert response.status == 200
            first = response.read(len(b"".join(self.plans[n][:2])))
            self.client_has_first[n].set()
            return first + response.read()
        finally:
            conn.close()


@pytest.mark.parametrize("name", list(APIS))
def test_bedrock_streams_pass_at_once_byte_for_byte_and_are_audited(mitmdump, tmp_path: Path, name: str) -> None:
    api = APIS[name]
    cold, warm = Tokens(30, read=0, creation=1538, output=95), Tokens(30, read=1538, creation=0, output=95)
    throttled = [*api.frames(warm)[:3], bedrock.exception("throttlingException", "Too many tokens, please wait.")]
    fake = FakeBedrock([api.frames(cold), api.frames(warm), throttled])
    report = tmp_path / "report.json"
    with ScriptedUpstream(fake.answer) as upstream:
        proxy = mitmdump(upstream.url, ("inject.py", "cache_audit.py"),
                         options={"cache_report": str(report), "cache_expect": "warm"})
        received = [fake.call(proxy.port, api, n) for n in range(len(fake.plans))]
        status = proxy.stop()
    assert upstream.errors == []
    assert received == fake.sent, "the client gets exactly the bytes the upstream sent"
    assert fake.released_in_time == [True, True, True], "each stream's first messages reached the client at once"
    assert all(r.header("x-session-id") == "bedrock-1" for r in upstream.requests)
    assert status == 0, proxy.output  # warm: the second turn hit; the error turn is counted nowhere

    turns = [t for s in json.loads(report.read_text())["sessions"] for t in s["turns"]]
    assert [(t["verdict"], t["provider"], t["model"], tuple(t[k] for k in COUNTS)) for t in turns] == [
        ("cold", "bedrock", api.model, (30, 1538, 0, 95)),
        ("hit", "bedrock", api.model, (30, 0, 1538, 95)),
        ("error", None, None, (None, None, None, None)) if name == "converse-stream" else
        ("error", "bedrock", api.model, (30, 0, 1538, 1)),  # message_start came before the exception
    ]
    assert all(t["stream"] is True for t in turns)  # an AWS event stream is a stream, as SSE is
    assert "error=throttlingException" in proxy.output and "Too many tokens" not in proxy.output
    assert "Traceback" not in proxy.output and "WARNING" not in proxy.output
