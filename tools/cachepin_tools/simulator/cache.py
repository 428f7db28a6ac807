"""What an account's prompt cache does with a request: what it reads, what it writes, what stays uncached.

Kept apart from the HTTP layer (``server.py``) so the caching rules can be
unit-tested without sockets, with an injected clock.

A request is seen as the blocks of ``prompt.prompt_blocks``, with their token
estimates (one per started group of four characters), so every figure the
simulator reports is exactly what its cache did. That view, like these rules,
is the simulator's own, written from the providers' documentation: cachepin's
explainer must agree with it from the outside.

Anthropic rules (``/v1/messages``):

- The prefix runs tools -> system -> messages. A ``cache_control`` marker on a
  block is a breakpoint; a top-level ``cache_control`` (automatic mode) adds one
  on the last block. More than 4 breakpoints, or a ``"ttl": "1h"`` breakpoint
  after a 5-minute one, is a 400.
- A breakpoint whose cumulative prefix is below the model's minimum is ignored:
  a request without a usable breakpoint caches nothing and reads nothing.
- A cache entry is the cumulative hash of (model, blocks up to a breakpoint).
  The lookup checks each breakpoint and the ``LOOKBACK_BLOCKS`` block boundaries
  before it; the longest live entry is read (``cache_read_input_tokens``) and its
  TTL refreshed. Everything from there up to the last usable breakpoint is
  written (``cache_creation_input_tokens``, split 5m/1h by the breakpoint that
  ends each stretch); the rest is ``input_tokens``.

OpenAI rules (``/v1/chat/completions``, ``/v1/responses``):

- Automatic: a prompt of at least the minimum is cached at every block boundary
  from the minimum on. The longest live boundary is read, rounded down to
  ``OPENAI_CACHE_STEP`` tokens (``cached_tokens``); ``prompt_tokens`` includes
  it, and nothing is reported as written. ``prompt_cache_retention: "24h"``
  keeps entries for 24 h instead of 5 min.

Both: entries live per account (accounts never share a cache) and become
readable only when the request that wrote them commits, i.e. when its response
completes. TTLs are 5 min or 1 h, refreshed on a hit, multiplied by
``ttl_scale``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import accumulate, pairwise

from cachepin_tools.simulator.prompt import Api, Block, prompt_blocks

MAX_BREAKPOINTS = 4  # Anthropic rejects a fifth cache_control marker
LOOKBACK_BLOCKS = 20  # Anthropic checks about 20 blocks before each breakpoint
OPENAI_CACHE_STEP = 128  # OpenAI's cached_tokens moves in 128-token steps
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0, "24h": 86400.0}

Clock = Callable[[], float]


class CacheControlError(ValueError):
    """The request's cache_control markers break a rule the real API enforces with a 400."""


@dataclass(frozen=True, slots=True)
class CacheRules:
    """The knobs of the simulated cache, fixed for a run."""

    min_tokens: int = 64  # small so tests stay fast; real minimums are 1024 to 4096
    model_min_tokens: Mapping[str, int] = field(default_factory=dict)  # model-name prefix -> minimum
    ttl_scale: float = 1.0  # multiplies every TTL, to shrink time in tests

    def minimum_for(self, model: str) -> int:
        """The minimum for ``model``: the longest matching prefix override, else the default.

        Prefixes let one entry cover dated ids (``claude-haiku-4-5`` matches
        ``claude-haiku-4-5-20251001``).
        """
        matches = [prefix for prefix in self.model_min_tokens if model.startswith(prefix)]
        return self.model_min_tokens[max(matches, key=len)] if matches else self.min_tokens

    def ttl(self, label: str) -> float:
        """Seconds an entry written with ``label`` (``5m``, ``1h``, ``24h``) lives, after scaling."""
        return TTL_SECONDS[label] * self.ttl_scale


@dataclass(frozen=True, slots=True)
class CacheUsage:
    """What the cache did for one request, with Anthropic's additive semantics."""

    input_tokens: int  # neither read from nor written to the cache
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    cache_creation_5m: int = 0
    cache_creation_1h: int = 0

    @property
    def prompt_tokens(self) -> int:
        """The whole prompt, as OpenAI counts it (cached tokens included)."""
        return self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens


@dataclass(frozen=True, slots=True)
class Write:
    """One cache entry a request creates or refreshes when it commits."""

    key: bytes
    ttl: float


@dataclass(frozen=True, slots=True)
class CachePlan:
    """The outcome of a request on one account; its writes land only on ``commit``."""

    account: int
    usage: CacheUsage
    writes: tuple[Write, ...]


@dataclass(slots=True)
class _Entry:
    expires: float
    ttl: float


