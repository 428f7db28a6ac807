"""What the audit's option values make together, beyond each value's own parse (``options.py``): the explainer.

The audit addon builds a new one from the values as they are whenever one of
``EXPLAINER_OPTIONS`` changes, and on ``cache.reset``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cachepin import options
from cachepin.turns.explain import Explainer

EXPLAINER_OPTIONS = frozenset({"cache_ttl_scale", "cache_minimums", "cache_max_sessions", "cache_explain"})
"""The options whose change starts a new explainer: those it is built from, and ``cache_explain``, since the
requests read while it was off left no snapshot to compare the next ones with."""


def explainer(ttl_scale: str, minimums: Sequence[str], max_sessions: int) -> Explainer:
    """A new explainer (``cache_ttl_scale``, ``cache_minimums``) that remembers the previous request of as many
    sessions as the ledger holds (``cache_max_sessions``, 0: unlimited), two models each: the main one and a side
    one such as a title call's."""
    return Explainer(ttl_scale=options.ttl_scale(ttl_scale), minimums=options.minimums(minimums),
                     max_sessions=2 * max_sessions or sys.maxsize)
