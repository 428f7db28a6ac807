"""The simulator's HTTP layer, checked with the official anthropic and openai SDKs (and raw HTTP where the SDKs
hide the wire) against servers started in a thread on 127.0.0.1:0 per test. Other tests and scripts trust the
simulator's numbers as ground truth, so its usage must equal what its cache did, on the wire and in the log.
"""

from __future__ import annotations

import contextlib
import gzip
import http.client
import itertools
import json
import re
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anthropic
import openai
import pytest
from simulator_support import CLAUDE, EPHEMERAL, GPT, FakeClock, claude_turns, raw_post, sha256_account

from cachepin_tools.simulator import server as sim

HI = [{"role": "user", "content": "hi"}]


# --- configuration and helpers -------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"accounts": 0},
        {"min_tokens": -1},
        {"model_min_tokens": {"x": -1}},
        {"ttl_scale": 0},
        {"event_delay": -0.1},
        {"fail_rate": 1.5},
        {"fail_rate": -0.1},
    ],
)
def test_config_rejects_meaningless_values(options: dict) -> None:
    with pytest.raises(ValueError):
        sim.SimConfig(**options)


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("gzip", True),
        ("gzip, deflate, br, zstd", True),
        ("br;q=1.0, GZIP;q=0.5", True),
        ("*", True),
        ("identity", False),
        ("", False),
        ("gzip;q=0", False),
        ("gzip;q=0.000, br", False),
        ("x-gzip-like", False),
    ],
)
def test_accepts_gzip(header: str, accepted: bool) -> None:
    assert sim.accepts_gzip(header) is accepted


# --- HTTP with the real SDKs ---------------------------------------------------------------------


@dataclass
class Server:
    url: str
    log: Path
    stack: contextlib.ExitStack = field(repr=False)

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def anthropic(self, **options) -> anthropic.Anthropic:
        client = anthropic.Anthropic(base_url=self.url, api_key="sk-ant-test", max_retries=0, **options)
        self.stack.callback(client.close)
        return client

    def openai(self, **options) -> openai.OpenAI:
        client = openai.OpenAI(base_url=f"{self.url}/v1", api_key="sk-test", max_retries=0, **options)
        self.stack.callback(client.close)
        return client


@pytest.fixture
def start(tmp_path: Path, direct: None) -> Iterator[Callable[..., Server]]:
    """Starts simulators on 127.0.0.1:0 with a fresh log each; stops them (after their clients) at teardown."""
    numbers = itertools.count()
    with contextlib.ExitStack() as stack:

        def launch(clock: Callable[[], float] | None = None, **options) -> Server:
            log = tmp_path / f"gateway-{next(numbers)}.jsonl"
            config = sim.SimConfig(log=log, **options)
            url = stack.enter_context(sim.serve_in_thread(config, clock=clock or FakeClock()))
            return Server(url, log, stack)

        yield launch


def sse_events(payload: bytes) -> list[tuple[str | None, str]]:
    """(event name, data) per SSE frame."""
    events = []
    for frame in payload.decode().strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.splitlines())
        events.append((fields.get("event"), fields["data"]))
    return events


ANTHROPIC_COUNTS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")


def anthropic_usage(client: anthropic.Anthropic, mode: str, body: dict) -> dict:
    """The usage a client ends up with, for each way of calling the Messages API."""
    if mode == "json":
        return client.messages.create(**body).usage.model_dump(exclude_none=True)
    if mode == "helper":
        with client.messages.stream(**body) as stream:
            return stream.get_final_message().usage.model_dump(exclude_none=True)
    usage: dict = {}
    for event in client.messages.create(**body, stream=True):  # the documented rule: later fields replace
        if event.type == "message_start":
            usage = event.message.usage.model_dump(exclude_none=True)
        elif event.type == "message_delta":
            usage |= event.usage.model_dump(exclude_none=True)
    return usage


