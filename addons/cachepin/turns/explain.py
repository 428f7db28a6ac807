"""Why a turn read less from the prompt cache than the previous turn left there.

A miss is only actionable with a cause: a client that rewrites its system
prompt needs a different fix from a gateway that spreads a session over
accounts. Per session the explainer keeps a text-free ``Snapshot`` of the
previous request (16-byte block digests, running token estimates, JSON paths,
breakpoints) and, when a turn misses or only partly hits, compares it with the
current request to name exactly one ``Reason`` with numeric evidence.

The model of the cache: each request leaves *entries* behind, one per
breakpoint (Anthropic) or, for providers that cache automatically
(OpenAI-style, Gemini), one covering the whole prompt of which any prefix is
readable. The next turn should read the longest entry that is still valid.
Checks remove entries in a fixed order, and the first check after which the
observed read is no longer clearly short of what remains is the reason:

1. ``no_breakpoint``: an Anthropic request (this one or the previous) without
   any ``cache_control``, or an OpenAI one in ``prompt_cache_options.mode``
   ``"explicit"`` without any ``prompt_cache_breakpoint``, caches nothing;
   first, because without markers no other cause matters.
2. ``below_minimum``: the previous turn's prefix was shorter than the model's
   minimum, so nothing was written (full misses only: any read proves the
   minimum was met). A current prompt that is short because it changed is
   a ``prefix_changed``.
3. ``prefix_changed``: a change invalidates every entry after it, within TTL
   or not, so it comes before time. Where the provider caches any prefix, the
   part before the change stays readable; where it reads only at breakpoints
   (Anthropic, OpenAI GPT-5.6 and later), only the entries before it do.
4. ``no_breakpoint`` again, for Anthropic's lookback: a breakpoint finds an
   entry only about 20 blocks back, so a turn that appends more blocks than
   that before its next breakpoint misses an unchanged prefix (OpenAI's
   breakpoints have no such limit).
5. ``ttl_expired``: entries whose TTL is shorter than the gap: the one the
   request set (Anthropic 5 min or 1 h; OpenAI 30 min or 12 h, or 24 h with
   ``prompt_cache_retention``), else the model's documented default
   (``models.cache_rule``: 5 min, 30 min on GPT-5.6 and later).
6. ``routing``: nothing read although a valid entry should exist: the request
   most likely reached another account or replica.
7. ``unknown``: anything else (e.g. a partial hit no check explains).

A model switch is not a miss to explain: caches are per model, so
``Explainer`` keeps the previous snapshot per (session, model) and the first
request on a model is a first turn for it (as the ledger's cold turn is).

Token figures are ``tokens.estimate_tokens`` estimates, so every comparison
allows ``SLACK_TOKENS`` and ``PARTIAL_RATIO`` of tolerance.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from cachepin.request.snapshot import ANTHROPIC_MARKER, TTL_5M, Snapshot
from cachepin.response.usage import Usage
from cachepin.turns.models import cache_rule, minimum_tokens


class Reason(enum.StrEnum):
    NO_BREAKPOINT = "no_breakpoint"
    BELOW_MINIMUM = "below_minimum"
    PREFIX_CHANGED = "prefix_changed"
    TTL_EXPIRED = "ttl_expired"
    ROUTING = "routing"
    UNKNOWN = "unknown"


LOOKBACK_BLOCKS = 20  # Anthropic checks about 20 blocks before a breakpoint for an entry
DEFAULT_TTL_S = TTL_5M  # an entry's lifetime when neither its request nor the model's documentation says
PARTIAL_RATIO = 0.9
SLACK_TOKENS = 128  # estimate error, and OpenAI's 128-token read granularity
ROUTING_HINT = (
    "pin the session to one upstream account: run addons/inject.py (session-affinity headers and "
    "prompt_cache_key) or set the gateway's session-affinity header"
)


def clearly_below(read: int, expected: int) -> bool:
    """True when ``read`` falls clearly short of ``expected`` cached tokens.

    "Clearly" is below 90% of the estimate minus 128 tokens: estimates are
    approximate (and usually low against real tokenizers, which count more
    tokens per character) and OpenAI reads in 128-token steps, so a read a
    little short of the estimate is still a full hit.
    """
    return read < PARTIAL_RATIO * expected - SLACK_TOKENS


@dataclass(frozen=True, slots=True)
class Explanation:
    """One reason for a miss or partial hit, a one-line detail for logs and comments, and evidence.

    ``evidence`` holds only JSON paths, numbers and model ids, never prompt text.
    """

    reason: Reason
    detail: str
    evidence: Mapping[str, object]


class _Entry(NamedTuple):
    last: int  # index of the last block the entry covers
    tokens: int
    ttl_s: float


@dataclass(frozen=True, slots=True)
class _Turn:
    prev: Snapshot
    cur: Snapshot
    read: int
    gap: float
    model: str | None
    minimum: int | None
    exact: bool  # entries are read only where a breakpoint wrote them, never at a shorter prefix


def _expected(turn: _Turn, entries: list[_Entry]) -> int:
    """The longest entry the provider actually keeps (entries below the minimum are never written)."""
    return max((e.tokens for e in entries if turn.minimum is None or e.tokens >= turn.minimum), default=0)


_Found = tuple[list[_Entry], Explanation] | None


def _check_markers(turn: _Turn, entries: list[_Entry]) -> _Found:
    if not turn.cur.explicit or (turn.cur.entries and turn.prev.entries):
        return None
    marker = turn.cur.marker
    if turn.cur.entries:
        detail = f"the previous request had no {marker}, so it cached nothing for this turn to read"
    elif marker == ANTHROPIC_MARKER:
        detail = f"no {marker} in this Anthropic request: nothing is cached or read"
    else:
        detail = f"no {marker} in this request, whose prompt_cache_options.mode is explicit: nothing is cached or read"
    evidence = {"breakpoints": len(turn.cur.entries), "previous_breakpoints": len(turn.prev.entries)}
    return [], Explanation(Reason.NO_BREAKPOINT, detail, evidence)


def _check_minimum(turn: _Turn, entries: list[_Entry]) -> _Found:
    prefix = turn.prev.cached_tokens
    if turn.minimum is None or turn.read or prefix >= turn.minimum:
        return None
    detail = f"cacheable prefix of ~{prefix} tokens is below the {turn.minimum}-token minimum of {turn.model}"
    evidence = {"prefix_tokens": prefix, "minimum": turn.minimum, "model": turn.model}
    return [], Explanation(Reason.BELOW_MINIMUM, detail, evidence)


def _common_blocks(prev: Snapshot, cur: Snapshot) -> int:
    """How many leading blocks the two requests share."""
    if cur.digests.startswith(prev.digests):
        return len(prev)
    index = 0
    while index < min(len(prev), len(cur)) and prev.digest(index) == cur.digest(index):
        index += 1
    return index


def _first_change(prev: Snapshot, cur: Snapshot, index: int) -> tuple[str, str]:
    """The path and kind ("changed", "inserted", "removed") of the first differing block."""
    if index >= len(cur) or cur.digest(index) == prev.digest(index + 1):
        return prev.path(index), "removed"
    if index + 1 < len(cur) and prev.digest(index) == cur.digest(index + 1):
        return cur.path(index), "inserted"
    return cur.path(index), "changed"


def _check_prefix(turn: _Turn, entries: list[_Entry]) -> _Found:
    prev, cur = turn.prev, turn.cur
    previous = prev.cached_tokens
    common = _common_blocks(prev, cur)
    if all(entry.last < common for entry in entries):
        return None
    matched = prev.tokens_before(common)
    kept = [entry for entry in entries if entry.last < common]
    if not turn.exact and common:  # automatic caching: the shared part of the prompt stays readable
        kept = [_Entry(common - 1, matched, entry.ttl_s) for entry in entries]
    path, change = _first_change(prev, cur, common)
    detail = f"prefix {change} at {path} after ~{matched} of ~{previous} cached tokens"
    evidence = {"path": path, "change": change, "matched_tokens": matched, "previous_prefix_tokens": previous}
    return kept, Explanation(Reason.PREFIX_CHANGED, detail, evidence)


def _check_lookback(turn: _Turn, entries: list[_Entry]) -> _Found:
    if turn.cur.marker != ANTHROPIC_MARKER:
        return None
    breakpoints = [index for index, _ in turn.cur.entries]

    def reachable(entry: _Entry) -> bool:
        return any(entry.last <= point <= entry.last + LOOKBACK_BLOCKS for point in breakpoints)

    kept = [entry for entry in entries if reachable(entry)]
    if len(kept) == len(entries):
        return None
    lost = max((entry for entry in entries if not reachable(entry)), key=lambda entry: entry.last)
    after = [point - lost.last for point in breakpoints if point >= lost.last]
    distance = min(after) if after else None
    path = turn.cur.path(lost.last)
    where = f"{distance} blocks after it" if distance is not None else "none at or after it"
    detail = (
        f"the cached prefix ends at {path} but this request's nearest breakpoint is {where}; "
        f"Anthropic looks back only ~{LOOKBACK_BLOCKS} blocks"
    )
    evidence = {"previous_breakpoint": path, "blocks_to_breakpoint": distance, "lookback_blocks": LOOKBACK_BLOCKS}
    return kept, Explanation(Reason.NO_BREAKPOINT, detail, evidence)


def _check_ttl(turn: _Turn, entries: list[_Entry]) -> _Found:
    kept = [entry for entry in entries if entry.ttl_s >= turn.gap]
    if len(kept) == len(entries):
        return None
    lapsed = max((entry for entry in entries if entry.ttl_s < turn.gap), key=lambda entry: entry.ttl_s)
    detail = f"{turn.gap:.0f}s since the previous turn exceeds the {lapsed.ttl_s:g}s cache TTL"
    evidence = {"gap_s": round(turn.gap, 1), "ttl_s": lapsed.ttl_s}
    return kept, Explanation(Reason.TTL_EXPIRED, detail, evidence)


_CHECKS: tuple[Callable[[_Turn, list[_Entry]], _Found], ...] = (
    _check_markers,
    _check_minimum,
    _check_prefix,
    _check_lookback,
    _check_ttl,
)


def explain(
    prev: Snapshot | None,
    cur: Snapshot,
    usage: Usage,
    *,
    ttl_scale: float = 1.0,
    minimums: Mapping[str, int] | None = None,
) -> Explanation | None:
    """The reason this turn missed or only partly hit, or None when there is nothing to explain.

    None for a first turn (``prev`` is None), when the provider reported no
    read count, and for hits: a read counts as a hit unless it is clearly
    below the previous turn's cacheable prefix (see ``clearly_below``). A
    reported read of 0 is always explained. ``ttl_scale`` multiplies every
    TTL (for a simulator that shrinks time); ``minimums`` overrides or adds
    minimum cacheable prefixes (``models.minimum_tokens``). The model is the
    response's, else the request's; its documented rule (``models.cache_rule``)
    gives the TTL an entry has when its request set none, and whether entries
    are read only at breakpoints.
    """
    read = usage.cache_read_input_tokens
    if prev is None or read is None or (read and not clearly_below(read, prev.cached_tokens)):
        return None
    model = usage.model or cur.model
    rule = cache_rule(model)
    minimum = max(minimum_tokens(model, minimums) or 0, prev.read_step) or None  # below a step, nothing reads
    turn = _Turn(prev, cur, read, float(cur.at - prev.at), model, minimum, prev.explicit or rule.breakpoints)
    default_ttl = rule.default_ttl_s or DEFAULT_TTL_S
    entries = [_Entry(index, prev.ends[index], (default_ttl if ttl is None else ttl) * ttl_scale)
               for index, ttl in prev.entries]
    for check in _CHECKS:
        found = check(turn, entries)
        if found is None:
            continue
        entries, explanation = found
        if not clearly_below(read, _expected(turn, entries)):
            return explanation
    expected = _expected(turn, entries)
    if read == 0 and expected:
        detail = (
            f"prefix of ~{expected} tokens unchanged and {turn.gap:.0f}s after the previous turn (within TTL), "
            f"yet nothing read: the request most likely reached another account or replica; {ROUTING_HINT}"
        )
        evidence = {"prefix_tokens": expected, "gap_s": round(turn.gap, 1), "hint": ROUTING_HINT}
        return Explanation(Reason.ROUTING, detail, evidence)
    detail = f"read {read} of ~{expected} expected cached tokens; no check explains the shortfall"
    evidence = {"read_tokens": read, "expected_tokens": expected, "previous_prefix_tokens": prev.cached_tokens}
    return Explanation(Reason.UNKNOWN, detail, evidence)


class Explainer:
    """Keeps the previous snapshot per (session, thread) and explains each new turn against it.

    Keyed by thread, because clients interleave other conversations in one
    session (sub-agents, side requests on another model): each has its own
    cached prefix, and comparing across them would report false changes.
    Without a thread, each model is one. A request that continues a
    conversation in a thread not seen yet (its system prompt or tools changed
    mid-conversation, so its lineage did) is compared with the session's
    latest request on the same model, so the change is named. At most
    ``max_sessions`` keys are kept, the least recently seen evicted first, so
    memory stays bounded.
    """

    def __init__(
        self,
        *,
        ttl_scale: float = 1.0,
        minimums: Mapping[str, int] | None = None,
        max_sessions: int = 2048,
    ) -> None:
        self._ttl_scale = ttl_scale
        self._minimums = dict(minimums or {})
        self._max_sessions = max_sessions
        self._previous: OrderedDict[tuple[str, str | None], Snapshot] = OrderedDict()  # by (session, thread)
        self._by_model: OrderedDict[tuple[str, str | None], Snapshot] = OrderedDict()  # by (session, model)

    def observe(self, session: str, snapshot: Snapshot, usage: Usage | None, *, thread: str | None = None,
                continues: bool = False) -> Explanation | None:
        """Explain this turn against the thread's previous one, then remember it.

        A response without usage (an error, a cut stream) is not remembered:
        a failed request caches nothing, so the next turn is compared with the
        last one that completed.
        """
        if usage is None:
            return None
        key = (session, thread if thread is not None else snapshot.model)
        by_model = (session, snapshot.model)
        previous = self._previous.get(key)
        if previous is None and continues:
            previous = self._by_model.get(by_model)
        found = explain(previous, snapshot, usage, ttl_scale=self._ttl_scale, minimums=self._minimums)
        for table, table_key in ((self._previous, key), (self._by_model, by_model)):
            table[table_key] = snapshot
            table.move_to_end(table_key)
            while len(table) > self._max_sessions:
                table.popitem(last=False)
        return found