class PromptCache:
    """One prompt cache per upstream account."""

    def __init__(self, accounts: int, rules: CacheRules, clock: Clock = time.monotonic) -> None:
        self._stores: list[dict[bytes, _Entry]] = [{} for _ in range(accounts)]
        self._rules = rules
        self._clock = clock

    def plan(self, account: int, api: str, body: Mapping[str, object]) -> CachePlan:
        """Read (and refresh) the longest cached prefix now; work out what the request would write.

        ``api`` is an ``Api`` value (cachepin's ``Dialect`` of the same name is the same string).
        Raises ``CacheControlError`` for markers the real API rejects.
        """
        model = str(body.get("model", ""))
        blocks = prompt_blocks(api, body)
        if Api(api) is Api.ANTHROPIC:
            return self._plan_anthropic(account, model, _with_automatic_breakpoint(blocks, body))
        retention = "24h" if body.get("prompt_cache_retention") == "24h" else "5m"
        return self._plan_openai(account, model, blocks, retention)

    def commit(self, plan: CachePlan) -> None:
        """Make the plan's entries readable: its response has completed."""
        store = self._stores[plan.account]
        now = self._clock()
        for write in plan.writes:
            store[write.key] = _Entry(now + write.ttl, write.ttl)

    def _plan_anthropic(self, account: int, model: str, blocks: Sequence[Block]) -> CachePlan:
        breakpoints = [i for i, block in enumerate(blocks) if block.breakpoint]
        _check_breakpoints([blocks[i] for i in breakpoints])
        keys = _cumulative_keys(f"anthropic\x00{model}", blocks)
        totals = list(accumulate(block.tokens for block in blocks))
        minimum = self._rules.minimum_for(model)
        usable = [i for i in breakpoints if totals[i] >= minimum]
        hit = self._read(account, keys, {p for i in usable for p in range(max(0, i - LOOKBACK_BLOCKS), i + 1)})
        read = totals[hit] if hit is not None else 0
        written = _written_by_ttl(blocks, totals, usable, read)
        end = read + sum(written.values())
        usage = CacheUsage((totals[-1] if totals else 0) - end, read, end - read, written["5m"], written["1h"])
        return CachePlan(account, usage, tuple(Write(keys[i], self._rules.ttl(_ttl(blocks[i]))) for i in usable))

    def _plan_openai(self, account: int, model: str, blocks: Sequence[Block], retention: str) -> CachePlan:
        keys = _cumulative_keys(f"openai\x00{model}", blocks)
        totals = list(accumulate(block.tokens for block in blocks))
        total = totals[-1] if totals else 0
        minimum = self._rules.minimum_for(model)
        if total < minimum:
            return CachePlan(account, CacheUsage(total, 0, 0), ())
        usable = [i for i, tokens in enumerate(totals) if tokens >= minimum]
        hit = self._read(account, keys, usable)
        cached = totals[hit] // OPENAI_CACHE_STEP * OPENAI_CACHE_STEP if hit is not None else 0
        ttl = self._rules.ttl(retention)
        return CachePlan(account, CacheUsage(total - cached, cached, 0), tuple(Write(keys[i], ttl) for i in usable))

    def _read(self, account: int, keys: Sequence[bytes], positions: Iterable[int]) -> int | None:
        """The furthest of ``positions`` with a live entry, whose TTL the hit refreshes."""
        store = self._stores[account]
        now = self._clock()
        for position in sorted(positions, reverse=True):
            entry = store.get(keys[position])
            if entry is None:
                continue
            if entry.expires <= now:
                del store[keys[position]]
                continue
            entry.expires = now + entry.ttl
            return position
        return None


def _with_automatic_breakpoint(blocks: list[Block], body: Mapping[str, object]) -> list[Block]:
    """Automatic mode: a top-level ``cache_control`` is a breakpoint on the last block."""
    marker = body.get("cache_control")
    if not isinstance(marker, dict) or not blocks:
        return blocks
    ttl = "1h" if marker.get("ttl") == "1h" else "5m"
    return [*blocks[:-1], replace(blocks[-1], ttl=ttl)]


def _ttl(breakpoint: Block) -> str:
    return breakpoint.ttl or "5m"


def _written_by_ttl(blocks: Sequence[Block], totals: Sequence[int], usable: Iterable[int], read: int) -> dict[str, int]:
    """Tokens written past the ``read`` prefix: each stretch takes the TTL of the breakpoint that ends it."""
    written = {"5m": 0, "1h": 0}
    upto = read
    for i in usable:
        if totals[i] > upto:
            written[_ttl(blocks[i])] += totals[i] - upto
            upto = totals[i]
    return written


def _check_breakpoints(breakpoints: Sequence[Block]) -> None:
    """The two marker rules the real API enforces with a 400."""
    if len(breakpoints) > MAX_BREAKPOINTS:
        raise CacheControlError(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {len(breakpoints)}."
        )
    if any((a.ttl, b.ttl) == ("5m", "1h") for a, b in pairwise(breakpoints)):
        raise CacheControlError(
            "A cache_control block with ttl='1h' must not come after a cache_control block with ttl='5m'."
        )


def _cumulative_keys(seed: str, blocks: Iterable[Block]) -> list[bytes]:
    """Key i identifies the prefix ending with block i: a hash chain over the block digests."""
    state = hashlib.sha256(seed.encode()).digest()
    keys = []
    for block in blocks:
        state = hashlib.sha256(state + block.digest).digest()
        keys.append(state[:16])
    return keys