@pytest.mark.parametrize("mode", ["json", "raw-stream", "helper"])
def test_anthropic_sdk_sees_the_prefix_grow_and_the_log_agrees(start: Callable[..., Server], mode: str) -> None:
    server = start()
    client = server.anthropic(default_headers={"X-Session-Id": "ses_claude"})
    usages = [anthropic_usage(client, mode, claude_turns(n)) for n in (1, 2, 3)]
    # 800 chars of system = 200 tokens; "question N" = 3 tokens; "ok" = 1 token.
    assert [tuple(u[k] for k in ANTHROPIC_COUNTS[:3]) for u in usages] == [(0, 203, 0), (0, 4, 203), (0, 4, 207)]
    records = server.records()
    assert {(r["account"], r["route"], r["session"]) for r in records} == {
        (sha256_account("ses_claude"), "x-session-id", "ses_claude")
    }
    for record, usage in zip(records, usages, strict=True):
        assert record["usage"] == usage
        assert {k: record["cache"][k] for k in ANTHROPIC_COUNTS} == {k: usage[k] for k in ANTHROPIC_COUNTS}
        assert (record["status"], record["stream"], record["completed"]) == (200, mode != "json", True)


def test_anthropic_stream_sends_the_real_event_sequence(start: Callable[..., Server]) -> None:
    server = start()
    status, headers, payload = raw_post(f"{server.url}/v1/messages", claude_turns(1) | {"stream": True})
    events = sse_events(payload)
    names = [name for name, _ in events]
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert [json.loads(data)["type"] for _, data in events] == names
    delta_usage = json.loads(events[-2][1])["usage"]
    assert delta_usage == {k: server.records()[0]["usage"][k] for k in ANTHROPIC_COUNTS}


def test_anthropic_sdk_answers_with_the_cache_outcome_in_text(start: Callable[..., Server]) -> None:
    message = start().anthropic().messages.create(**claude_turns(1))
    assert message.content[0].text == "gateway_sim account 0: read 0, wrote 203, uncached 0 input tokens."
    assert (message.role, message.stop_reason, message.model) == ("assistant", "end_turn", CLAUDE)


def chat_usage(client: openai.OpenAI, mode: str, body: dict) -> dict | None:
    if mode == "json":
        return client.chat.completions.create(**body).usage.model_dump(exclude_none=True)
    options = {"stream_options": {"include_usage": True}} if mode == "stream-usage" else {}
    chunks = list(client.chat.completions.create(**body, stream=True, **options))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("gateway_sim account")
    with_usage = [c for c in chunks if c.usage is not None]
    if mode == "stream-no-usage":
        assert with_usage == []
        return None
    assert with_usage == [chunks[-1]] and chunks[-1].choices == []
    return chunks[-1].usage.model_dump(exclude_none=True)


@pytest.mark.parametrize("mode", ["json", "stream-usage", "stream-no-usage"])
def test_openai_chat_sdk_reports_cached_tokens_and_the_log_agrees(start: Callable[..., Server], mode: str) -> None:
    server = start()
    client = server.openai()
    body = {"model": GPT, "messages": [{"role": "system", "content": "S" * 1200}, {"role": "user", "content": "hi"}]}
    usages = [chat_usage(client, mode, body | {"prompt_cache_key": "pck-1"}) for _ in range(2)]
    records = server.records()
    assert [r["cache"]["cache_read_input_tokens"] for r in records] == [0, 256]
    assert [r["cache"]["input_tokens"] for r in records] == [301, 45]
    assert {(r["route"], r["account"]) for r in records} == {("prompt_cache_key", sha256_account("pck-1"))}
    assert [r["usage"] for r in records] == usages
    if usages[1] is not None:
        assert (usages[1]["prompt_tokens"], usages[1]["prompt_tokens_details"]["cached_tokens"]) == (301, 256)


def test_openai_chat_stream_ends_with_a_usage_chunk_then_done(start: Callable[..., Server]) -> None:
    server = start()
    body = {"model": GPT, "messages": HI, "stream": True}
    _, _, payload = raw_post(f"{server.url}/v1/chat/completions", body | {"stream_options": {"include_usage": True}})
    events = sse_events(payload)
    assert {name for name, _ in events} == {None}
    assert events[-1][1] == "[DONE]"
    last = json.loads(events[-2][1])
    assert (last["object"], last["choices"]) == ("chat.completion.chunk", [])
    assert last["usage"] == server.records()[0]["usage"]
    assert json.loads(events[-3][1])["choices"][0]["finish_reason"] == "stop"


