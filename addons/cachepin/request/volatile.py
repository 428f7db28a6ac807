"""Blocks a client changes on every request that the provider does not let break the cache.

Claude Code's first system block is its billing header
(``x-anthropic-billing-header: cc_version=…; cc_entrypoint=…;`` and, against
the first-party API, ``cch=<a per-request hash>;``). It changes with every
release, and with ``cch=`` on every request, yet Claude Code's later turns
read the cache: the provider evidently leaves it out of the cached prefix. So
the fingerprint, the thread lineage and the prefix snapshot all leave it out,
by this one rule.
"""

from __future__ import annotations

BILLING_HEADER = "x-anthropic-billing-header:"


def is_volatile_system_text(text: str) -> bool:
    """Whether a system block's text is one the provider does not cache by."""
    return text.lstrip().startswith(BILLING_HEADER)
