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
from cachepin.request.prefix import Block, prefix_blocks

TTL_5M = 300.0  # Anthropic's default; OpenAI's prompt_cache_retention "in_memory" (cleared after 5-10 min idle)
TTL_30M = 1800.0  # OpenAI's prompt_cache_options / prompt_cache_breakpoint ttl "30m" (GPT-5.6+)
TTL_1H = 3600.0
TTL_12H = 43200.0  # OpenAI's ttl "12h"
TTL_24H = 86400.0  # OpenAI's prompt_cache_retention "24h" (models before GPT-5.6)
_OPENAI_TTLS = {"30m": TTL_30M, "12h": TTL_12H}
_RETENTIONS = {"in_memory": TTL_5M, "24h": TTL_24H}
_MARKER_DIALECTS = frozenset({Dialect.ANTHROPIC, Dialect.BEDROCK_INVOKE})
_STEPPED_DIALECTS = frozenset({Dialect.OPENAI_CHAT, Dialect.OPENAI_RESPONSES})
OPENAI_READ_STEP = 128  # OpenAI reports cached_tokens in 128-token steps (docs/providers.md, minimum prefix)
OPENAI_WRITES = 4  # breakpoints an OpenAI request writes, the implicit one included when it is on
ANTHROPIC_MARKER = "cache_control"
OPENAI_MARKER = "prompt_cache_breakpoint"


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
    explicit: bool  # only what sits at a breakpoint is cached (Anthropic; OpenAI's breakpoint options); else any prefix
    read_step: int  # reads come in steps of this many tokens (OpenAI: 128), so a shorter prefix reads nothing
    marker: str  # the field placing its breakpoints: "cache_control", "prompt_cache_breakpoint", "" (automatic)
    digests: bytes  # 16 bytes per block, in cache order
    ends: array[int]  # running token estimate at the end of each block
    paths: str  # the blocks' JSON paths, joined by newlines
    entries: tuple[tuple[int, float | None], ...]  # (last block index, TTL seconds) of what the request caches;
    # a TTL of None is the model's default (the request sets none; the explainer knows the model's rule)

    @classmethod
    def from_request(cls, dialect: Dialect, body: dict, at: float) -> Snapshot:
        """Summarise ``body`` (a request of ``dialect``) sent at time ``at``.

        Anthropic caches up to each breakpoint; top-level ``cache_control``
        (automatic mode) puts one on the last block. OpenAI caches the whole
        prompt, for the model's default time or as ``prompt_cache_retention``
        says; on GPT-5.6 and later, ``prompt_cache_options`` and
        ``prompt_cache_breakpoint`` place breakpoints (``openai_entries``).
        Gemini and DeepSeek cache automatically, one entry over the whole
        prompt. Dialects without a known layout (Bedrock Converse) give an
        empty snapshot.
        """
        blocks = prefix_blocks(dialect, body)
        explicit = dialect in _MARKER_DIALECTS
        ttls: dict[int, float | None] = {}
        last = len(blocks) - 1
        if explicit:
            top = body.get("cache_control")
            for index, block in enumerate(blocks):
                if block.breakpoint:
                    ttls[index] = TTL_1H if block.ttl == "1h" else TTL_5M
            if isinstance(top, dict) and blocks:
                ttls[last] = max(ttls.get(last) or 0.0, _ttl_seconds(top))
        elif dialect in _STEPPED_DIALECTS:
            explicit, ttls = openai_entries(body, blocks)
        elif blocks:
            ttls[last] = TTL_5M
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
            marker=ANTHROPIC_MARKER if dialect in _MARKER_DIALECTS else OPENAI_MARKER if explicit else "",
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


def openai_entries(body: dict, blocks: list[Block]) -> tuple[bool, dict[int, float | None]]:
    """Whether an OpenAI request places breakpoints, and the entries it writes.

    ``prompt_cache_options`` (``mode``, ``ttl``) and ``prompt_cache_breakpoint``
    on content parts exist on GPT-5.6 and later only, where an entry is read
    only at a breakpoint: the implicit one OpenAI puts on the newest message
    (unless ``mode`` is ``"explicit"``) and the explicit ones, of which a
    request writes the latest four, three besides the implicit one. A TTL
    comes from the breakpoint, else from the request (``prompt_cache_options.ttl``,
    or ``prompt_cache_retention`` on earlier models), else it is None: the
    model's default. A request without either option caches its whole prompt.
    """
    options = body.get("prompt_cache_options")
    options = options if isinstance(options, dict) else None
    marked = [index for index, block in enumerate(blocks) if block.breakpoint]
    request_ttl = _seconds(_OPENAI_TTLS, (options or {}).get("ttl")) or _seconds(_RETENTIONS,
                                                                                  body.get("prompt_cache_retention"))
    if not blocks:
        return bool(options or marked), {}
    implicit = options is None or options.get("mode") != "explicit"
    ttls: dict[int, float | None] = {index: _seconds(_OPENAI_TTLS, blocks[index].ttl) or request_ttl
                                     for index in marked[-(OPENAI_WRITES - implicit):]}
    if implicit:
        ttls.setdefault(len(blocks) - 1, request_ttl)
    return options is not None or bool(marked), ttls


def _seconds(ttls: dict[str, float], value: object) -> float | None:
    """The TTL a request field names; None for a value that is not one of them (any JSON a client sent)."""
    return ttls.get(value) if isinstance(value, str) else None
