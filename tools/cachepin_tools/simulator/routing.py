"""Which account of the simulated gateway serves a request, and why.

Gateways pin a conversation to one upstream account when the request names
its session (a header, or OpenAI's ``prompt_cache_key``) and spread the rest;
the simulator does the same, so that session affinity is what decides whether
a conversation keeps finding its prompt cache.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import count

SESSION_HEADERS = ("x-session-id", "x-session-affinity")  # first present wins


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request went, and why."""

    account: int
    session: str | None  # the session header value, if any
    via: str  # "x-session-id", "x-session-affinity", "prompt_cache_key", "round-robin" or "random"


def session_header(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """The first non-empty session header (lower-cased name, value); names match case-insensitively."""
    lowered = {name.lower(): value for name, value in headers.items()}
    return next(((name, lowered[name]) for name in SESSION_HEADERS if lowered.get(name)), None)


def stable_account(key: str, accounts: int) -> int:
    """The account a session key pins to: sha256, so it is the same in every process and run."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:8], "big") % accounts


class Router:
    """A gateway's load balancer: sticky by session key, otherwise spreading requests."""

    def __init__(self, accounts: int, seed: int | None = None) -> None:
        self._accounts = accounts
        self._rng = random.Random(seed) if seed is not None else None
        self._turn = count()

    def route(self, headers: Mapping[str, str], body: Mapping[str, object]) -> Route:
        """Session header first, then body ``prompt_cache_key``, else round-robin (random if seeded)."""
        seen = session_header(headers)
        if seen is not None:
            return Route(stable_account(seen[1], self._accounts), seen[1], seen[0])
        key = body.get("prompt_cache_key")
        if isinstance(key, str) and key:
            return Route(stable_account(key, self._accounts), None, "prompt_cache_key")
        if self._rng is not None:
            return Route(self._rng.randrange(self._accounts), None, "random")
        return Route(next(self._turn) % self._accounts, None, "round-robin")
