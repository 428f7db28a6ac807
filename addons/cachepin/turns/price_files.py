"""The price files ``cache_prices`` accepts, told apart by their content.

A user's file is one of three: an override object (``{"model": {"input":
3.0, ...}}``, merged field by field), a data file as ``scripts/update-prices``
writes it (``{"generated_at", "source", "models"}``, merged the same way), or
a copy of LiteLLM's own database (``model_prices_and_context_window.json``),
whose models replace the shipped ones whole: it is the database the shipped
table comes from, only fresher.
"""

from __future__ import annotations

from pathlib import Path

from cachepin.turns.litellm import PROVIDERS, is_litellm, prices_of
from cachepin.turns.models import DEFAULT_PRICES, PriceTable, read_json, table_from


def load_prices(path: str | Path, base: PriceTable = DEFAULT_PRICES) -> PriceTable:
    """``base`` with the prices of the file at ``path`` over it (USD per million tokens).

    Any problem raises ValueError naming the file (and the model and field
    when it is about one).
    """
    source = str(path)
    data = read_json(path, "price file")
    if isinstance(data, dict) and is_litellm(data):
        prices = prices_of(data, source)
        if not prices:
            raise ValueError(f"{source}: a LiteLLM price file without any chat model of "
                             f"{', '.join(PROVIDERS)}")
        return base.updated(prices)
    return table_from(data, source, base)
