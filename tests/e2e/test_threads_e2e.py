"""Verdicts a CI gate can trust on agent traffic, through a real mitmdump in front of the gateway simulator.

The Anthropic SDK plays Claude Code with a sub-agent: every request carries
the same ``X-Claude-Code-Session-Id`` (the sub-agent reuses the parent's), the
sub-agent has its own system prompt and tool list, and the two conversations
interleave. The simulator routes by the session headers the inject addon
sets, else round-robin over three accounts.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest
from claude_code import MAIN_SYSTEM, MODEL, SESSION, TOOLS, Conversation, claude_code_with_a_sub_agent

from cachepin_tools.harness.processes import Simulator

pytestmark = pytest.mark.e2e

@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with Simulator("--accounts", "3", "--min-tokens", "64") as sim:
        yield sim


def audit(mitmdump, simulator: Simulator, tmp_path: Path, scripts: list[str], **options: object):  # type: ignore
    return mitmdump(simulator.url, scripts, options={
        "cache_report": str(tmp_path / "report.json"), "cache_junit": str(tmp_path / "junit.xml"),
        "cache_minimums": "*=64", **options})


def report(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "report.json").read_text())


def test_a_sub_agent_is_its_own_thread_and_the_gate_passes(simulator, mitmdump, tmp_path: Path) -> None:
    proxy = audit(mitmdump, simulator, tmp_path, ["inject.py", "cache_audit.py"], cache_expect="warm",
                  cache_min_hit=80)
    claude_code_with_a_sub_agent(proxy.url)
    assert proxy.stop() == 0, proxy.output

    (session,) = report(tmp_path)["sessions"]
    assert session["session_id"] == SESSION and session["source"] == "header:x-claude-code-session-id"
    main, sub = session["threads"]
    assert (main["turns"], sub["turns"]) == ([1, 2, 4, 7], [3, 5, 6])
    assert all(thread["source"] == "lineage" for thread in (main, sub))
    verdicts = {turn["index"]: turn["verdict"] for turn in session["turns"]}
    assert [verdicts[i] for i in main["turns"]] == ["cold", "hit", "hit", "hit"]
    assert [verdicts[i] for i in sub["turns"]] == ["cold", "hit", "hit"]  # its first turn writes: no miss
    assert session["judged_hit_ratio"] > 0.8 and main["judged_hit_ratio"] > 0.8 and sub["judged_hit_ratio"] > 0.8
    assert report(tmp_path)["ok"] is True and f"thread={sub['thread_id'][:12]}…" in proxy.output


def test_without_affinity_the_same_traffic_still_fails(simulator, mitmdump, tmp_path: Path) -> None:
    """The audit alone, behind round-robin accounts: later turns of both threads miss, and the gate says so."""
    proxy = audit(mitmdump, simulator, tmp_path, ["cache_audit.py"], cache_expect="warm")
    claude_code_with_a_sub_agent(proxy.url)
    assert proxy.stop() == 3
    failures = report(tmp_path)["failures"]
    assert failures and all("(thread ln_" in failure["message"] for failure in failures)
    case = ET.parse(tmp_path / "junit.xml").getroot().find("./testsuite/testcase")
    assert case is not None and case.get("name") == SESSION and case.find("failure") is not None


def test_an_upstream_that_only_fails_fails_the_gate(mitmdump, tmp_path: Path) -> None:
    with Simulator("--fail-rate", "1", "--seed", "1") as failing:
        proxy = audit(mitmdump, failing, tmp_path, ["inject.py", "cache_audit.py"], cache_expect="warm",
                      cache_min_hit=80)
        with anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-test", max_retries=0) as client:
            for _ in range(3):
                with pytest.raises(anthropic.APIStatusError):
                    client.messages.create(model=MODEL, max_tokens=8, system=MAIN_SYSTEM,
                                           messages=[{"role": "user", "content": "hi"}])
        assert proxy.stop() == 3
    document = report(tmp_path)
    assert document["ok"] is False and document["totals"]["requests"] == 0 and document["totals"]["errors"] == 3
    messages = [failure["message"] for failure in document["failures"]]
    assert any("no successful response (3 error turns)" in message for message in messages)
    assert messages[-1].startswith("no successful LLM response was audited (3 error turns)")
    assert "no successful LLM response was audited" in proxy.output
    cases = ET.parse(tmp_path / "junit.xml").getroot().findall("./testsuite/testcase")
    assert {case.get("name") for case in cases} >= {"(the whole run)"}
    assert all(case.find("failure") is not None for case in cases)


def test_a_responses_chain_keeps_one_session(simulator, mitmdump, tmp_path: Path) -> None:
    """previous_response_id, no session header: only the new input is resent, the session stays."""
    proxy = audit(mitmdump, simulator, tmp_path, ["inject.py", "cache_audit.py"])
    with openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0) as client:
        response = client.responses.create(model="gpt-5", instructions=MAIN_SYSTEM, input="Fix the build.")
        for follow_up in ("And the tests?", "Ship it."):
            response = client.responses.create(model="gpt-5", instructions=MAIN_SYSTEM, input=follow_up,
                                               previous_response_id=response.id)
    assert proxy.stop() == 0
    (session,) = report(tmp_path)["sessions"]
    assert session["source"] == "fingerprint" and session["requests"] == 3
    assert [turn["position"] for turn in session["turns"]] == ["start", "continuation", "continuation"]
    assert proxy.output.count("cachepin inject new session=") == 1
    (thread,) = session["threads"]  # the chain continues its thread: each request's own lineage would differ
    assert thread["source"] == "lineage" and thread["turns"] == [1, 2, 3]
    assert [turn["verdict"] for turn in session["turns"]] == ["cold", "hit", "hit"]


def test_a_restarted_proxy_still_calls_an_unread_continuation_a_miss(simulator, mitmdump, tmp_path: Path) -> None:
    """Turns 1-2 through one proxy, turn 3 through a fresh one: the request shows that it continues."""
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir(), second_dir.mkdir()
    conversation = Conversation(MAIN_SYSTEM, TOOLS, "Why does CI fail?")
    proxy = audit(mitmdump, simulator, first_dir, ["cache_audit.py"])
    with anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-test", max_retries=0) as client:
        conversation.turn(client, "Look again.")
        conversation.turn(client, "And now?")
    assert proxy.stop() == 0
    proxy = audit(mitmdump, simulator, second_dir, ["cache_audit.py"], cache_expect="warm")
    with anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-test", max_retries=0) as client:
        conversation.turn(client, "Once more.")  # round-robin: the third account, which never saw this prompt
    assert proxy.stop() == 3
    (turn,) = report(second_dir)["sessions"][0]["turns"]
    assert (turn["index"], turn["position"], turn["verdict"], turn["cache_read_input_tokens"]) == (
        1, "continuation", "miss", 0)
