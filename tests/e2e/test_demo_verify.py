"""scripts/demo and scripts/verify, run as users run them, against the gateway simulator on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cachepin.request.tokens import estimate_tokens
from cachepin_tools.harness import verify
from cachepin_tools.harness.conversations import SYSTEM_TOKENS, conversations, system_prompt
from cachepin_tools.harness.target import Target

pytestmark = pytest.mark.e2e

HARNESS = "cachepin_tools.harness"  # scripts/demo and scripts/verify run its demo and verify modules
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def launch(script: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """The command in its own session, so that every process it starts can be found afterwards."""
    environment = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES} | (env or {})
    return subprocess.Popen([sys.executable, "-m", f"{HARNESS}.{script}", *args], cwd=cwd, env=environment, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def run(script: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = launch(script, *args, cwd=cwd, env=env)
    out, err = proc.communicate(timeout=60)
    assert not leftovers(proc.pid), f"{script} left processes running"
    return proc.returncode, out, err


def leftovers(session: int) -> list[int]:
    """Processes still in the command's session (its mitmdumps and simulators, if it failed to stop them)."""
    if not Path("/proc").is_dir():
        pytest.skip("needs /proc to find leftover processes")
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == session:
                    found.append(int(entry.name))
            except ProcessLookupError:
                pass
    return found


def row(output: str, label: str) -> list[str]:
    """The cells of a demo table row (columns are separated by 3+ spaces)."""
    line = next(line for line in output.splitlines() if line.startswith(label))
    return re.split(r"\s{3,}", line.strip())[1:]


# --- the demo -------------------------------------------------------------------------------------


def test_demo_shows_affinity_turning_misses_into_hits(tmp_path: Path) -> None:
    status, out, err = run("demo", "--out", str(tmp_path), cwd=tmp_path)
    assert status == 0, out + err
    assert "Traceback" not in out + err

    for label in ("anthropic 1", "anthropic 2", "anthropic 3", "openai chat"):
        without, with_ = row(out, label)
        assert re.fullmatch(r"cold@\d miss@\d miss@\d hit@\d", without), without
        first, *later = with_.split()
        account = first.removeprefix("cold@")
        assert later == [f"hit@{account}"] * 3, with_  # pinned: one account, every later turn hits
    assert row(out, "later turns hit") == ["4/12", "12/12"]
    assert row(out, "miss reasons") == ["routing ×8", "none"]
    assert "routing ×8: prefix of ~" in out

    before = json.loads((tmp_path / "without-affinity.json").read_text())
    after = json.loads((tmp_path / "with-affinity.json").read_text())
    assert after["totals"]["hit_ratio"] > before["totals"]["hit_ratio"]
    assert after["totals"]["cost"]["saving"] > before["totals"]["cost"]["saving"] > 0
    ratios = row(out, "hit ratio (tokens)")
    assert ratios == [f"{before['totals']['hit_ratio'] * 100:.1f}%", f"{after['totals']['hit_ratio'] * 100:.1f}%"]
    saving = f"saved by the cache ${before['totals']['cost']['saving']:.4f} -> ${after['totals']['cost']['saving']:.4f}"
    assert f"Affinity: later turns hit 4/12 -> 12/12, hit ratio {ratios[0]} -> {ratios[1]}, {saving}." in out
    assert [s["source"] for s in after["sessions"]] == ["fingerprint"] * 4
    assert {t["stream"] for s in after["sessions"] for t in s["turns"]} == {True}
    for name in ("without-affinity", "with-affinity"):  # the HTML beside each (rendered: tests/e2e/test_html_browser)
        page = (tmp_path / f"{name}.html").read_text()
        assert page.startswith("<!DOCTYPE html>") and after["sessions"][0]["session_id"][:12] in page
    assert f"{tmp_path / 'with-affinity.json'} (with-affinity.html)" in out


def test_demo_stops_everything_when_terminated(tmp_path: Path) -> None:
    proc = launch("demo", "--event-delay", "0.05", cwd=tmp_path)  # ~1 s per streamed turn
    deadline = time.monotonic() + 20
    while len(leftovers(proc.pid)) < 3 and time.monotonic() < deadline:  # the demo, a simulator, a mitmdump
        time.sleep(0.05)
    time.sleep(1.0)  # into the first conversation
    assert len(leftovers(proc.pid)) >= 3
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, (out, err)
    assert not leftovers(proc.pid)
    assert "Traceback" not in err


# --- verify ---------------------------------------------------------------------------------------


