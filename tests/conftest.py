"""Shared fixtures: a recording upstream, mitmdump runs (addons/ and tests/ are on pytest's pythonpath).

Property-based tests run on a fixed profile in CI (``CI`` set, as ``.ci/run``
has it, or ``HYPOTHESIS_PROFILE=ci``): derandomized, so a run tests the same
examples every time and a submission cannot fail by chance. Locally they
explore new random examples on every run, remembered in ``.hypothesis/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from llm_upstream import FakeUpstream

from cachepin_tools.harness.processes import Mitmdump

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))


@pytest.fixture(autouse=True, scope="session")
def private_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A HOME of the suite's own: mitmproxy's default confdir is ~/.mitmproxy, where the addons keep their salt
    (and mitmproxy its CA), and no test may write to, or depend on, the real one."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        yield home


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def mitmdump(tmp_path: Path):
    """Start mitmdump processes with ``mitmdump(upstream_url, scripts, options=...)``; all are stopped after."""
    started: list[Mitmdump] = []

    def start(upstream_url: str, scripts=("inject.py",), **kwargs) -> Mitmdump:
        kwargs.setdefault("confdir", str(tmp_path / f"confdir{len(started)}"))
        proc = Mitmdump(upstream_url, scripts, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def direct(monkeypatch: pytest.MonkeyPatch) -> None:
    """Talk to 127.0.0.1 directly, whatever proxy the environment names."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
