"""Asking the provider why a turn missed (``cache_diagnostics``): the second and last body edit cachepin may make.

Anthropic and OpenAI compare a request with an earlier response of the same
conversation when the request names that response, and say what changed
(docs/providers.md, "Provider cache diagnostics"):

- Anthropic Messages, on the Claude API only (not Bedrock, not Vertex AI):
  ``"diagnostics": {"previous_message_id": <id>}`` on every turn, ``null`` on
  a thread's first to opt in: the API keeps a fingerprint only of requests that
  carry the object, so a turn without it leaves nothing to compare the next
  with. No beta header: the field went GA, and a set of ``anthropic-beta``
  headers that differs from the compared request's makes the answer
  ``unavailable``.
- OpenAI Responses, GPT-5.6 and later: ``prompt_cache_options.comparison_response_id``,
  left out on a thread's first turn.

The id is the latest response of the request's thread (``Baselines``). The
member is spliced in as text (``body_edit.py``), and only into a body without
one: a client that asks for diagnostics itself is left as it is.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import NamedTuple

from cachepin.request.body_edit import with_member, with_nested_member
from cachepin.request.dialects import Dialect

ANTHROPIC_FIELD = "diagnostics"
ANTHROPIC_PREVIOUS = "previous_message_id"
RESPONSES_OPTIONS = "prompt_cache_options"
RESPONSES_COMPARISON = "comparison_response_id"
_CLAUDE_API_PATH = re.compile(r"/v1/messages/?")  # Bedrock invokes a model path, Vertex AI :rawPredict
_GPT = re.compile(r"gpt-(\d+)(?:\.(\d+))?(?:$|[-_@])", re.IGNORECASE)
FIRST_GPT = (5, 6)  # OpenAI: "GPT-5.6 and later supported models"
LIMIT = 40_000  # baselines remembered (a few per thread, ~250 bytes each), the oldest forgotten first


class ThreadKey(NamedTuple):
    """Which conversation a request continues: its session, thread (request/thread.py) and model family."""

    session: str
    thread: str
    family: str


def supported(dialect: Dialect, path: str, model: object) -> bool:
    """Whether the provider answers diagnostics for a request: the dialect, the path and the model it names.

    The host says nothing in reverse mode (a gateway's own name): the Claude
    API's path is ``/v1/messages`` itself (other platforms that serve Claude
    prefix or replace it) for a ``claude-`` model; OpenAI's models are named
    ``gpt-<major>.<minor>``.
    """
    if not isinstance(model, str):
        return False
    if dialect is Dialect.ANTHROPIC:
        return bool(_CLAUDE_API_PATH.fullmatch(path.split("?", 1)[0])) and model.lower().startswith("claude-")
    if dialect is Dialect.OPENAI_RESPONSES:
        match = _GPT.match(model)
        return match is not None and (int(match[1]), int(match[2] or 0)) >= FIRST_GPT
    return False


def asks_already(dialect: Dialect, body: dict) -> bool:
    """Whether the client asked for diagnostics itself."""
    if dialect is Dialect.ANTHROPIC:
        return ANTHROPIC_FIELD in body
    options = body.get(RESPONSES_OPTIONS)
    return isinstance(options, dict) and RESPONSES_COMPARISON in options


def with_diagnostics(dialect: Dialect, raw: bytes, body: dict, baseline: str | None) -> bytes | None:
    """``raw`` (whose parse is ``body``) asking to be compared with ``baseline``; None when nothing is to be added.

    Nothing is added to a body that asks already, to a Responses request
    without a baseline (its first turn), or where there is no place beyond
    doubt to add it (``prompt_cache_options`` that is no object, or twice).
    """
    if asks_already(dialect, body):
        return None
    if dialect is Dialect.ANTHROPIC:
        return with_member(raw, ANTHROPIC_FIELD, {ANTHROPIC_PREVIOUS: baseline})
    if baseline is None:
        return None
    if RESPONSES_OPTIONS in body:
        return with_nested_member(raw, RESPONSES_OPTIONS, RESPONSES_COMPARISON, baseline)
    return with_member(raw, RESPONSES_OPTIONS, {RESPONSES_COMPARISON: baseline})


def opts_in_only(dialect: Dialect, body: dict, edited: bytes | None, baseline: str | None) -> bool:
    """Whether the request asks Anthropic with ``previous_message_id: null`` (its own or cachepin's): it opts in,
    and the provider has nothing to compare it with."""
    if dialect is not Dialect.ANTHROPIC:
        return False
    if edited is not None:
        return baseline is None
    asked = body.get(ANTHROPIC_FIELD)
    return isinstance(asked, dict) and asked.get(ANTHROPIC_PREVIOUS) is None


class Baselines:
    """The latest response of each thread that the provider can compare a later request with; bounded.

    A continuation in a thread not seen yet is a conversation whose lineage
    changed (its tools, system prompt or model did): it is compared with the
    latest response of its thread on another model, else of its session on the
    same model, else of its session, so the provider names the change. A new
    conversation is compared with nothing.
    """

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._latest: OrderedDict[tuple[str, ...], str] = OrderedDict()

    def learn(self, key: ThreadKey, response_id: str | None) -> None:
        if not response_id:
            return
        for known in _lookups(key):
            self._latest[known] = response_id
            self._latest.move_to_end(known)
        while len(self._latest) > self._limit:
            self._latest.popitem(last=False)

    def baseline(self, key: ThreadKey, continues: bool) -> str | None:
        """The response to compare a request of ``key`` with; ``continues``: the request continues a conversation."""
        lookups = _lookups(key) if continues else _lookups(key)[:1]
        return next((self._latest[known] for known in lookups if known in self._latest), None)

    def __len__(self) -> int:
        return len(self._latest)


def _lookups(key: ThreadKey) -> tuple[tuple[str, ...], ...]:
    """From the closest match to the loosest: the thread on its model, the thread, the model, the session."""
    return ((key.session, "thread", key.thread, key.family), (key.session, "thread", key.thread),
            (key.session, "model", key.family), (key.session,))
