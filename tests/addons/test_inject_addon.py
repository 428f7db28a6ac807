"""The inject addon inside mitmproxy's test harness: options, scope, headers, metadata, logs."""

from __future__ import annotations

import gzip
import json
import logging

import pytest
from inject import Inject
from mitmproxy import exceptions, http
from mitmproxy.net import encoding
from mitmproxy.test import taddons, tflow

BODY = {"model": "claude-sonnet-4-5", "system": "You are helpful.", "messages": [{"role": "user", "content": "hi"}]}


def make_flow(path: str = "/v1/messages", body: dict | bytes | None = None, headers: dict | None = None,
              method: str = "POST", host: str = "api.example.com") -> http.HTTPFlow:
    content = body if isinstance(body, bytes) else json.dumps(BODY if body is None else body).encode()
    request = http.Request.make(method, f"https://{host}{path}", b"",
                                {"content-type": "application/json", **(headers or {})})
    request.raw_content = content  # as sent: already encoded when a content-encoding header is given
    request.headers["content-length"] = str(len(content))
    return tflow.tflow(req=request)


async def run(addon: Inject, flow: http.HTTPFlow, tctx: taddons.context) -> http.HTTPFlow:
    await tctx.cycle(addon, flow)
    return flow


@pytest.fixture
def addon() -> Inject:
    return Inject()


async def test_fingerprinted_session_sets_both_headers(addon: Inject, caplog) -> None:
    caplog.set_level(logging.INFO)
    with taddons.context(addon) as tctx:
        first = await run(addon, make_flow(), tctx)
        second = await run(addon, make_flow(body={**BODY, "messages": BODY["messages"] + [
            {"role": "assistant", "content": "hello"}, {"role": "user", "content": "more"}]}), tctx)
    session_id = first.request.headers["X-Session-Id"]
    assert session_id.startswith("fp_")
    assert first.request.headers["x-session-affinity"] == session_id
    assert second.request.headers["X-Session-Id"] == session_id
    assert first.metadata["cachepin"] == {"session_id": session_id, "source": "fingerprint",
                                          "injected": ["X-Session-Id", "x-session-affinity"]}
    assert first.comment == f"cachepin: session {session_id} (fingerprint)"
    new_session_lines = [r.getMessage() for r in caplog.records if "new session" in r.getMessage()]
    assert new_session_lines == [f"cachepin inject new session={session_id} source=fingerprint "
                                 "headers=X-Session-Id,x-session-affinity"]


@pytest.mark.parametrize(
    "client_headers, expected_id, expected_source, injected",
    [
        ({"X-Claude-Code-Session-Id": "cc-1"}, "cc-1", "header:x-claude-code-session-id",
         ["X-Session-Id", "x-session-affinity"]),
        ({"x-session-affinity": "ses_1"}, "ses_1", "header:x-session-affinity", ["X-Session-Id"]),
        ({"x-session-id": "ses_2", "x-session-affinity": "ses_2"}, "ses_2", "header:x-session-id", []),
        ({"session-id": "019a7c3e"}, "019a7c3e", "header:session-id", ["X-Session-Id", "x-session-affinity"]),
    ],
)
async def test_client_ids_are_honoured_and_mirrored(addon: Inject, client_headers: dict, expected_id: str,
                                                    expected_source: str, injected: list[str]) -> None:
    with taddons.context(addon) as tctx:
        flow = await run(addon, make_flow(headers=client_headers), tctx)
    assert flow.request.headers["x-session-id"] == expected_id
    assert flow.request.headers["x-session-affinity"] == expected_id
    assert flow.metadata["cachepin"]["source"] == expected_source
    assert flow.metadata["cachepin"]["injected"] == injected


async def test_existing_values_kept_unless_override(addon: Inject) -> None:
    headers = {"x-session-id": "mine", "x-session-affinity": "other"}
    with taddons.context(addon) as tctx:
        kept = await run(addon, make_flow(headers=headers), tctx)
        tctx.configure(addon, affinity_override=True)
        replaced = await run(addon, make_flow(headers=headers), tctx)
    assert (kept.request.headers["x-session-id"], kept.request.headers["x-session-affinity"]) == ("mine", "other")
    assert (replaced.request.headers["x-session-id"], replaced.request.headers["x-session-affinity"]) == (
        "mine", "mine")


