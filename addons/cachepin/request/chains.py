"""OpenAI Responses conversations chained by ``previous_response_id``.

Such a request resends only the new input, so its fingerprint changes every
turn; but it names the response it continues, and that response belongs to a
session already. Each addon learns the id of every response it sees and looks
up the session of the one a request continues; the audit also learns its
thread, which a chained request continues rather than starting a lineage of
its own (its start is not in it). Within one proxy instance only: a replica
that did not see the previous response cannot know it.
"""

from __future__ import annotations

from collections import OrderedDict

LIMIT = 100_000  # response ids remembered (about 200 bytes each), the oldest forgotten first


class ResponseChains:
    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._sessions: OrderedDict[str, tuple[str, str, object]] = OrderedDict()  # response id -> session id,
        # source, thread (the audit's ``Thread``; opaque here, which the thread module imports)

    def learn(self, response_id: str | None, session_id: str, source: str, thread: object = None) -> None:
        if not response_id:
            return
        self._sessions[response_id] = session_id, source, thread
        self._sessions.move_to_end(response_id)
        while len(self._sessions) > self._limit:
            self._sessions.popitem(last=False)

    def session_of(self, body: dict) -> str | None:
        """The session of the response this request continues, when this proxy saw it."""
        previous = body.get("previous_response_id")
        known = self._sessions.get(previous) if isinstance(previous, str) else None
        return known[0] if known else None

    def thread_of(self, response_id: str) -> object:
        """The thread of a response this proxy saw (None: unknown, or learned without one)."""
        known = self._sessions.get(response_id)
        return known[2] if known else None

    def __len__(self) -> int:
        return len(self._sessions)
