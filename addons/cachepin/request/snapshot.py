"""A text-free summary of one request's cacheable prefix, for comparing the next turn with it.

The explainer needs to know what the previous request of a thread left in the
cache: which blocks, how many tokens up to each, where the breakpoints were
and for how long they hold. Keeping that instead of the request itself keeps
memory small and prompt text out of the proxy's state.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from cachepin.request.dialects import Dialect
from cachepin.request.prefix import prefix_blocks

TTL_5M = 300.0
TTL_1H = 3600.0
TTL_24H = 86400.0  # OpenAI prompt_cache_retention "24h"
_MARKER_DIALECTS = frozenset({Dialect.ANTHROPIC, Dialect.BEDROCK_INVOKE})
_STEPPED_DIALECTS = frozenset({Dialect.OPENAI_CHAT, Dialect.OPENAI_RESPONSES})
OPENAI_READ_STEP = 128  # OpenAI reports cached_tokens in 128-token steps (wire-formats.md, OpenAI)


def _ttl_seconds(marker: object) -> float:
    return TTL_1H if isinstance(marker, dict) and marker.get("ttl") == "1h" else TTL_5M


@dataclass(frozen=True, slots=True, eq=False)
class Snapshot:
    """A text-free summary of one request: just enough to compare the next turn with it.

    About 20 bytes per block plus its path: digests are packed into one bytes
    object, token estimates into an array, paths into one string (paths are
    built from keys and indexes, never from prompt text).
    """

    model: str | None
    at: float  # when the request was sent, in seconds (any clock, as long as it is the same for a session)
    explicit: bool  # caching needs cache_control markers (Anthropic); else the provider caches any prefix
    read_step: int  # reads come in steps of this many tokens (OpenAI: 128), so a shorter prefix reads nothing
    marked: bool  # some cache_control is present, on a block or top-level (automatic mode)
    digests: bytes  # 16 bytes per block, in cache order
    ends: array[int]  # running token estimate at the end of each block
    paths: str  # the blocks' JSON paths, joined by newlines
    entries: tuple[tuple[int, float], ...]  # (last block index, TTL seconds) of what the request caches

    @classmethod
    def from_request(cls, dialect: Dialect, body: dict, at: float) -> Snapshot:
        """Summarise ``body`` (a request of ``dialect``) sent at time ``at``.

        Anthropic caches up to each breakpoint; top-level ``cache_control``
        (automatic mode) puts one on the last block. Other dialects cache
        automatically: one entry over the whole prompt, kept 5 min, or 24 h
        with OpenAI's ``prompt_cache_retention: "24h"``. Dialects without a
        known layout (Bedrock Converse) give an empty snapshot.
        """
        blocks = prefix_blocks(dialect, body)
        explicit = dialect in _MARKER_DIALECTS
        top = body.get("cache_control")
        ttls: dict[int, float] = {}
        last = len(blocks) - 1
        if explicit:
            for index, block in enumerate(blocks):
                if block.breakpoint:
                    ttls[index] = TTL_1H if block.ttl == "1h" else TTL_5M
            if isinstance(top, dict) and blocks:
                ttls[last] = max(ttls.get(last, 0.0), _ttl_seconds(top))
        elif blocks:
            ttls[last] = TTL_24H if body.get("prompt_cache_retention") == "24h" else TTL_5M
        ends = array("I")
        total = 0
        for block in blocks:
            total += block.tokens
            ends.append(total)
        model = body.get("model")
        return cls(
            model=model if isinstance(model, str) else None,
            at=at,
            explicit=explicit,
            read_step=OPENAI_READ_STEP if dialect in _STEPPED_DIALECTS else 0,
            marked=isinstance(top, dict) or any(block.breakpoint for block in blocks),
            digests=b"".join(block.digest for block in blocks),
            ends=ends,
            paths="\n".join(block.path for block in blocks),
            entries=tuple(sorted(ttls.items())),
        )

    def __len__(self) -> int:
        return len(self.ends)

    def digest(self, index: int) -> bytes:
        return self.digests[16 * index : 16 * index + 16]

    def path(self, index: int) -> str:
        return self.paths.split("\n")[index]

    def tokens_before(self, index: int) -> int:
        """Estimated tokens of the blocks before ``index``."""
        return self.ends[index - 1] if index > 0 else 0

    @property
    def cached_tokens(self) -> int:
        """Estimated tokens this request leaves cached (up to its last entry)."""
        return self.ends[self.entries[-1][0]] if self.entries else 0
