"""cache_diagnostics for real: SDK -> mitmdump with both addons -> the gateway simulator, which answers as the providers
document (tools/cachepin_tools/simulator/diagnostics.py). The provider's diagnosis reaches the report next to
cachepin's own reason, and the two are counted against each other."""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
import openai
import pytest

from cachepin_tools.harness.processes import Simulator

pytestmark = pytest.mark.e2e

LONG_SYSTEM = "You review pull requests for a large Python code base. Be precise and brief. " * 20
CLAUDE, HAIKU, GPT = "claude-sonnet-4-6", "claude-haiku-4-5", "gpt-5.6"
GREP = {"name": "grep", "description": "Search the code.", "input_schema": {"type": "object", "properties": {}}}
READ = {"name": "read", "description": "Read a file.", "input_schema": {"type": "object", "properties": {}}}


def cached_system(text: str = LONG_SYSTEM) -> list[dict]:
    return [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]


def claude_turns(url: str, session: str | None, first: dict, second: dict, stream: bool = False) -> None:
    """Two turns of one conversation; ``second`` changes what the case changes; no session: no session header."""
    headers = {"x-session-id": session} if session else {}
    with anthropic.Anthropic(base_url=url, api_key="sk-ant-planted-secret", max_retries=0,
                             default_headers=headers) as client:
        messages: list[dict] = [{"role": "user", "content": "Review the diff."}]
        reply = client.messages.create(max_tokens=32, messages=messages, **first)
        messages += [{"role": "assistant", "content": reply.content[0].text},
                     {"role": "user", "content": "And the tests?"}]
        if stream:
            with client.messages.stream(max_tokens=32, messages=messages, **second) as events:
                events.until_done()
        else:
            client.messages.create(max_tokens=32, messages=messages, **second)


def responses_turns(url: str, session: str) -> None:
    """Two Responses turns on GPT-5.6; the second renames its tool."""
    with openai.OpenAI(base_url=f"{url}/v1", api_key="sk-planted-secret", max_retries=0,
                       default_headers={"x-session-id": session}) as client:
        tool = {"type": "function", "name": "get_time", "parameters": {"type": "object", "properties": {}}}
        items: list[dict] = [{"role": "user", "content": "Review the diff."}]
        reply = client.responses.create(model=GPT, instructions=LONG_SYSTEM, input=items, tools=[tool])
        items += [{"role": "assistant", "content": reply.output_text}, {"role": "user", "content": "And the tests?"}]
        client.responses.create(model=GPT, instructions=LONG_SYSTEM, input=items, tools=[{**tool, "name": "get_date"}])


@pytest.fixture
def simulator():
    with Simulator("--accounts", "3", "--min-tokens", "64") as sim:
        yield sim


def sessions(report: dict) -> dict[str, list[dict]]:
    return {session["session_id"]: session["turns"] for session in report["sessions"]}


