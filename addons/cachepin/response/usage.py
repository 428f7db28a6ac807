"""The normalised usage record: one per LLM response, with Anthropic semantics.

The four counts are additive: ``input_tokens`` is input neither read from nor
written to the cache. ``None`` means the provider did not report that figure,
which is different from a reported zero.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Usage:
    provider: str  # e.g. "anthropic", "openai", "deepseek", "gemini", "openrouter", "bedrock"
    model: str | None
    input_tokens: int | None
    cache_creation_input_tokens: int | None
    cache_read_input_tokens: int | None
    output_tokens: int | None
    cache_creation_5m: int | None = None  # TTL split of the creation, when reported
    cache_creation_1h: int | None = None

    @property
    def reports_cache(self) -> bool:
        """True when the provider said anything about the cache (read count present)."""
        return self.cache_read_input_tokens is not None
