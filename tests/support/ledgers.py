"""Usage figures and ledgers in known states, for the tests of the ledger and of everything that renders it."""

from __future__ import annotations

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
