"""A deterministic token estimate, shared by the gateway simulator and the miss explainer.

Real tokenizers are model-specific and not available offline; about four
characters per token is the usual rule of thumb for English text and code.
The simulator reports exactly this estimate, so the explainer's figures match
it to the token, and are close enough against real providers.
"""

from __future__ import annotations


def estimate_tokens(text: str) -> int:
    """Tokens in ``text``: one per started group of four characters."""
    return (len(text) + 3) // 4
