"""What a turn cost with and without the prompt cache, from the price table.

The point of pinning a session is money: a cache read costs a tenth of fresh
input on Anthropic, a write costs more. Pricing each turn twice, as billed and
as if nothing had been cached, turns the hit rate into a saving (which is
negative on a cold turn, because writes carry a surcharge).
"""

from __future__ import annotations

from dataclasses import dataclass

from cachepin.response.usage import Usage
from cachepin.turns.models import DEFAULT_PRICES, PriceTable


@dataclass(frozen=True, slots=True)
class Cost:
    """What a turn (or a sum of turns) cost in USD, as billed and as if nothing had been cached.

    Kept unrounded; round only for presentation (``as_dict``).
    """

    billed: float
    uncached: float

    @property
    def saving(self) -> float:
        """What the cache saved; negative when writes cost more than reads saved."""
        return self.uncached - self.billed

    def as_dict(self, digits: int = 6) -> dict[str, float]:
        """The three figures rounded for a report, an event or a log line."""
        return {
            "billed": round(self.billed, digits),
            "uncached": round(self.uncached, digits),
            "saving": round(self.saving, digits),
        }


def cost(usage: Usage | None, table: PriceTable = DEFAULT_PRICES) -> Cost | None:
    """The cost of one response, or None for an unknown model or a response without usage.

    Counts are additive (Anthropic semantics): ``input_tokens`` excludes the
    cache, so OpenAI's inclusive ``prompt_tokens`` must arrive normalised.
    Cache writes are priced by their TTL split when the provider reports one;
    creation tokens outside the split are priced as writes of the default TTL
    (Anthropic's 5 min, OpenAI's 30 min). A long prompt is billed at the price
    tier its length exceeds, whole. Without the cache, every read and written
    token would have been plain input.
    """
    if usage is None:
        return None
    counts = usage.counts()
    price = table.get(usage.model)
    if price is None or all(count is None for count in counts):
        return None
    fresh, created, read, output = (count or 0 for count in counts)
    one_hour = usage.cache_creation_1h or 0
    created = max(created, (usage.cache_creation_5m or 0) + one_hour)
    five_min = created - one_hour
    price = price.at(fresh + created + read)
    billed = (
        fresh * price.input
        + read * price.cache_read
        + five_min * price.cache_write_5m
        + one_hour * price.cache_write_1h
        + output * price.output
    )
    uncached = (fresh + read + created) * price.input + output * price.output
    return Cost(billed / 1e6, uncached / 1e6)
