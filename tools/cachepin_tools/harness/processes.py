"""Start and stop the processes cachepin's commands and tests run: mitmdump and the gateway simulator.

Each process is started on port 0 and tells its real port on stdout; its
whole output is kept, so callers can assert on logs after the fact. Every
process is stopped with SIGTERM (which runs mitmproxy's ``done`` hooks and
writes reports) and killed if it does not exit in time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parents[3]  # the checkout: mitmdump loads the addons from it, as users do
ADDONS = ROOT / "addons"
BIN = Path(sys.executable).parent

_MITM_LISTENING = re.compile(r"listening at (?:http://)?(\S+?):(\d+)\.?\s*$")
_SIM_LISTENING = re.compile(r"gateway_sim listening on (http://\S+)\s*$")


class Process:
    """A child process whose output is collected line by line in the background."""

    def __init__(self, argv: Sequence[str], ready: re.Pattern[str], env: dict[str, str] | None = None,
                 timeout: float = 30.0, name: str | None = None) -> None:
        self.argv = list(argv)
        self.name = name or Path(self.argv[0]).name  # for messages: a module run with -m is not python's name
        self.lines: list[str] = []
        self._ready = ready
        self._match: re.Match[str] | None = None
        self._event = threading.Event()
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, text=True, errors="replace",
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            started = self._event.wait(timeout) and self._match is not None
        except BaseException:  # Ctrl-C or SIGTERM while waiting: nobody else holds this process yet
            self.stop()
            raise
        if not started:
            self.stop()
            raise RuntimeError(f"{self.name} did not start:\n{self.output}")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if self._match is None:
                self._match = self._ready.search(line)
                if self._match:
                    self._event.set()
        self._event.set()

    @property
    def match(self) -> re.Match[str]:
        assert self._match is not None
        return self._match

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Mitmdump(Process):
    """mitmdump in reverse mode in front of ``upstream``, with cachepin's addons."""

    def __init__(self, upstream: str, scripts: Sequence[str] = ("inject.py",), *,
                 options: dict[str, object] | None = None, confdir: str | None = None,
                 mode: str | None = None, extra: Sequence[str] = (), tool: str = "mitmdump") -> None:
        self.confdir = confdir or tempfile.mkdtemp(prefix="cachepin-confdir-")
        argv = [str(BIN / tool), "--mode", mode or f"reverse:{upstream}", "-p", "0",
                "--listen-host", "127.0.0.1", "--set", f"confdir={self.confdir}"]
        if tool == "mitmdump":
            argv += ["--set", "flow_detail=0"]
        for script in scripts:
            argv += ["-s", str(ADDONS / script) if "/" not in script else script]
        for key, value in (options or {}).items():
            for item in value if isinstance(value, list) else [value]:
                argv += ["--set", f"{key}={_option_text(item)}"]
        argv += list(extra)
        super().__init__(argv, _MITM_LISTENING)

    @property
    def port(self) -> int:
        return int(self.match.group(2))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Simulator(Process):
    """The gateway simulator (``python -m cachepin_tools.simulator``) on 127.0.0.1, port chosen by the OS."""

    def __init__(self, *args: str) -> None:
        super().__init__([sys.executable, "-m", "cachepin_tools.simulator", "--port", "0", *args], _SIM_LISTENING,
                         name="gateway_sim")

    @property
    def url(self) -> str:
        return self.match.group(1)


def _option_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes (for log lines that arrive late)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
