"""Snapshots of requests, and where their blocks end, for the tests of the snapshot and of the explainer."""

from __future__ import annotations

from bodies import Body

from cachepin.request.dialects import Dialect
from cachepin.request.snapshot import Snapshot


def snap(body: Body, at: float = 0.0, dialect: Dialect = Dialect.ANTHROPIC) -> Snapshot:
    return Snapshot.from_request(dialect, body, at)


def index_of(snapshot: Snapshot, path: str) -> int:
    return snapshot.paths.split("\n").index(path)


def through(snapshot: Snapshot, path: str) -> int:
    """Estimated tokens up to and including the block at ``path``."""
    return snapshot.tokens_before(index_of(snapshot, path) + 1)