def responses_usage(client: openai.OpenAI, mode: str, body: dict) -> dict:
    if mode == "json":
        response = client.responses.create(**body)
    elif mode == "helper":
        with client.responses.stream(**body) as stream:
            response = stream.get_final_response()
    else:
        events = list(client.responses.create(**body, stream=True))
        names = [e.type for e in events]
        assert names[:4] == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
        ]
        assert names[-4:] == [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
        assert [e.sequence_number for e in events] == list(range(len(events)))
        response = events[-1].response
    assert response.output_text.startswith("gateway_sim account")
    return response.usage.model_dump(exclude_none=True)


@pytest.mark.parametrize("mode", ["json", "raw-stream", "helper"])
def test_openai_responses_sdk_reports_cached_tokens_and_the_log_agrees(start: Callable[..., Server], mode: str) -> None:
    server = start()
    client = server.openai(default_headers={"x-session-affinity": "ses_codex"})
    body = {"model": GPT, "instructions": "S" * 1200, "input": "hi"}
    usages = [responses_usage(client, mode, body) for _ in range(2)]
    assert [(u["input_tokens"], u["input_tokens_details"]["cached_tokens"]) for u in usages] == [(301, 0), (301, 256)]
    records = server.records()
    assert [r["usage"] for r in records] == usages
    assert {(r["route"], r["session"]) for r in records} == {("x-session-affinity", "ses_codex")}


GZIP_CASES = [
    pytest.param("/v1/messages", claude_turns(1), "message_stop", id="anthropic"),
    pytest.param("/v1/chat/completions", {"model": GPT, "messages": HI}, None, id="chat"),
    pytest.param("/v1/responses", {"model": GPT, "input": "hi"}, "response.completed", id="responses"),
]


@pytest.mark.parametrize(("path", "body", "last_event"), GZIP_CASES)
@pytest.mark.parametrize(
    ("flag", "accept", "compressed"),
    [(True, "gzip, deflate, br", True), (True, "identity", False), (False, "gzip", False), (True, "gzip;q=0", False)],
)
def test_gzip_sse_only_when_enabled_and_accepted(
    start: Callable[..., Server],
    path: str,
    body: dict,
    last_event: str | None,
    flag: bool,
    accept: str,
    compressed: bool,
) -> None:
    server = start(gzip_sse=flag)
    status, headers, payload = raw_post(server.url + path, body | {"stream": True}, {"Accept-Encoding": accept})
    assert status == 200
    assert (headers.get("Content-Encoding") == "gzip") is compressed
    assert payload.startswith(b"\x1f\x8b") is compressed
    events = sse_events(zlib.decompress(payload, wbits=47) if compressed else payload)
    assert events[-1][0] == last_event


def delta_text(event: object) -> str:
    """The text a streamed event adds, whichever API it comes from."""
    kind = getattr(event, "type", None)
    if kind == "content_block_delta":
        return event.delta.text
    if kind == "response.output_text.delta":
        return event.delta
    choices = getattr(event, "choices", None)
    return (choices[0].delta.content or "") if choices else ""


STREAMING_CALLS = {
    "anthropic": lambda s: s.anthropic().messages.with_streaming_response.create(**claude_turns(1), stream=True),
    "chat": lambda s: s.openai().chat.completions.with_streaming_response.create(model=GPT, messages=HI, stream=True),
    "responses": lambda s: s.openai().responses.with_streaming_response.create(model=GPT, input="hi", stream=True),
}


@pytest.mark.parametrize("api", STREAMING_CALLS)
def test_sdks_stream_through_gzip_sse(start: Callable[..., Server], api: str) -> None:
    server = start(gzip_sse=True, event_delay=0.001)
    with STREAMING_CALLS[api](server) as response:
        encoding = response.headers.get("content-encoding")
        text_out = "".join(delta_text(event) for event in response.parse())
    assert encoding == "gzip"
    assert re.fullmatch(r"gateway_sim account \d: read 0, wrote \d+, uncached \d+ input tokens\.", text_out)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"{not json", id="broken"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b"[1, 2]", id="not-an-object"),
        pytest.param(b"", id="empty"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions", "/v1/responses"])
def test_bad_json_is_a_400_in_the_providers_error_shape(start: Callable[..., Server], path: str, payload: bytes):
    server = start()
    status, headers, body = raw_post(server.url + path, payload)
    assert status == 400 and headers["Content-Type"].startswith("application/json")
    assert_error_shape(path, json.loads(body), "invalid_request_error")
    assert [(r["status"], r["usage"], r["path"]) for r in server.records()] == [(400, None, path)]


def assert_error_shape(path: str, body: dict, kind: str) -> None:
    """Anthropic: {"type": "error", "error": {type, message}}; OpenAI: {"error": {message, type, param, code}}."""
    if path == "/v1/messages":
        assert set(body) == {"type", "error"} and body["type"] == "error" and set(body["error"]) == {"type", "message"}
    else:
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == kind and isinstance(body["error"]["message"], str)


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/messages", {"model": CLAUDE, "messages": []}, "max_tokens"),
        ("/v1/messages", {"max_tokens": 5, "messages": []}, "model"),
        ("/v1/messages", {"model": CLAUDE, "max_tokens": 5, "messages": "hi"}, "messages"),
        ("/v1/chat/completions", {"model": GPT}, "messages"),
        ("/v1/chat/completions", {"messages": []}, "model"),
        ("/v1/responses", {"model": GPT}, "input"),
        ("/v1/responses", {"model": GPT, "input": 3}, "input"),
    ],
)
def test_missing_or_mistyped_fields_are_a_400_naming_the_field(
    start: Callable[..., Server], path: str, body: dict, param: str
) -> None:
    status, _, answer = raw_post(start().url + path, body)
    assert status == 400
    error = json.loads(answer)
    assert_error_shape(path, error, "invalid_request_error")
    assert param in error["error"]["message"]


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_compressed_request_bodies_are_accepted(start: Callable[..., Server], encoding: str) -> None:
    """Codex sends zstd (or gzip) request bodies."""
    compress = gzip.compress if encoding == "gzip" else pytest.importorskip("backports.zstd").compress
    body = compress(json.dumps({"model": GPT, "input": "hi"}).encode())
    status, _, _ = raw_post(f"{start().url}/v1/responses", body, {"Content-Encoding": encoding})
    assert status == 200


