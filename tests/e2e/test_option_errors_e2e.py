"""A bad cachepin option value stops a real mitmdump at startup, with one line that names it.

Without this, mitmproxy applies ``--set`` values of script options after the
script has loaded, and rolls the script back without a word when one fails:
mitmdump then runs on with no audit, exits 0 and writes no report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cachepin_tools.harness.processes import ADDONS, Mitmdump

pytestmark = pytest.mark.e2e

MITMDUMP = Path(sys.executable).with_name("mitmdump")


def start(tmp_path: Path, *settings: str, config: str = "") -> subprocess.CompletedProcess[str]:
    confdir = tmp_path / "confdir"
    confdir.mkdir(exist_ok=True)
    if config:
        (confdir / "config.yaml").write_text(config)
    command = [str(MITMDUMP), "-p", "0", "--listen-host", "127.0.0.1", "--set", f"confdir={confdir}",
               "-s", str(ADDONS / "inject.py"), "-s", str(ADDONS / "cache_audit.py")]
    for setting in settings:
        command += ["--set", setting]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def cachepin_lines(run: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split("] ", 1)[-1] for line in (run.stdout + run.stderr).splitlines() if "cachepin" in line]


@pytest.mark.parametrize(("setting", "message"), [
    ("affinity_scope=~q(", "cachepin: affinity_scope: invalid filter expression '~q('"),
    ("affinity_exclude=~~~", "cachepin: affinity_exclude: invalid filter expression '~~~'"),
    ("affinity_session=two words", "cachepin: affinity_session must be 1-256 printable ASCII characters"),
    ("affinity_headers=Authorization", "cachepin: affinity_headers: 'Authorization' carries credentials"),
    ("affinity_override=maybe", "cachepin: affinity_override must be true or false, not 'maybe'"),
    ("affinity_prompt_cache_key=yes", "cachepin: affinity_prompt_cache_key must be true or false, not 'yes'"),
    ("affinity_salt=too-short", "cachepin: affinity_salt must be at least 16 characters"),
    ("affinity_stream_requests=maybe", "cachepin: affinity_stream_requests must be true or false, not 'maybe'"),
    ("cache_expect=cold", "cachepin: cache_expect must be 'off' or 'warm', not 'cold'"),
    ("cache_min_hit=abc", "cachepin: cache_min_hit must be a whole number 0-100, not 'abc'"),
    ("cache_min_hit=101", "cachepin: cache_min_hit must be 0-100, not 101"),
    ("cache_max_sessions=-5", "cachepin: cache_max_sessions must be >= 0"),
    ("cache_max_turns=-3", "cachepin: cache_max_turns must be >= 0 (0 = unlimited)"),
    ("cache_resume=maybe", "cachepin: cache_resume must be true or false, not 'maybe'"),
    ("cache_report_interval=x", "cachepin: cache_report_interval must be a whole number of seconds >= 0, not 'x'"),
    ("cache_diagnostics=maybe", "cachepin: cache_diagnostics must be true or false, not 'maybe'"),
    ("cache_workers=99", "cachepin: cache_workers must be 0-16 (0 = read requests in the proxy's own process)"),
    ("cache_workers=x", "cachepin: cache_workers must be a whole number 0-16, not 'x'"),
    ("cache_ttl_scale=fast", "cachepin: cache_ttl_scale must be a number > 0, not 'fast'"),
    ("cache_explain=sometimes", "cachepin: cache_explain must be true or false, not 'sometimes'"),
    ("cache_minimums=claude", "cachepin: cache_minimums: expected MODEL=TOKENS, not 'claude'"),
    ("cache_prices={missing}/prices.json", "cachepin: cache_prices: "),
    ("cache_events={tmp}", "is a folder; name a file in it"),
    ("cache_report={tmp}", "is a folder; name a file in it"),
    ("cache_html={tmp}", "is a folder; name a file in it"),
    ("cache_junit={missing}/junit.xml", "missing or read-only"),
], ids=lambda value: value.split("=")[0] if "=" in value else None)
def test_a_bad_value_exits_1_with_one_line(tmp_path: Path, setting: str, message: str) -> None:
    run = start(tmp_path, setting.format(tmp=tmp_path, missing=tmp_path / "missing"))
    assert run.returncode == 1, run.stdout + run.stderr
    lines = cachepin_lines(run)
    assert len(lines) == 1 and message in lines[0], run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr


def test_an_option_given_twice_exits_1(tmp_path: Path) -> None:
    run = start(tmp_path, f"cache_report={tmp_path}/a.json", f"cache_report={tmp_path}/b.json")
    assert run.returncode == 1
    assert cachepin_lines(run) == [f"cachepin: cache_report is given 2 times (cache_report={tmp_path}/a.json, "
                                   f"cache_report={tmp_path}/b.json); give it once"]


@pytest.mark.parametrize(("config", "message"), [
    ("cache_min_hit: lots\n", "cachepin: cache_min_hit must be a whole number 0-100, not 'lots'"),
    ("cache_ttl_scale: true\n", "cachepin: cache_ttl_scale must be a number > 0, not True"),
    ("cache_ttl_scale: -2\n", "cachepin: cache_ttl_scale must be a number > 0, not '-2'"),
], ids=["min_hit", "ttl_scale-bool", "ttl_scale-negative"])
def test_a_bad_value_in_the_config_file_exits_1(tmp_path: Path, config: str, message: str) -> None:
    run = start(tmp_path, config=config)
    assert run.returncode == 1
    assert cachepin_lines(run) == [message]


@pytest.mark.parametrize("scale", ["2", "0.5"])
def test_a_plain_number_for_the_ttl_scale_in_the_config_file_is_taken(tmp_path: Path, scale: str) -> None:
    """YAML reads ``cache_ttl_scale: 2`` as a number, which mitmproxy would refuse to set on the (text) option,
    dropping the audit without a word: the audit still runs, and writes its report."""
    confdir = tmp_path / "confdir"
    confdir.mkdir()
    (confdir / "config.yaml").write_text(f"cache_ttl_scale: {scale}\n")
    report = tmp_path / "report.json"
    with Mitmdump("http://127.0.0.1:9", ("inject.py", "cache_audit.py"), confdir=str(confdir),
                  options={"cache_report": str(report)}) as proxy:
        assert proxy.stop() == 0
    assert not [line for line in proxy.lines if "cachepin:" in line], proxy.output
    assert json.loads(report.read_text())["totals"]["requests"] == 0
