"""Guarantee 4, load: 50 conversations of 10 turns each, all at once, through mitmdump with both addons in
front of the gateway simulator (3 accounts). Anthropic, Chat Completions and Responses, streamed and not.

Every turn is accounted exactly once; the report's totals, per session and overall, equal what the
simulator logged; no client sees another's events; and pinning holds under load (one account per
session, every turn after the first a hit).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
from logs import connections_closed

from cachepin_tools.harness.processes import Mitmdump, Simulator, wait_until

pytestmark = pytest.mark.e2e

CONVERSATIONS = 50
TURNS = 10
DIALECTS = ("anthropic", "chat", "responses")
FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")


@dataclass
class Conversation:
    number: int
    dialect: str
    seen: list[dict] = field(default_factory=list)  # per turn: the usage the client got, and the reply's id

    @property
    def system(self) -> str:
        return f"Conversation {self.number}. " + "You review code carefully and explain every change. " * 12


def _anthropic_body(conv: Conversation, history: list[dict], stream: bool) -> dict:
    messages = [dict(m) for m in history]
    last = messages[-1]
    last["content"] = [{"type": "text", "text": last["content"], "cache_control": {"type": "ephemeral"}}]
    return {"model": "claude-sonnet-4-6", "max_tokens": 64, "stream": stream,
            "system": [{"type": "text", "text": conv.system, "cache_control": {"type": "ephemeral"}}],
            "messages": messages}


def _request(conv: Conversation, history: list[dict], stream: bool) -> tuple[str, dict]:
    if conv.dialect == "anthropic":
        return "/v1/messages", _anthropic_body(conv, history, stream)
    if conv.dialect == "chat":
        body = {"model": "gpt-5", "stream": stream, "messages": [{"role": "system", "content": conv.system},
                                                                 *history]}
        if stream:
            body["stream_options"] = {"include_usage": True}
        return "/v1/chat/completions", body
    return "/v1/responses", {"model": "gpt-5", "stream": stream, "instructions": conv.system, "input": history}


def _events(raw: str) -> list[dict]:
    out = []
    for block in raw.replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].strip() for line in block.split("\n") if line.startswith("data:")]
        if data and data[0] != "[DONE]":
            out.append(json.loads("\n".join(data)))
    return out


def _read(conv: Conversation, payload: str, stream: bool) -> tuple[str, str, dict]:
    """The reply's id, its text and the usage the client saw; asserts that a stream is one reply only."""
    if not stream:
        body = json.loads(payload)
        if conv.dialect == "anthropic":
            return body["id"], body["content"][0]["text"], body["usage"]
        if conv.dialect == "chat":
            return body["id"], body["choices"][0]["message"]["content"], body["usage"]
        return body["id"], body["output"][0]["content"][0]["text"], body["usage"]
    events = _events(payload)
    if conv.dialect == "anthropic":
        start = events[0]["message"]
        ids = {start["id"]}
        text = "".join(e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta")
        usage = {**start["usage"], **next(e["usage"] for e in events if e["type"] == "message_delta")}
    elif conv.dialect == "chat":
        ids = {e["id"] for e in events}
        text = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
        usage = events[-1]["usage"]
    else:
        ids = {e["response"]["id"] for e in events if "response" in e}
        text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
        usage = next(e["response"]["usage"] for e in events if e["type"] == "response.completed")
    assert len(ids) == 1, f"events of several replies in one stream: {ids}"
    return ids.pop(), text, usage


async def _converse(client: httpx2.AsyncClient, base: str, conv: Conversation) -> None:
    history: list[dict] = []
    for turn in range(TURNS):
        history.append({"role": "user", "content": f"Step {turn} of conversation {conv.number}: go on."})
        stream = turn % 2 == 1
        path, body = _request(conv, history, stream)
        response = await client.post(base + path, json=body, headers={"x-api-key": "k", "authorization": "k"})
        assert response.status_code == 200, response.text
        reply_id, text, usage = _read(conv, response.text, stream)
        assert text.startswith("gateway_sim account"), "another conversation's text"
        conv.seen.append({"id": reply_id, "usage": usage})
        history.append({"role": "assistant", "content": text})


async def _run_all(base: str, conversations: list[Conversation]) -> None:
    limits = httpx2.Limits(max_connections=CONVERSATIONS, max_keepalive_connections=CONVERSATIONS)
    async with httpx2.AsyncClient(timeout=60, limits=limits, trust_env=False) as client:
        await asyncio.gather(*(_converse(client, base, conv) for conv in conversations))


def _normalised(dialect: str, usage: dict) -> dict[str, int]:
    """The wire usage in the ledger's additive form (OpenAI's prompt counts include the cached part)."""
    if dialect == "anthropic":
        return {name: usage[name] for name in FIELDS}
    if dialect == "chat":
        read = usage["prompt_tokens_details"]["cached_tokens"]
        return {"input_tokens": usage["prompt_tokens"] - read, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": read, "output_tokens": usage["completion_tokens"]}
    read = usage["input_tokens_details"]["cached_tokens"]
    return {"input_tokens": usage["input_tokens"] - read, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": read, "output_tokens": usage["output_tokens"]}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Mitmdump, Path, Path, Path]]:
    log, report, events = tmp_path / "sim.jsonl", tmp_path / "report.json", tmp_path / "events.jsonl"
    with Simulator("--accounts", "3", "--log", str(log)) as sim:
        proxy = Mitmdump(sim.url, ("inject.py", "cache_audit.py"), confdir=str(tmp_path / "conf"),
                         options={"cache_report": str(report), "cache_events": str(events),
                                  })
        try:
            yield proxy, log, report, events
        finally:
            proxy.stop()


def test_fifty_concurrent_conversations(stack: tuple[Mitmdump, Path, Path, Path]) -> None:
    proxy, log, report_path, events_path = stack
    conversations = [Conversation(n, DIALECTS[n % len(DIALECTS)]) for n in range(CONVERSATIONS)]
    asyncio.run(asyncio.wait_for(_run_all(proxy.url, conversations), timeout=240))
    assert wait_until(lambda: connections_closed(proxy.output))
    assert proxy.stop() == 0
    assert "Traceback" not in proxy.output and "Addon error" not in proxy.output

    logged = [json.loads(line) for line in log.read_text().splitlines()]
    calls = [entry for entry in logged if entry["dialect"] is not None]
    report = json.loads(report_path.read_text())
    events = [json.loads(line) for line in events_path.read_text().splitlines()]

    # every turn exactly once: in the simulator's log, the report and the event lines
    assert len(calls) == CONVERSATIONS * TURNS and all(c["status"] == 200 and c["completed"] for c in calls)
    flow_ids = [t["flow_id"] for s in report["sessions"] for t in s["turns"]]
    assert len(flow_ids) == len(set(flow_ids)) == CONVERSATIONS * TURNS
    assert sorted(e["turn"]["flow_id"] for e in events) == sorted(flow_ids)
    assert report["totals"]["requests"] == CONVERSATIONS * TURNS
    assert len(report["sessions"]) == CONVERSATIONS
    for session in report["sessions"]:
        assert [t["index"] for t in session["turns"]] == list(range(1, TURNS + 1))
        assert [t["stream"] for t in session["turns"]] == [n % 2 == 1 for n in range(TURNS)]

    # the report's figures are the simulator's, per session and in total
    by_session: dict[str, Counter[str]] = defaultdict(Counter)
    truth: Counter[str] = Counter()
    dialect_of = {"anthropic": "anthropic", "openai-chat": "chat", "openai-responses": "responses"}
    accounts: dict[str, set[int]] = defaultdict(set)
    for call in calls:
        by_session[call["session"]].update(_normalised(dialect_of[call["dialect"]], call["usage"]))
        truth.update({k: call["cache"][k] for k in ("input_tokens", "cache_read_input_tokens", "output_tokens",
                                                    "cache_creation_input_tokens")})
        accounts[call["session"]].add(call["account"])
    for session in report["sessions"]:
        # (None: a figure no turn reported, e.g. cache writes of the Responses API)
        assert {k: session[k] or 0 for k in FIELDS} == {k: by_session[session["session_id"]][k] for k in FIELDS}
    totals = {k: v or 0 for k, v in report["totals"].items()}
    assert {k: totals[k] for k in FIELDS} == {k: sum(c[k] for c in by_session.values()) for k in FIELDS}
    assert totals["output_tokens"] == truth["output_tokens"]
    assert totals["input_tokens"] + totals["cache_creation_input_tokens"] + totals["cache_read_input_tokens"] == \
        truth["input_tokens"] + truth["cache_creation_input_tokens"] + truth["cache_read_input_tokens"]

    # each client saw its own replies only, with the usage the simulator logged for them
    client_seen = Counter(turn["id"] for conv in conversations for turn in conv.seen)
    assert len(client_seen) == CONVERSATIONS * TURNS and max(client_seen.values()) == 1
    per_client = sorted(tuple(sum(_normalised(conv.dialect, t["usage"])[k] for t in conv.seen) for k in FIELDS)
                        for conv in conversations)
    assert per_client == sorted(tuple(c[k] for k in FIELDS) for c in by_session.values())

    # pinning under load: one account per session, and every later turn read the cache
    assert all(len(seen) == 1 for seen in accounts.values())
    verdicts = Counter(t["verdict"] for s in report["sessions"] for t in s["turns"][1:])
    assert verdicts == Counter({"hit": CONVERSATIONS * (TURNS - 1)}), verdicts
