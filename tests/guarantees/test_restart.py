"""Guarantee 7, restart: a restarted proxy derives the same fingerprint ids (its salt is kept in its confdir),
and so do replicas given the same ``affinity_salt``; proxies with salts of their own derive ids that cannot be
linked; a hot reload of the audit script keeps the ledger and exits nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx2
import openai
import pytest
from cache_audit import EXIT_EXPECTATIONS_FAILED, CacheAudit
from llm_upstream import FakeUpstream
from logs import connections_closed
from mitmproxy.test import taddons

from cachepin.request.dialects import Dialect
from cachepin.request.session import fingerprint
from cachepin_tools.harness.processes import ADDONS, Mitmdump, wait_until

SYSTEM = "You are terse."


def _claude_turn(base_url: str, messages: list[dict]) -> None:
    with anthropic.Anthropic(base_url=base_url, api_key="k", max_retries=0,
                             http_client=httpx2.Client(trust_env=False)) as claude:
        reply = claude.messages.create(model="claude-sonnet-4-6", max_tokens=16, system=SYSTEM, messages=messages)
    messages.append({"role": "assistant", "content": reply.content[0].text})


def _chat_turn(base_url: str, messages: list[dict]) -> None:
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="k", max_retries=0,
                       http_client=httpx2.Client(trust_env=False)) as gpt:
        reply = gpt.chat.completions.create(model="gpt-5", messages=messages)
    messages.append({"role": "assistant", "content": reply.choices[0].message.content})


FLEET_SALT = "a-secret-the-replicas-share-0123456789"


@pytest.mark.e2e
def test_ids_are_the_same_across_replicas_sharing_a_salt_and_restarts(upstream: FakeUpstream, mitmdump,
                                                                     tmp_path: Path) -> None:
    fleet = {"affinity_salt": FLEET_SALT}
    first = mitmdump(upstream.url, options=fleet, confdir=str(tmp_path / "first"))
    second = mitmdump(upstream.url, options=fleet)  # side by side, with a confdir of its own
    claude: list[dict] = []
    chat: list[dict] = [{"role": "system", "content": SYSTEM}]
    for turn, proxy in enumerate([first, second, first]):
        claude.append({"role": "user", "content": "Start the review." if turn == 0 else f"Next {turn}."})
        _claude_turn(proxy.url, claude)
        chat.append({"role": "user", "content": "Bonjour." if turn == 0 else f"Encore {turn}."})
        _chat_turn(proxy.url, chat)
    first.stop()
    second.stop()
    restarted = mitmdump(upstream.url, options=fleet, confdir=str(tmp_path / "first"))
    claude.append({"role": "user", "content": "After the restart."})
    _claude_turn(restarted.url, claude)
    chat.append({"role": "user", "content": "Après le redémarrage."})
    _chat_turn(restarted.url, chat)
    restarted.stop()

    ids = [r.header("x-session-id") for r in upstream.records]
    claude_ids, chat_ids = set(ids[0::2]), set(ids[1::2])
    assert len(ids) == 8 and len(claude_ids) == 1 and len(chat_ids) == 1 and claude_ids != chat_ids
    assert all(i.startswith("fp_") for i in ids)
    assert all(r.header("x-session-affinity") == r.header("x-session-id") for r in upstream.records)
    unkeyed = fingerprint({"system": SYSTEM, "messages": claude[:1]}, Dialect.ANTHROPIC)
    assert claude_ids != {unkeyed}  # the id is no plain hash of the prompt: a guess cannot be confirmed


@pytest.mark.e2e
def test_a_proxy_keeps_its_own_salt_across_restarts_and_shares_it_with_no_other(upstream: FakeUpstream, mitmdump,
                                                                                tmp_path: Path) -> None:
    confdir = tmp_path / "kept"
    ids = []
    for where in (confdir, confdir, tmp_path / "other"):
        proxy = mitmdump(upstream.url, confdir=str(where))
        _claude_turn(proxy.url, [{"role": "user", "content": "Start the review."}])
        proxy.stop()
        ids.append(upstream.records[-1].header("x-session-id"))
    assert ids[0] == ids[1] != ids[2] and all(i.startswith("fp_") for i in ids)
    salt = confdir / "cachepin-salt"
    assert salt.stat().st_mode & 0o777 == 0o600 and len(salt.read_text().strip()) == 64


def test_fingerprints_do_not_depend_on_the_process() -> None:
    """Hash randomisation, dict order and the interpreter instance must not enter the id."""
    body = {"model": "gpt-5", "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": [
        {"type": "text", "text": "héllo", "cache_control": {"type": "ephemeral"}}, {"b": 1, "a": {"y": 2, "x": 1}}]}]}
    code = ("import json, sys; from cachepin.request.session import fingerprint; "
            "from cachepin.request.dialects import Dialect; "
            "print(fingerprint(json.loads(sys.argv[1]), Dialect.OPENAI_CHAT))")
    seen = set()
    for seed in ("0", "1", "12345"):
        out = subprocess.run([sys.executable, "-c", code, json.dumps(body)], check=True,
                             capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        seen.add(out.strip())
    reordered = json.loads(json.dumps(body, sort_keys=True))
    seen.add(fingerprint(reordered, Dialect.OPENAI_CHAT))
    assert len(seen) == 1 and next(iter(seen)).startswith("fp_")


@pytest.mark.e2e
def test_hot_reload_keeps_the_ledger_and_does_not_exit(upstream: FakeUpstream, tmp_path: Path) -> None:
    """Editing the audit script reloads it (done() on the old instance, load() on the new): the run goes on
    with the same ledger, and only the real shutdown exits with the failed expectations' status."""
    script = tmp_path / "cache_audit.py"
    shutil.copy(ADDONS / "cache_audit.py", script)
    report = tmp_path / "report.json"
    proxy = Mitmdump(upstream.url, ("inject.py", str(script)), confdir=str(tmp_path / "conf"),
                     options={"cache_expect": "warm", "cache_report": str(report)})
    try:
        messages: list[dict] = []
        for turn in range(2):  # the fake upstream never reports a read: turn 2 fails "warm"
            messages.append({"role": "user", "content": f"turn {turn}"})
            _claude_turn(proxy.url, messages)
        assert wait_until(lambda: "cachepin audit FAILED" in proxy.output)
        loads = proxy.output.count(f"Loading script {script}")
        future = time.time() + 5
        os.utime(script, (future, future))
        assert wait_until(lambda: proxy.output.count(f"Loading script {script}") > loads, timeout=10)
        assert wait_until(lambda: report.exists())  # done() of the old instance wrote the report ...
        assert proxy.proc.poll() is None  # ... and did not exit
        assert len(json.loads(report.read_text())["sessions"][0]["turns"]) == 2
        messages.append({"role": "user", "content": "after the reload"})
        _claude_turn(proxy.url, messages)
        assert wait_until(lambda: connections_closed(proxy.output))
    finally:
        status = proxy.stop()
    assert status == EXIT_EXPECTATIONS_FAILED
    (session,) = json.loads(report.read_text())["sessions"]
    assert [t["index"] for t in session["turns"]] == [1, 2, 3]
    assert [t["verdict"] for t in session["turns"]] == ["cold", "miss", "miss"]
    assert "Traceback" not in proxy.output and "Addon error" not in proxy.output


def test_done_on_reload_hands_the_ledger_over_and_done_at_shutdown_exits() -> None:
    old = CacheAudit()
    with taddons.context(old) as tctx:
        tctx.configure(old, cache_expect="warm")
        ledger = old.ledger
        for index in range(2):
            ledger.record("s1", "header", flow_id=f"f{index}", started_at=0.0, status=200, stream=False,
                          usage=None, model="claude-sonnet-4-6", ttft_ms=None, duration_ms=None)
        assert not ledger.ok
        tctx.master.addons.remove(old)  # what a reload does: done() on the old instance, should_exit not set
        new = CacheAudit()
        tctx.master.addons.add(new)  # and load() on the new one, which takes the ledger back
        assert new.ledger is ledger and len(new.ledger.sessions[0].turns) == 2
        tctx.master.should_exit.set()
        with pytest.raises(SystemExit) as exit_info:
            new.done()
    assert exit_info.value.code == EXIT_EXPECTATIONS_FAILED