def test_five_breakpoints_are_rejected_through_the_sdk(start: Callable[..., Server]) -> None:
    server = start()
    system = [{"type": "text", "text": f"block {i}", "cache_control": EPHEMERAL} for i in range(5)]
    with pytest.raises(anthropic.BadRequestError) as caught:
        server.anthropic().messages.create(model=CLAUDE, max_tokens=5, system=system, messages=HI)
    assert caught.value.status_code == 400
    error = caught.value.response.json()
    assert_error_shape("/v1/messages", error, "invalid_request_error")
    assert "maximum of 4" in error["error"]["message"]


def call_anthropic(server: Server) -> object:
    return server.anthropic().messages.create(**claude_turns(1))


def call_chat(server: Server) -> object:
    return server.openai().chat.completions.create(model=GPT, messages=HI)


def call_responses(server: Server) -> object:
    return server.openai().responses.create(model=GPT, input="hi")


@pytest.mark.parametrize(
    ("call", "path", "error_type", "status", "kind"),
    [
        (call_anthropic, "/v1/messages", anthropic.InternalServerError, 529, "overloaded_error"),
        (call_chat, "/v1/chat/completions", openai.RateLimitError, 429, "requests"),
        (call_responses, "/v1/responses", openai.RateLimitError, 429, "requests"),
    ],
    ids=["anthropic-529", "chat-429", "responses-429"],
)
def test_fail_rate_one_answers_overloaded_or_rate_limited(
    start: Callable[..., Server], call: Callable, path: str, error_type: type, status: int, kind: str
) -> None:
    server = start(fail_rate=1.0)
    with pytest.raises(error_type) as caught:
        call(server)
    assert caught.value.status_code == status
    assert_error_shape(path, caught.value.response.json(), kind)
    assert [(r["status"], r["usage"], r["path"]) for r in server.records()] == [(status, None, path)]