async def test_fixed_session_option(addon: Inject) -> None:
    with taddons.context(addon) as tctx:
        tctx.configure(addon, affinity_session="ci-run-7")
        flow = await run(addon, make_flow(headers={"x-session-id": "client"}), tctx)
    assert flow.request.headers["x-session-affinity"] == "ci-run-7"
    assert flow.metadata["cachepin"]["source"] == "option"


@pytest.mark.parametrize(
    "method, path, host",
    [("GET", "/v1/models", "api.example.com"), ("POST", "/v1/embeddings", "api.example.com"),
     ("POST", "/upload", "example.org"), ("POST", "/zen/v1/messages", "opencode.ai")],
)
async def test_out_of_scope_flows_are_untouched(addon: Inject, method: str, path: str, host: str) -> None:
    with taddons.context(addon) as tctx:
        flow = make_flow(path, method=method, host=host)
        before = flow.request.get_state()
        await run(addon, flow, tctx)
    assert flow.request.get_state() == before
    assert "cachepin" not in flow.metadata and not flow.comment


async def test_scope_and_exclude_options(addon: Inject) -> None:
    with taddons.context(addon) as tctx:
        tctx.configure(addon, affinity_scope="~u /api/generate", affinity_exclude="~d internal")
        custom = await run(addon, make_flow("/api/generate"), tctx)
        standard = await run(addon, make_flow("/v1/messages"), tctx)
        excluded = await run(addon, make_flow("/api/generate", host="internal.example"), tctx)
    assert "x-session-id" in custom.request.headers
    assert "x-session-id" not in standard.request.headers
    assert "x-session-id" not in excluded.request.headers


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("affinity_scope", "~~bad(", "affinity_scope: invalid filter expression"),
        ("affinity_exclude", "~q ~", "affinity_exclude: invalid filter expression"),
        ("affinity_session", "has space", "affinity_session must be"),
        ("affinity_headers", [], "must name at least one header"),
        ("affinity_headers", ["X Bad"], "not a valid header name"),
        ("affinity_headers", ["X-Session-Id", "Authorization"], "carries credentials or framing"),
        ("affinity_headers", ["content-length"], "carries credentials or framing"),
        ("affinity_headers", ["Anthropic-Version"], "carries credentials or framing"),
        ("affinity_headers", ["X-Amz-Date"], "carries credentials or framing"),
    ],
)
def test_invalid_options_are_refused(addon: Inject, option: str, value: object, message: str) -> None:
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match=message):
            tctx.configure(addon, **{option: value})


async def test_custom_header_names(addon: Inject) -> None:
    with taddons.context(addon) as tctx:
        tctx.configure(addon, affinity_headers=["x-bf-session-id", "X-Kong-LLM-Request-ID"])
        flow = await run(addon, make_flow(headers={"x-session-id": "s1"}), tctx)
    assert flow.request.headers["x-bf-session-id"] == flow.request.headers["X-Kong-LLM-Request-ID"] == "s1"


async def test_invalid_client_id_is_warned_and_replaced(addon: Inject, caplog) -> None:
    caplog.set_level(logging.WARNING)
    with taddons.context(addon) as tctx:
        flow = await run(addon, make_flow(headers={"x-session-id": "x" * 300}), tctx)
    assert flow.metadata["cachepin"]["source"] == "fingerprint"
    assert flow.request.headers["x-session-id"].startswith("fp_")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["cachepin inject: ignored the session id in header:x-session-id: "
                        "not 1-256 printable ASCII characters without spaces"]
    assert "x" * 300 not in caplog.text