def test_the_provider_diagnosis_reaches_the_report_next_to_cachepins_reason(simulator, mitmdump,
                                                                           tmp_path: Path) -> None:
    report_path, events_path = tmp_path / "report.json", tmp_path / "events.jsonl"
    proxy = mitmdump(simulator.url, ["inject.py", "cache_audit.py"], options={
        "cache_report": str(report_path), "cache_events": str(events_path), "cache_minimums": "*=64",
        "cache_diagnostics": True})
    claude_turns(proxy.url, "tools", {"model": CLAUDE, "system": cached_system(), "tools": [GREP]},
                 {"model": CLAUDE, "system": cached_system(), "tools": [GREP, READ]}, stream=True)
    claude_turns(proxy.url, "system", {"model": CLAUDE, "system": cached_system()},
                 {"model": CLAUDE, "system": cached_system("Today is 2026-12-03. " + LONG_SYSTEM)})
    claude_turns(proxy.url, "model", {"model": CLAUDE, "system": cached_system()},
                 {"model": HAIKU, "system": cached_system()})
    responses_turns(proxy.url, "responses")
    assert proxy.stop() == 0

    report = json.loads(report_path.read_text())
    turns = sessions(report)
    # Anthropic's first turns opt in (its null answer compares nothing) and are judged against nothing.
    assert all(turns[name][0]["provider_diagnosis"] == {"reason": "opted_in", "missed_tokens": None,
                                                        "agreement": None} for name in ("tools", "system", "model"))
    assert "provider_diagnosis" not in turns["responses"][0]  # OpenAI: a first turn asks for nothing

    cases = {"tools": ("miss", "prefix_changed", "tools[1]", "tools_changed"),
             "system": ("miss", "prefix_changed", "system[0]", "system_changed"),
             "responses": ("miss", "prefix_changed", "tools[0]", "tools_changed"),
             "model": ("cold", None, None, "model_changed")}
    for name, (verdict, reason, path, provider_reason) in cases.items():
        second = turns[name][1]
        assert second["verdict"] == verdict, name
        miss = second.get("notes", {}).get("miss")
        assert (miss and miss["reason"], miss and miss["evidence"]["path"]) == (reason, path), name
        diagnosis = second["provider_diagnosis"]
        assert (diagnosis["reason"], diagnosis["agreement"]) == (provider_reason, "agree"), name
        assert diagnosis["missed_tokens"] > 0, name

    assert report["totals"]["diagnostics"] == {
        "agree": 4, "disagree": 0, "inconclusive": 0,
        "by_reason": {
            "model_changed": {"agree": 1, "disagree": 0, "inconclusive": 0, "cachepin": {"new_thread": 1}},
            "system_changed": {"agree": 1, "disagree": 0, "inconclusive": 0, "same_location": 1,
                               "cachepin": {"prefix_changed": 1}},
            "tools_changed": {"agree": 2, "disagree": 0, "inconclusive": 0, "same_location": 2,
                              "cachepin": {"prefix_changed": 2}},
        },
    }
    assert "provider_reason=tools_changed" in proxy.output and "provider_reason=model_changed" in proxy.output
    events = [json.loads(line) for line in events_path.read_text().splitlines()]
    assert [event["turn"].get("provider_diagnosis", {}).get("reason") for event in events
            if event["session_id"] == "system"] == ["opted_in", "system_changed"]
    everything = proxy.output + report_path.read_text() + events_path.read_text()
    assert "planted-secret" not in everything and "Review the diff" not in everything


def test_a_session_spread_over_accounts_finds_no_fingerprint(simulator, mitmdump, tmp_path: Path) -> None:
    """Without affinity the second turn reaches another account (another workspace): the provider compared nothing,
    cachepin says routing; the two are not counted as agreeing or disagreeing."""
    report_path = tmp_path / "report.json"
    proxy = mitmdump(simulator.url, ["cache_audit.py"], options={
        "cache_report": str(report_path), "cache_minimums": "*=64", "cache_diagnostics": True})
    claude_turns(proxy.url, None, {"model": CLAUDE, "system": cached_system()},
                 {"model": CLAUDE, "system": cached_system()})
    assert proxy.stop() == 0
    report = json.loads(report_path.read_text())
    (turns,) = sessions(report).values()
    assert turns[1]["notes"]["miss"]["reason"] == "routing"
    assert turns[1]["provider_diagnosis"] == {"reason": "previous_message_not_found", "missed_tokens": None,
                                              "agreement": "inconclusive"}
    assert report["totals"]["diagnostics"]["inconclusive"] == 1


def test_without_the_option_nothing_is_asked(simulator, mitmdump, tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    proxy = mitmdump(simulator.url, ["inject.py", "cache_audit.py"], options={
        "cache_report": str(report_path), "cache_minimums": "*=64"})
    claude_turns(proxy.url, "system", {"model": CLAUDE, "system": cached_system()},
                 {"model": CLAUDE, "system": cached_system("Today is 2026-12-03. " + LONG_SYSTEM)})
    assert proxy.stop() == 0
    report = json.loads(report_path.read_text())
    assert not any("provider_diagnosis" in turn for turn in sessions(report)["system"])
    assert "diagnostics" not in report["totals"] and "provider_reason" not in proxy.output
