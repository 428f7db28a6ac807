"""scripts/gateway-sim as a process: it announces its URL, serves and logs, stops cleanly on a signal, explains
its flags."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from simulator_support import claude_turns, raw_post, sha256_account

pytestmark = pytest.mark.e2e

SIMULATOR = ("-m", "cachepin_tools.simulator")  # what scripts/gateway-sim runs


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_announces_its_url_serves_and_exits_cleanly_on_signal(tmp_path: Path, direct: None, signum: int) -> None:
    log = tmp_path / "sim.jsonl"
    command = [sys.executable, *SIMULATOR, "--port", "0", "--accounts", "2", "--log", str(log)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path) as proc:
        try:
            line = proc.stdout.readline()
            match = re.fullmatch(r"gateway_sim listening on (http://127\.0\.0\.1:(\d+))\n", line)
            assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
            status, _, _ = raw_post(f"{match[1]}/v1/messages", claude_turns(1), {"X-Session-Id": "cli"})
            assert status == 200
            proc.send_signal(signum)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.stdout.read() == ""
    assert [r["account"] for r in (json.loads(x) for x in log.read_text().splitlines())] == [sha256_account("cli", 2)]


def test_cli_help_describes_every_flag() -> None:
    result = subprocess.run([sys.executable, *SIMULATOR, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    flags = "--host --port --accounts --min-tokens --model-min-tokens --ttl-scale --event-delay --gzip-sse"
    for flag in (*flags.split(), "--fail-rate", "--seed", "--log"):
        assert flag in result.stdout
