"""``scripts/update-prices``: the shipped price table, regenerated from LiteLLM's public price database.

``update`` fetches the ``litellm`` package from PyPI with pip (the only
network it uses), reads ``model_prices_and_context_window.json`` out of the
wheel, converts it with the runtime's own reader (``cachepin.turns.litellm``,
so the shipped table and a ``cache_prices`` copy of the database agree) and
writes ``addons/cachepin/turns/prices.json`` with its date and source.
"""
