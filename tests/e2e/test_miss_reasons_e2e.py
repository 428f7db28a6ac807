"""Every miss reason, produced for real: SDK -> mitmdump with the audit addon -> gateway simulator."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anthropic
import pytest

from cachepin_tools.harness.processes import Simulator

pytestmark = pytest.mark.e2e

TTL_SCALE = "0.005"  # 5 min -> 1.5 s in both the simulator and the explainer
LONG_SYSTEM = "You review pull requests for a large Python code base. Be precise and brief. " * 20


def system_block(text: str, breakpoint: bool = True) -> list[dict]:
    block: dict = {"type": "text", "text": text}
    if breakpoint:
        block["cache_control"] = {"type": "ephemeral"}
    return [block]


def two_turns(url: str, first_system: list[dict], second_system: list[dict], pause: float = 0.0,
              session: str | None = "case-session") -> None:
    headers = {"x-session-id": session} if session else {}
    with anthropic.Anthropic(base_url=url, api_key="sk-ant-planted-secret", max_retries=0,
                             default_headers=headers) as client:
        messages: list[dict] = [{"role": "user", "content": "Review the diff."}]
        reply = client.messages.create(model="claude-sonnet-4-6", max_tokens=32, system=first_system,
                                       messages=messages)
        time.sleep(pause)
        messages += [{"role": "assistant", "content": reply.content[0].text},
                     {"role": "user", "content": "And the tests?"}]
        client.messages.create(model="claude-sonnet-4-6", max_tokens=32, system=second_system, messages=messages)


@pytest.fixture
def simulator():
    with Simulator("--accounts", "3", "--min-tokens", "64", "--ttl-scale", TTL_SCALE) as sim:
        yield sim


@pytest.mark.parametrize(
    "case, scripts, first, second, pause, session, reason, evidence",
    [
        ("prefix_changed", ["inject.py", "cache_audit.py"], system_block(LONG_SYSTEM),
         system_block("Today is 2026-11-26. " + LONG_SYSTEM), 0.0, "case-session", "prefix_changed",
         {"path": "system[0]"}),
        ("ttl_expired", ["inject.py", "cache_audit.py"], system_block(LONG_SYSTEM), system_block(LONG_SYSTEM),
         2.0, "case-session", "ttl_expired", {"ttl_s": 1.5}),
        ("below_minimum", ["inject.py", "cache_audit.py"], system_block("Be brief."), system_block("Be brief."),
         0.0, "case-session", "below_minimum", {"minimum": 64}),
        ("no_breakpoint", ["inject.py", "cache_audit.py"], system_block(LONG_SYSTEM, breakpoint=False),
         system_block(LONG_SYSTEM, breakpoint=False), 0.0, "case-session", "no_breakpoint", {}),
        ("routing", ["cache_audit.py"], system_block(LONG_SYSTEM), system_block(LONG_SYSTEM), 0.0, None,
         "routing", {}),
    ],
)
def test_each_miss_reason(simulator, mitmdump, tmp_path: Path, case: str, scripts: list[str], first: list[dict],
                          second: list[dict], pause: float, session: str | None, reason: str,
                          evidence: dict) -> None:
    report_path = tmp_path / "report.json"
    proxy = mitmdump(simulator.url, scripts, options={
        "cache_report": str(report_path), "cache_ttl_scale": TTL_SCALE, "cache_minimums": "*=64"})
    two_turns(proxy.url, first, second, pause, session)
    assert proxy.stop() == 0

    report = json.loads(report_path.read_text())
    (only,) = report["sessions"]
    cold, missed = only["turns"]
    assert cold["verdict"] == "cold" and missed["verdict"] == "miss"
    miss = missed["notes"]["miss"]
    assert miss["reason"] == reason
    assert evidence.items() <= miss["evidence"].items()
    assert f"reason={reason}" in proxy.output
    everything = proxy.output + report_path.read_text()
    assert "planted-secret" not in everything and "Review the diff" not in everything and "pull requests" not in \
        everything


def test_a_warm_session_has_no_reason_and_a_saving(simulator, mitmdump, tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    proxy = mitmdump(simulator.url, ["inject.py", "cache_audit.py"],
                     options={"cache_report": str(report_path), "cache_minimums": "*=64"})
    two_turns(proxy.url, system_block(LONG_SYSTEM), system_block(LONG_SYSTEM))
    proxy.stop()
    (only,) = json.loads(report_path.read_text())["sessions"]
    cold, hit = only["turns"]
    assert (cold["verdict"], hit["verdict"]) == ("cold", "hit")
    assert "notes" not in hit
    assert cold["cost"]["saving"] < 0 < hit["cost"]["saving"]
    assert only["cost"]["billed"] == pytest.approx(cold["cost"]["billed"] + hit["cost"]["billed"], abs=2e-6)