@pytest.mark.parametrize("encoding_name", ["gzip", "zstd", "br", "deflate"])
async def test_encoded_bodies_are_read_and_not_altered(addon: Inject, encoding_name: str) -> None:
    raw = json.dumps({**BODY, "metadata": {"user_id": json.dumps({"session_id": "from-body"})}}).encode()
    encoded = encoding.encode(raw, encoding_name)
    with taddons.context(addon) as tctx:
        flow = await run(addon, make_flow(body=encoded, headers={"content-encoding": encoding_name}), tctx)
    assert flow.metadata["cachepin"]["source"] == "body:metadata.user_id"
    assert flow.request.headers["x-session-id"] == "from-body"
    assert flow.request.raw_content == encoded


@pytest.mark.parametrize(
    "path, body",
    [("/v1/chat/completions", {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}),
     ("/v1/responses", {"model": "gpt-5", "instructions": "be brief", "input": "hi"})],
)
async def test_prompt_cache_key_option(addon: Inject, path: str, body: dict) -> None:
    raw = gzip.compress(json.dumps(body).encode())
    with taddons.context(addon) as tctx:
        off = await run(addon, make_flow(path, body=raw, headers={"content-encoding": "gzip"}), tctx)
        tctx.configure(addon, affinity_prompt_cache_key=True)
        on = await run(addon, make_flow(path, body=raw, headers={"content-encoding": "gzip"}), tctx)
        kept = await run(addon, make_flow(path, body={**body, "prompt_cache_key": "client-key"}), tctx)
        anthropic = await run(addon, make_flow("/v1/messages", body=BODY), tctx)
    assert off.request.raw_content == raw
    assert json.loads(on.request.content) == {"prompt_cache_key": on.metadata["cachepin"]["session_id"], **body}
    assert on.request.headers["content-encoding"] == "gzip"
    assert json.loads(kept.request.content)["prompt_cache_key"] == "client-key"
    assert "prompt_cache_key" not in json.loads(anthropic.request.content)


async def test_streamed_request_pins_from_headers_only(addon: Inject, caplog) -> None:
    caplog.set_level(logging.WARNING)
    with taddons.context(addon):
        with_header = make_flow(headers={"x-claude-code-session-id": "cc-9"})
        with_header.request.stream = True
        addon.requestheaders(with_header)
        without = make_flow()
        without.request.stream = True
        addon.requestheaders(without)
        addon.request(without)
    assert with_header.request.headers["x-session-id"] == "cc-9"
    assert "x-session-id" not in without.request.headers
    assert "is streamed and its headers carry no session id" in caplog.text


async def test_replayed_flows_are_not_touched(addon: Inject) -> None:
    with taddons.context(addon) as tctx:
        flow = make_flow()
        flow.live = False
        await run(addon, flow, tctx)
    assert "x-session-id" not in flow.request.headers


async def test_existing_comment_is_kept(addon: Inject) -> None:
    with taddons.context(addon) as tctx:
        flow = make_flow(headers={"x-session-id": "s"})
        flow.comment = "look at this"
        await run(addon, flow, tctx)
    assert flow.comment == "look at this\ncachepin: session s (header:x-session-id)"


@pytest.mark.parametrize("body", [b"not json", b"[]", b"", b"\x00\xff" * 100, b'{"messages": 5}'])
async def test_unreadable_bodies_pass_untouched(addon: Inject, body: bytes) -> None:
    with taddons.context(addon) as tctx:
        flow = await run(addon, make_flow(body=body), tctx)
    assert "x-session-id" not in flow.request.headers
    assert flow.request.raw_content == body


async def test_an_invalid_header_before_a_valid_one_is_warned(addon: Inject, caplog) -> None:
    caplog.set_level(logging.WARNING)
    with taddons.context(addon) as tctx:
        flow = await run(addon, make_flow(headers={"x-session-id": "bad id", "x-session-affinity": "good"}), tctx)
    assert flow.metadata["cachepin"]["session_id"] == "good"
    assert flow.request.headers["x-session-affinity"] == "good"
    assert [r.getMessage() for r in caplog.records] == [
        "cachepin inject: ignored the session id in header:x-session-id: "
        "not 1-256 printable ASCII characters without spaces"]
