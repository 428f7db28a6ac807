"""The usage record every renderer starts from: what a request's prompt did in the cache, and its output.

The counts are additive, as Anthropic reports them: ``input`` tokens were
neither read from the cache nor written to it. Each API's renderer turns them
into its own usage object (OpenAI-style totals include the cached part).
``None`` for ``read`` or ``creation`` renders a usage object that says nothing
about that figure, as providers without cache figures send.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tokens:
    input: int  # neither read from nor written to the cache
    read: int | None = 0  # read from the cache
    creation: int | None = 0  # written to the cache
    output: int = 0  # reasoning included
    creation_5m: int | None = None  # the split of ``creation`` by TTL, for APIs that report it
    creation_1h: int | None = None
    reasoning: int = 0  # of ``output``: OpenAI Responses' reasoning tokens, Gemini's thoughts

    @property
    def prompt(self) -> int:
        """The whole prompt, as OpenAI and Gemini count it (cached tokens included)."""
        return self.input + (self.read or 0) + (self.creation or 0)

    @property
    def split(self) -> bool:
        """Whether the record says how the written tokens divide between the two TTLs."""
        return self.creation_5m is not None or self.creation_1h is not None
