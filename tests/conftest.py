"""Shared fixtures: the repo's scripts/ and tests/ on sys.path, a recording upstream, mitmdump runs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
for folder in (ROOT / "scripts", ROOT / "tests", ROOT / "addons"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from fake_upstream import FakeUpstream  # noqa: E402
from processes import Mitmdump  # noqa: E402


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