def test_verify_passes_with_affinity_and_leaves_the_report_and_junit(tmp_path: Path) -> None:
    secret = "sk-cachepin-test-5f3a9e1c7d"
    (tmp_path / "out").mkdir()
    status, out, err = run("verify", "--conversations", "2", "--turns", "3", "--junit", "out/cache.xml",
                           "--api-key-env", "CACHEPIN_TEST_KEY", cwd=tmp_path, env={"CACHEPIN_TEST_KEY": secret})
    assert status == 0, out + err
    assert "verify: PASS" in out
    assert out.count("cold hit hit") == 2
    assert "4/4 later turns hit" in out

    report = json.loads((tmp_path / "cachepin-report.json").read_text())
    assert report["ok"] is True
    assert report["expectations"] == {"expect": "warm", "min_hit": 80}
    assert [[t["verdict"] for t in s["turns"]] for s in report["sessions"]] == [["cold", "hit", "hit"]] * 2
    suite = ET.parse(tmp_path / "out" / "cache.xml").getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("2", "0")

    written = out + err + "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert secret not in written


def test_verify_fails_with_status_3_without_the_inject_addon(tmp_path: Path) -> None:
    status, out, err = run("verify", "--no-inject", "--conversations", "2", "--turns", "3", "--junit", "j.xml",
                           cwd=tmp_path)
    assert status == 3, out + err
    assert "verify: FAIL" in out
    assert out.count("cold miss miss") == 2
    assert "turn 2 miss (routing), turn 3 miss (routing)" in out
    assert "routing ×4: prefix of ~" in out
    report = json.loads((tmp_path / "cachepin-report.json").read_text())
    assert report["ok"] is False and len(report["failures"]) == 6  # 2 warm misses and min_hit, per session
    suite = ET.parse(tmp_path / "j.xml").getroot()
    assert (suite.get("tests"), suite.get("failures")) == ("2", "2")


def test_verify_drives_openai_chat_completions(tmp_path: Path) -> None:
    status, out, err = run("verify", "--provider", "openai", "--conversations", "1", "--turns", "3",
                           "--report", "openai.json", cwd=tmp_path)
    assert status == 0, out + err
    session, = json.loads((tmp_path / "openai.json").read_text())["sessions"]
    assert [t["verdict"] for t in session["turns"]] == ["cold", "hit", "hit"]
    assert {(t["provider"], t["model"], t["stream"]) for t in session["turns"]} == {("openai", "gpt-5.1", True)}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--api-key-env", "CACHEPIN_UNSET_VARIABLE"], "the environment variable CACHEPIN_UNSET_VARIABLE is not set"),
        (["--turns", "1"], "argument --turns: must be at least 2"),
        (["--min-hit", "101"], "argument --min-hit: must be 0-100"),
        (["--provider", "gemini"], "argument --provider: invalid choice"),
        (["--target", "ftp://example.com"], "--target: expected an http:// or https:// URL"),
        (["--target", "https://user:pw@example.com"], "must not hold credentials"),
        (["--report", "missing/report.json"], "does not exist or is not writable"),
    ],
)
def test_verify_rejects_bad_arguments_with_status_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str], args: list[str],
                                                    message: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CACHEPIN_UNSET_VARIABLE", raising=False)
    with pytest.raises(SystemExit) as exited:
        verify.main(args)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_verify_says_clearly_when_the_target_is_unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SystemExit) as exited:
        verify.main(["--target", f"http://127.0.0.1:{port}"])
    assert exited.value.code == 1
    assert f"cannot reach the target http://127.0.0.1:{port}" in capsys.readouterr().err


# --- the shared driver ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, origin, prefix",
    [
        ("https://api.anthropic.com", "https://api.anthropic.com", ""),
        ("https://api.openai.com/", "https://api.openai.com", ""),
        ("http://127.0.0.1:8000/anthropic/", "http://127.0.0.1:8000", "/anthropic"),
    ],
)
def test_target_splits_the_origin_for_reverse_mode_from_the_gateway_prefix(url: str, origin: str,
                                                                           prefix: str) -> None:
    assert Target.parse(url) == Target(origin, prefix)


def test_system_prompts_are_cacheable_everywhere_and_unique_per_conversation_and_run() -> None:
    first, second = conversations([("a", "anthropic", "m"), ("b", "anthropic", "m")], 2)
    assert estimate_tokens(first.system) >= SYSTEM_TOKENS > 4096
    assert first.system != second.system
    assert system_prompt("a", "run1") != system_prompt("a", "run2")
