"""The provider's own reason for a prompt-cache miss, read from the responses that carry one.

Anthropic and OpenAI (Responses) compare a request with an earlier one when
asked (``cache_diagnostics``, ``request/diagnostics_edit.py``) and answer in the
response itself: next to cachepin's own reason it is a second opinion, from
the one party that knows what its cache keyed on. The wire formats, and where
each is documented, are in docs/providers.md ("Provider cache diagnostics"):

- Anthropic Messages: ``diagnostics`` on the message (a stream's
  ``message_start``): absent when not asked, ``null`` when nothing diverged (or
  on the first, opting-in turn), ``{"cache_miss_reason": null}`` while the
  comparison is still pending, else ``{"cache_miss_reason": {"type", ...}}``
  with ``cache_missed_input_tokens`` on the ``*_changed`` types.
- OpenAI Responses: ``prompt_cache_diagnostics`` on the response (a stream's
  ``response.completed``): ``{"type": "cache_hit" | "cache_miss" |
  "comparison_response_not_found" | "unavailable"}``, a miss with its
  ``reason`` and ``cache_missed_tokens``.

Only the type and the token estimate are kept, and a type only when it is a
short identifier: nothing an upstream writes there reaches an output otherwise.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from cachepin.request.dialects import Dialect

NO_DIVERGENCE = "no_divergence"
"""Anthropic's ``"diagnostics": null``: the request matched the previous one (or the turn only opted in)."""
OPTED_IN = "opted_in"
"""cachepin's reading of Anthropic's ``null`` answer to a request it knows asked with ``previous_message_id: null``:
the request only opted in, and nothing was compared (``Audit.record``)."""
PENDING = "pending"
"""Anthropic's ``{"cache_miss_reason": null}``: the comparison had not finished when the response began."""
CACHE_MISS = "cache_miss"  # OpenAI's type whose ``reason`` is the diagnosis
_TYPE = re.compile(r"[A-Za-z0-9_.-]{1,40}")
_MAX_SHARED = 64


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """The provider's diagnosis of one turn: its type (``tools_changed``, ``pending``, ``cache_hit``, ...) and, when
    it gives one, its estimate of the input tokens the divergence kept from being read."""

    reason: str
    missed_tokens: int | None = None


_SHARED: dict[str, Diagnosis] = {}  # one object per type without an estimate: a ledger holds many turns


def diagnosis(reason: object, missed: object = None) -> Diagnosis | None:
    """A diagnosis of that type and estimate; None when the type is no short identifier (an estimate that is no
    count is dropped)."""
    if not isinstance(reason, str) or not _TYPE.fullmatch(reason):
        return None
    if isinstance(missed, float) and missed.is_integer():  # some JSON encoders write every number as a float
        missed = int(missed)
    tokens = missed if isinstance(missed, int) and not isinstance(missed, bool) and missed >= 0 else None
    if tokens is not None:
        return Diagnosis(sys.intern(reason), tokens)
    shared = _SHARED.get(reason)
    if shared is None:
        shared = Diagnosis(sys.intern(reason))
        if len(_SHARED) < _MAX_SHARED:  # bounded: an upstream inventing types cannot grow it
            _SHARED[reason] = shared
    return shared


def _anthropic(message: dict) -> Diagnosis | None:
    if "diagnostics" not in message:
        return None
    diagnostics = message["diagnostics"]
    if diagnostics is None:
        return diagnosis(NO_DIVERGENCE)
    if not isinstance(diagnostics, dict):
        return None
    reason = diagnostics.get("cache_miss_reason")
    if reason is None:
        return diagnosis(PENDING)
    return diagnosis(reason.get("type"), reason.get("cache_missed_input_tokens")) if isinstance(reason, dict) else None


def _responses(response: dict) -> Diagnosis | None:
    diagnostics = response.get("prompt_cache_diagnostics")
    if not isinstance(diagnostics, dict):
        return None
    kind = diagnostics.get("type")
    missed = diagnostics.get("cache_missed_tokens")
    if kind == CACHE_MISS:  # a miss is named by its reason; one without a readable reason by its type
        return diagnosis(diagnostics.get("reason"), missed) or diagnosis(kind, missed)
    return diagnosis(kind)


def diagnosis_of(dialect: Dialect, holder: dict) -> Diagnosis | None:
    """The diagnosis in ``holder`` (the message or response object that carried the usage), None when it has none
    or none that can be read."""
    if dialect is Dialect.ANTHROPIC:
        return _anthropic(holder)
    if dialect is Dialect.OPENAI_RESPONSES:
        return _responses(holder)
    return None
