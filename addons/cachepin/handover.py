"""State that outlives a hot reload of an addon script.

mitmproxy reloads only the ``-s`` file: it calls ``done()`` on the old
instance and builds a new one, while the modules the script imports (this
one) stay. An addon parks its state here in ``done()`` and takes it back in
``load()``, so editing the script does not wipe a run's ledger.
"""

from __future__ import annotations

from collections.abc import Hashable

_parked: dict[Hashable, object] = {}


def give(key: Hashable, state: object) -> None:
    _parked[key] = state


def take(key: Hashable) -> object | None:
    return _parked.pop(key, None)
