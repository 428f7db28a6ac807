"""Where the harness's conversations go: a provider or gateway URL, or the gateway simulator started for it."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from cachepin_tools.harness.command import RunError
from cachepin_tools.harness.processes import Simulator

SIM_MIN_TOKENS = 64  # the simulator's minimum cacheable prompt; the audit is told the same (cache_minimums)


@dataclass(frozen=True, slots=True)
class Target:
    """Where mitmdump forwards to (``origin``, for ``--mode reverse:``) and the path a gateway puts
    before the provider's API paths (``prefix``, e.g. ``/anthropic``; reverse mode takes no path)."""

    origin: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> Target:
        """Raises ValueError with a message fit for the user."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL, not {url!r}")
        if parts.username or parts.password:
            raise ValueError("the URL must not hold credentials (they would be printed); use --api-key-env")
        if parts.query or parts.fragment:
            raise ValueError(f"the URL must not have a query or fragment: {url!r}")
        try:
            parts.port  # noqa: B018 - raises for a port out of range
        except ValueError as error:
            raise ValueError(f"bad port in {url!r}: {error}") from None
        return cls(f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/"))

    def check_reachable(self, timeout: float = 10.0) -> None:
        """Fail early with a clear message instead of a 502 from mitmdump after everything started."""
        parts = urlsplit(self.origin)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname, port), timeout=timeout).close()
        except OSError as error:
            raise RunError(f"cannot reach the target {self.origin} ({parts.hostname}:{port}): {error}") from None


def start_simulator(event_delay: float) -> Simulator:
    """The gateway simulator on 127.0.0.1 with its defaults (3 accounts, round-robin without affinity)."""
    try:
        return Simulator("--min-tokens", str(SIM_MIN_TOKENS), "--event-delay", str(event_delay))
    except RuntimeError as error:
        raise RunError(str(error)) from None


SIMULATOR_AUDIT_OPTIONS = {"cache_minimums": f"*={SIM_MIN_TOKENS}"}
"""Audit options for a simulated upstream: its minimum, so the explainer does not call misses below_minimum."""
