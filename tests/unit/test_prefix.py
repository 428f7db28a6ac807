"""What the performance work changed must still be right: shared parses, remembered digests, packed turns,
and the audit reading requests after they went upstream. No timings here: scripts/bench measures those."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import tracemalloc
import uuid

import cache_audit
import pytest
from cache_audit import CacheAudit
from inject import Inject
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from cachepin.audit import RequestFacts
from cachepin.request import body, prefix
from cachepin.request.body import parse_json_object, reuse
from cachepin.request.dialects import Dialect
from cachepin.request.prefix import prefix_blocks
from cachepin.response.usage import Usage
from cachepin.turns.explain import Explanation, Reason
from cachepin.turns.ledger import Ledger
from cachepin.turns.turn import Turn, Verdict


def fresh(data: bytes) -> bytes:
    """A new bytes object with this content (literals are shared constants)."""
    return bytes(bytearray(data))


# --- one parse per body ---------------------------------------------------------------------------------------


def test_a_stashed_parse_serves_the_same_bytes_object() -> None:
    raw = fresh(b'{"model": "m", "messages": []}')
    first = parse_json_object(raw)
    assert first == {"model": "m", "messages": []}
    assert reuse((raw, first), raw) is first


def test_equal_content_in_another_object_is_parsed_again() -> None:
    raw, other = fresh(b'{"a": 1}'), fresh(b'{"a": 1}')
    first = parse_json_object(raw)
    assert reuse((raw, first), other) is None  # another object: the body was edited since
    second = parse_json_object(other)
    assert second == first and second is not first


@pytest.mark.parametrize("data", [None, b"", b"not json", b"[1, 2]"])
def test_reuse_never_parses_and_never_invents(data: bytes | None) -> None:
    raw = fresh(data) if data else data
    assert reuse((raw, parse_json_object(raw)), raw) is None
    assert parse_json_object(raw) is None
    assert reuse(None, raw) is None and reuse((raw,), raw) is None


# --- remembered block digests ---------------------------------------------------------------------------------


def anthropic_body(turns: int, breakpoint_on_last: bool = True) -> dict:
    messages: list[dict] = []
    for i in range(turns):
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": f"output {i}\n\"quoted\" → ü"}]})
        messages.append({"role": "assistant", "content": [
            {"type": "text", "text": f"answer {i}"},
            {"type": "tool_use", "id": f"toolu_{i + 1}", "name": "Read", "input": {"path": f"f{i}.py", "n": i}}]})
    if breakpoint_on_last:
        messages[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    return {"model": "claude-sonnet-4-5", "system": [{"type": "text", "text": "Be brief."}],
            "tools": [{"name": "Read", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}],
            "messages": messages}


def as_tuples(blocks: list[prefix.Block]) -> list[tuple]:
    return [(b.path, b.digest, b.tokens, b.breakpoint, b.ttl) for b in blocks]


def cold(dialect: Dialect, body: dict) -> list[tuple]:
    prefix._memo.clear()
    return as_tuples(prefix_blocks(dialect, body))


def test_remembered_blocks_equal_freshly_measured_ones() -> None:
    earlier, later = anthropic_body(3), anthropic_body(4)  # the next turn: same blocks, breakpoint moved on
    expected = cold(Dialect.ANTHROPIC, later)
    prefix._memo.clear()
    prefix_blocks(Dialect.ANTHROPIC, earlier)
    assert as_tuples(prefix_blocks(Dialect.ANTHROPIC, later)) == expected
    assert as_tuples(prefix_blocks(Dialect.ANTHROPIC, later)) == expected


def test_digest_is_sha256_of_role_and_canonical_json_with_or_without_memo() -> None:
    block = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "line\n\"x\" → ü",
             "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    body = {"messages": [{"role": "user", "content": [block]}]}
    canonical = json.dumps({k: v for k, v in block.items() if k != "cache_control"}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"user\x00{canonical}".encode()).digest()[:16]
    expected = [("messages[0].content[0]", digest, (len(canonical) + 3) // 4, True, "1h")]
    assert cold(Dialect.ANTHROPIC, body) == expected
    assert as_tuples(prefix_blocks(Dialect.ANTHROPIC, body)) == expected


def test_json_types_are_told_apart_by_the_memo() -> None:
    values = [True, 1, 1.0, "True", None, [1], {"1": 1}]
    digests = set()
    for value in values:  # one after the other, so each could wrongly hit the one before
        body = {"input": [{"type": "function_call", "arguments": {"x": value}}]}
        (block,) = prefix_blocks(Dialect.OPENAI_RESPONSES, body)
        assert as_tuples([block]) == cold(Dialect.OPENAI_RESPONSES, body)
        digests.add(block.digest)
    assert len(digests) == len(values)


def test_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prefix, "MEMO_SIZE", 10)
    prefix._memo.clear()
    body = {"input": [f"item {i}" for i in range(50)]}
    blocks = as_tuples(prefix_blocks(Dialect.OPENAI_RESPONSES, body))
    assert len(prefix._memo) == 10
    assert blocks == cold(Dialect.OPENAI_RESPONSES, body)


def test_blocks_nested_deeper_than_python_recurses_are_still_measured() -> None:
    deep = json.loads("[" * 900 + "]" * 900)  # json parses it; a recursive Python walk would not
    (block,) = prefix_blocks(Dialect.OPENAI_RESPONSES, {"input": [deep]})
    canonical = "[" * 900 + "]" * 900
    assert block.digest == hashlib.sha256(f"item\x00{canonical}".encode()).digest()[:16]
    assert block.tokens == 450


# --- packed turns ---------------------------------------------------------------------------------------------


FULL = dict(index=3, started_at=1_700_000_000.123456, status=200, stream=True, verdict=Verdict.HIT,
            provider="anthropic", model="claude-sonnet-4-5-20250929", requested_model="claude-sonnet-4-5",
            input_tokens=0, cache_creation_input_tokens=1538, cache_read_input_tokens=2**40, output_tokens=85,
            cache_creation_5m=1538, cache_creation_1h=None, ttft_ms=412.625, duration_ms=None, error=None,
            miss=None)


@pytest.mark.parametrize("flow_id", [str(uuid.uuid4()), "f", "flow-0", str(uuid.uuid4()).upper(),
                                     "{12345678-1234-5678-1234-567812345678}", uuid.uuid4().hex, ""])
def test_a_turn_reads_back_what_it_was_given(flow_id: str) -> None:
    turn = Turn(flow_id=flow_id, **FULL)
    assert turn.flow_id == flow_id
    for name, value in FULL.items():
        assert getattr(turn, name) == value and type(getattr(turn, name)) is type(value), name


@pytest.mark.parametrize("odd", [{"cache_read_input_tokens": 2**70}, {"input_tokens": True}, {"started_at": 7},
                                 {"ttft_ms": float("nan")}, {"output_tokens": -1}])
def test_values_that_do_not_pack_exactly_are_kept_as_they_came(odd: dict) -> None:
    turn = Turn(flow_id="f", **{**FULL, **odd})
    ((name, value),) = odd.items()
    got = getattr(turn, name)
    assert got is value or got == value and type(got) is type(value)
    assert turn.cache_creation_input_tokens == 1538


def test_turns_compare_and_print_by_their_fields() -> None:
    flow_id = str(uuid.uuid4())
    turn = Turn(flow_id=flow_id, **FULL)
    assert turn == Turn(flow_id=flow_id, **FULL)
    assert turn != Turn(flow_id=flow_id, **{**FULL, "output_tokens": 86})
    assert f"flow_id='{flow_id}'" in repr(turn) and "cache_read_input_tokens=1099511627776" in repr(turn)
    miss = Explanation(Reason.ROUTING, "later", {})
    turn.miss = miss
    assert turn.miss is miss


def test_a_five_turn_session_holds_at_most_2_kb() -> None:
    """What the audit records per turn: UUID flow ids, timings, Anthropic usage (realistic magnitudes)."""
    sessions = 400
    gc.collect()
    tracemalloc.start()
    try:
        ledger = Ledger()
        for s in range(sessions):
            session_id = f"fp_{s:032x}"
            for t in range(5):
                usage = Usage("anthropic", "claude-sonnet-4-5", 3 + t, 1000 + s + t, 40_000 + s * 7 + t, 300 + t,
                              1000 + s + t, 0)
                ledger.record(session_id, "fingerprint", flow_id=str(uuid.uuid4()), started_at=1.7e9 + s + t / 10,
                              status=200, stream=True, usage=usage, model="claude-sonnet-4-5",
                              ttft_ms=300.5 + t, duration_ms=2000.25 + s)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert ledger.totals.requests == sessions * 5
    assert held / sessions <= 2048


# --- the audit reads requests after they went upstream --------------------------------------------------------


def llm_flow(body: dict, headers: dict | None = None) -> http.HTTPFlow:
    request = http.Request.make("POST", "https://api.example.com/v1/messages", json.dumps(body).encode(),
                                {"content-type": "application/json", **(headers or {})})
    return tflow.tflow(req=request, resp=False)


def answer(flow: http.HTTPFlow, read: int) -> None:
    usage = {"input_tokens": 5, "cache_creation_input_tokens": 100, "cache_read_input_tokens": read,
             "output_tokens": 7}
    flow.response = http.Response.make(200, json.dumps({"type": "message", "model": "claude-sonnet-4-5",
                                                        "usage": usage}).encode(),
                                       {"content-type": "application/json"})


def first_turn(addon: CacheAudit) -> Turn:
    (recorded,) = addon.ledger.sessions
    return recorded.turns[0]


def compares_next_turn(addon: CacheAudit, body: dict) -> bool:
    """Whether the explainer kept the first turn: a repeat of ``body`` that reads nothing gets a miss reason."""
    flow = llm_flow(body, {"x-session-id": "s1"})
    answer(flow, read=0)
    addon.response(flow)
    (recorded,) = addon.ledger.sessions
    return recorded.turns[-1].miss is not None


async def test_the_request_is_read_before_its_response_arrives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_audit, "READ_DELAY", 0)
    addon = CacheAudit()
    with taddons.context(addon):
        flow = llm_flow(anthropic_body(2), {"x-session-id": "s1"})
        addon.request(flow)
        for _ in range(10):
            await asyncio.sleep(0)
        assert isinstance(addon.requests[flow.id], RequestFacts)
        flow.request.content = b"not the body that was sent"  # read already: this must not matter
        answer(flow, read=0)
        addon.response(flow)
        assert not addon.requests
        assert compares_next_turn(addon, anthropic_body(2))
    turn = first_turn(addon)
    # a continuation that read nothing, seen by a proxy that never saw its earlier turns: still a miss
    assert (turn.requested_model, turn.verdict, turn.position) == ("claude-sonnet-4-5", Verdict.MISS, "continuation")


async def test_a_response_before_the_read_reads_the_request_itself() -> None:
    addon = CacheAudit()
    with taddons.context(addon):
        for read in (0, 0):  # the second turn misses: explained from both requests' snapshots
            flow = llm_flow(anthropic_body(2), {"x-session-id": "s1"})
            addon.request(flow)
            answer(flow, read)
            addon.response(flow)
    (recorded,) = addon.ledger.sessions
    assert [turn.requested_model for turn in recorded.turns] == ["claude-sonnet-4-5"] * 2
    assert recorded.turns[1].miss.reason == "below_minimum"  # a short prompt: compared, explained
    assert not addon.requests


def test_a_response_without_a_request_hook_is_still_read() -> None:
    addon = CacheAudit()
    with taddons.context(addon):
        flow = llm_flow(anthropic_body(1), {"x-session-id": "s1"})
        answer(flow, read=0)
        addon.response(flow)
        assert compares_next_turn(addon, anthropic_body(1))
    turn = first_turn(addon)
    assert turn.requested_model == "claude-sonnet-4-5"


async def test_both_addons_parse_a_request_body_once(monkeypatch: pytest.MonkeyPatch) -> None:
    inject, audit = Inject(), CacheAudit()
    flow = llm_flow(anthropic_body(3))  # no session header: inject fingerprints the body
    parsed: list[object] = []
    real_loads = json.loads
    monkeypatch.setattr(body.json, "loads", lambda data, *a, **k: parsed.append(data) or real_loads(data, *a, **k))
    with taddons.context(inject, audit) as tctx:
        tctx.configure(audit)
        for hook in ("requestheaders", "request"):
            for addon in (inject, audit):
                getattr(addon, hook)(flow)
        await asyncio.sleep(cache_audit.READ_DELAY * 2)
        answer(flow, read=0)
        audit.response(flow)
    assert parsed.count(flow.request.raw_content) == 1
    assert first_turn(audit).requested_model == "claude-sonnet-4-5"
    assert flow.metadata["cachepin"]["source"] == "fingerprint"


def test_requests_that_never_end_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_audit, "MAX_PENDING", 3)
    addon = CacheAudit()
    with taddons.context(addon):
        flows = [llm_flow(anthropic_body(1)) for _ in range(10)]
        for flow in flows:
            addon.request(flow)
        assert list(addon.requests) == [flow.id for flow in flows[-3:]]
        flows[-1].error = tflow.terr()
        addon.error(flows[-1])
        assert flows[-1].id not in addon.requests
