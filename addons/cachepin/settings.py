"""What the audit's option values mean together, beyond each value's own parse (``options.py``).

The audit addon passes the values as they are when it needs them: the
explainer they size and tune, and whether a request is read for the gates.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cachepin import options
from cachepin.turns.explain import Explainer


def explainer(ttl_scale: str, minimums: Sequence[str], max_sessions: int) -> Explainer:
    """A new explainer (``cache_ttl_scale``, ``cache_minimums``) that remembers the previous request of as many
    sessions as the ledger holds (``cache_max_sessions``, 0: unlimited), two models each: the main one and a side
    one such as a title call's."""
    return Explainer(ttl_scale=options.ttl_scale(ttl_scale), minimums=options.minimums(minimums),
                     max_sessions=2 * max_sessions or sys.maxsize)


def judged(expect: str, min_hit: int) -> bool:
    """A gate is set (``cache_expect``, ``cache_min_hit``): the thread and position a request's body shows are
    needed even without the explainer."""
    return expect != "off" or min_hit > 0
