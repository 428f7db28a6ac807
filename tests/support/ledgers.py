"""Usage figures and ledgers in known states, for the tests of the ledger and of everything that renders it."""

from __future__ import annotations

import random

from cachepin.request.thread import Thread
from cachepin.response.usage import Usage
from cachepin.turns.ledger import Ledger


def usage(
    read: int | None = 0,
    creation: int | None = 0,
    input_tokens: int | None = 10,
    output: int | None = 5,
    *,
    model: str | None = "claude-sonnet-4-5",
) -> Usage:
    """An Anthropic usage record with these figures (``None``: not reported)."""
    return Usage("anthropic", model, input_tokens, creation, read, output)


SID = "3f2a9c1e-0000-4000-8000-000000000000"


def record(
    ledger: Ledger,
    session_id: str,
    read: int | None,
    *,
    status: int = 200,
    creation: int | None = 0,
    input_tokens: int | None = 10,
    ttft_ms: float | None = 120.26,
) -> list[str]:
    """One streamed turn of ``session_id`` reading ``read`` (``None``: no usage at all); its new failures."""
    reported = None if read is None else Usage("anthropic", "claude-sonnet-4-5", input_tokens, creation, read, 7)
    _, new = ledger.record(
        session_id, "header", flow_id=f"flow-{read}", started_at=1_700_000_000.25, status=status, stream=True,
        usage=reported, model=None, ttft_ms=ttft_ms, duration_ms=1500.04,
    )  # fmt: skip
    return new


def long_session(ledger: Ledger, turns: int, session_id: str = "long", *, threads: bool = True) -> Ledger:
    """``turns`` turns of one session, the same for every ledger: hits, misses, error turns, turns without usage
    or without cache figures, on two models, and (``threads``) sub-agents opening threads of their own."""
    rng = random.Random(14)
    for n in range(turns):
        kind, model = rng.random(), "claude-sonnet-4-5" if rng.random() < 0.9 or not threads else "claude-haiku-4-5"
        thread = None
        if threads:
            thread = Thread("main", "header") if rng.random() < 0.8 else Thread(f"agent-{rng.randrange(6)}", "header",
                                                                                 parent="main")
        read = 0 if rng.random() < 0.3 else rng.randrange(1_000, 90_000)
        reported: Usage | None = Usage("anthropic", model, rng.randrange(1, 50), rng.randrange(0, 3_000), read,
                                       rng.randrange(1, 900))
        status, error = 200, None
        if kind < 0.1:
            status, reported = 529, None
        elif kind < 0.13:
            error = "stream cut"
        elif kind < 0.15:
            reported = None
        elif kind < 0.17:
            reported = Usage("anthropic", model, 10, None, None, 5)
        ledger.record(session_id, "header", flow_id=f"flow-{n}", started_at=1_700_000_000.0 + n, status=status,
                      stream=True, usage=reported, model=model, ttft_ms=100.0, duration_ms=900.0, error=error,
                      thread=thread)
    return ledger
