"""The sessions this proxy has pinned already: the first request of a session is worth an INFO line, later ones
only DEBUG.

Bounded, the least recently seen forgotten first: a forgotten session is only logged as new once more.
"""

from __future__ import annotations

from collections import OrderedDict

LIMIT = 100_000  # sessions remembered


class SeenSessions:
    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._seen: OrderedDict[str, None] = OrderedDict()  # least recently seen first

    def add(self, session_id: str) -> bool:
        """Remembers ``session_id`` as the most recently seen; True when it was new (or forgotten)."""
        if session_id in self._seen:
            self._seen.move_to_end(session_id)
            return False
        self._seen[session_id] = None
        if len(self._seen) > self._limit:
            self._seen.popitem(last=False)
        return True
