"""Shared fixtures: a recording upstream, mitmdump runs (addons/ and tests/ are on pytest's pythonpath)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cachepin_tools.harness.processes import Mitmdump
from fake_upstream import FakeUpstream


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
