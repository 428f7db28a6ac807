"""Conversations that start alike but are not one: each history is a branch, a thread of its own.

A session fingerprinted from its start (no client id) and a lineage thread
both name what a provider caches first: tools, system prompt, first user
message. Two conversations that begin alike (two runs of one script, two
users asking an agent the same first question) share both, yet their caches
part at the first reply: judged as one thread, the turns of the second look
like misses of the first's. So within such a session a request that does not
extend the latest request of its thread starts a branch, which has to write
its own cache (its first turn is cold, not a miss); a later request goes to
the branch it extends.

"Extends" means: every block of the branch's latest request but the last is
where it was (the last one is the user turn that clients still rewrite, e.g.
Claude Code's reminders). A session named by the client is one conversation
whatever its history does, so its rewrites stay misses, with their reason;
only fingerprinted sessions branch.
"""

from __future__ import annotations

from collections import OrderedDict

from cachepin.request.thread import Thread

DIGEST = 16  # bytes per block in ``Snapshot.digests``
BRANCH_SOURCE = "branch"


def extends(digests: bytes, latest: bytes) -> bool:
    """Whether a request (its block digests) continues the one whose digests are ``latest``."""
    return digests.startswith(latest[:-DIGEST])


class Branches:
    """The latest request of each branch, by (session, thread@model family, branch number); bounded."""

    def __init__(self, max_heads: int = 20_000) -> None:
        self._latest: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()
        self._max_heads = max_heads

    def thread_for(self, session: str, thread: Thread, family: str, digests: bytes) -> Thread:
        """The branch of ``thread`` this request continues, or a new one; ``thread`` itself for the first."""
        key = f"{thread.thread_id}@{family}"
        branch = 1
        latest = self._latest.get((session, key, branch))
        while latest is not None and not extends(digests, latest):
            branch += 1
            latest = self._latest.get((session, key, branch))
        head = (session, key, branch)
        self._latest[head] = digests
        self._latest.move_to_end(head)
        while len(self._latest) > self._max_heads:
            self._latest.popitem(last=False)
        if branch == 1:
            return thread
        return Thread(f"{thread.thread_id}.{branch}", BRANCH_SOURCE, thread.parent)
