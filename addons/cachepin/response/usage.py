"""The normalised usage record: one per LLM response, with Anthropic semantics.

The four counts are additive: ``input_tokens`` is input neither read from nor
written to the cache. ``None`` means the provider did not report that figure,
which is different from a reported zero.
"""

from __future__ import annotations

from dataclasses import dataclass

COUNT_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
"""The four additive counts, in the order every output lists them."""
SPLIT_FIELDS = ("cache_creation_5m", "cache_creation_1h")
"""The TTL split of ``cache_creation_input_tokens``, when the provider reports one."""


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

    def counts(self) -> tuple[int | None, ...]:
        """The four counts of ``COUNT_FIELDS``, in that order."""
        return self.input_tokens, self.cache_creation_input_tokens, self.cache_read_input_tokens, self.output_tokens

    @property
    def reports_cache(self) -> bool:
        """True when the provider said anything about the cache (read count present)."""
        return self.cache_read_input_tokens is not None
