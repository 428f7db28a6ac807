"""A bad cachepin option value stops a real mitmdump at startup, with one line that names it.

Without this, mitmproxy applies ``--set`` values of script options after the
script has loaded, and rolls the script back without a word when one fails:
mitmdump then runs on with no audit, exits 0 and writes no report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cachepin_tools.harness.processes import ADDONS

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
    ("cache_expect=cold", "cachepin: cache_expect must be 'off' or 'warm', not 'cold'"),
    ("cache_min_hit=abc", "cachepin: cache_min_hit must be a whole number 0-100, not 'abc'"),
    ("cache_min_hit=101", "cachepin: cache_min_hit must be 0-100, not 101"),
    ("cache_max_sessions=-5", "cachepin: cache_max_sessions must be >= 0"),
    ("cache_ttl_scale=fast", "cachepin: cache_ttl_scale must be a number > 0, not 'fast'"),
    ("cache_explain=sometimes", "cachepin: cache_explain must be true or false, not 'sometimes'"),
    ("cache_minimums=claude", "cachepin: cache_minimums: expected MODEL=TOKENS, not 'claude'"),
    ("cache_prices={missing}/prices.json", "cachepin: cache_prices: "),
    ("cache_events={tmp}", "is a folder; name a file in it"),
    ("cache_report={tmp}", "is a folder; name a file in it"),
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


def test_a_bad_value_in_the_config_file_exits_1(tmp_path: Path) -> None:
    run = start(tmp_path, config="cache_min_hit: lots\n")
    assert run.returncode == 1
    assert cachepin_lines(run) == ["cachepin: cache_min_hit must be a whole number 0-100, not 'lots'"]