def test_a_seeded_fail_rate_is_reproducible(start: Callable[..., Server]) -> None:
    body = {"model": GPT, "messages": HI}
    runs = []
    for _ in range(2):
        server = start(fail_rate=0.5, seed=3)
        runs.append([raw_post(f"{server.url}/v1/chat/completions", body)[0] for _ in range(20)])
    assert runs[0] == runs[1] and set(runs[0]) == {200, 429}


def test_a_stream_the_client_abandons_commits_nothing(start: Callable[..., Server]) -> None:
    server = start(event_delay=0.1)
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("POST", "/v1/messages", json.dumps(claude_turns(1) | {"stream": True}), {"X-Session-Id": "s"})
    response = connection.getresponse()
    assert response.read1(64).startswith(b"event: message_start")
    connection.close()  # gone long before the last of the paced events
    records = wait_for_records(server, 1)
    assert [(r["status"], r["completed"], r["usage"]) for r in records] == [(200, False, None)]
    client = server.anthropic(default_headers={"X-Session-Id": "s"})
    assert client.messages.create(**claude_turns(1)).usage.cache_read_input_tokens == 0


def wait_for_records(server: Server, count: int) -> list[dict]:
    """The log once it has ``count`` lines; the server writes them asynchronously to this test."""
    for _ in range(300):
        records = server.records()
        if len(records) >= count:
            return records
        time.sleep(0.05)
    raise AssertionError(f"the log never reached {count} lines: {server.records()}")


def test_models_endpoint_lists_for_both_sdks_and_is_logged_unrouted(start: Callable[..., Server]) -> None:
    server = start()
    anthropic_ids = [m.id for m in server.anthropic().models.list()]
    openai_ids = [m.id for m in server.openai().models.list()]
    assert anthropic_ids == openai_ids and len(openai_ids) >= 1
    assert [(r["method"], r["path"], r["account"], r["dialect"]) for r in server.records()] == [
        ("GET", "/v1/models", None, None)
    ] * 2


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, [0, 1, 2, 0, 1, 2]),
        ({"X-Session-Id": "ses_pinned"}, [sha256_account("ses_pinned")] * 6),
        ({"x-session-affinity": "ses_other"}, [sha256_account("ses_other")] * 6),
    ],
    ids=["round-robin", "x-session-id", "x-session-affinity"],
)
def test_http_routing_spreads_or_pins(start: Callable[..., Server], headers: dict, expected: list[int]) -> None:
    server = start()
    for _ in expected:
        raw_post(f"{server.url}/v1/messages", claude_turns(1), headers)
    records = server.records()
    assert [r["account"] for r in records] == expected
    reads = [r["cache"]["cache_read_input_tokens"] for r in records]
    assert reads == ([0, 0, 0, 203, 203, 203] if not headers else [0] + [203] * 5)


def test_http_cache_expires_on_the_injected_clock(start: Callable[..., Server]) -> None:
    clock = FakeClock()
    server = start(clock=clock, ttl_scale=0.5)
    client = server.anthropic(default_headers={"X-Session-Id": "s"})
    reads = []
    for step in (0.0, 149.0, 149.0, 151.0):
        clock.now += step
        reads.append(client.messages.create(**claude_turns(1)).usage.cache_read_input_tokens)
    assert reads == [0, 203, 203, 0]


# --- the command line, in process --------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["--fail-rate", "2"], ["--accounts", "0"], ["--model-min-tokens", "opus"], ["--model-min-tokens", "=5"]],
)
def test_cli_rejects_bad_values_before_listening(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        sim.main(argv)
    assert caught.value.code == 2
    assert "gateway_sim listening" not in capsys.readouterr().out
