"""What the simulated providers answer when a request asks why its prompt cache missed.

Written from the providers' documentation (docs/providers.md, "Provider cache
diagnostics"), apart from cachepin, whose reading of these answers and whose
own miss reasons the end-to-end tests compare with them. An account stands for
one organization and workspace: a comparison finds only what the same account
kept.

Anthropic Messages (``/v1/messages``):

- A request with a ``diagnostics`` object opts in: once its response has
  completed, the account keeps its fingerprint under the response id. Only
  such requests are kept.
- ``previous_message_id: null`` answers ``"diagnostics": null``; an id the
  account keeps nothing of answers ``previous_message_not_found``.
- Otherwise the first divergence, in the order ``model_changed``,
  ``tools_changed``, ``system_changed``, then ``unavailable`` when model,
  tools and system match but another prompt-affecting parameter
  (``tool_choice``, ``thinking``, ``context_management``, ``output_config``,
  ``output_format``, the set of ``anthropic-beta`` headers) differs, then
  ``messages_changed`` when an earlier message was altered, reordered or
  removed instead of appended to; ``null`` when nothing diverged. The
  ``*_changed`` types carry ``cache_missed_input_tokens``: the compared
  request's tokens from its first block that differs on (all of them for a
  model change).
- The answer is ``diagnostics`` on the message (a stream's ``message_start``).
  It is never ``pending``: the comparison here finishes before the response.

OpenAI Responses (``/v1/responses``):

- Every completed response leaves a record; ``prompt_cache_options.comparison_response_id``
  asks for a comparison with one. A model before GPT-5.6 answers
  ``unavailable``, an id without a record ``comparison_response_not_found``.
- Otherwise the first reason in the documented order ``model_changed``,
  ``prompt_cache_key_changed``, ``service_tier_changed``, ``tools_changed``,
  ``text_format_changed``, ``reasoning_effort_changed``, ``verbosity_changed``,
  ``input_changed`` (instructions or earlier input not kept as a prefix) is a
  ``cache_miss`` with ``comparison_reusable_tokens`` (the compared prompt's
  tokens) and ``cache_missed_tokens`` (those from its first block that
  differs on for a change of tools or input; all of them for a change of
  model or of a setting, which keys the whole prefix). A request with none of these differences is a ``cache_hit`` if
  it read the cache, else ``unavailable`` (the documentation allows an
  unclassified miss).
- The answer is ``prompt_cache_diagnostics`` on the response (a stream's
  ``response.completed``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from cachepin_tools.simulator.prompt import Api, prompt_blocks

Json = dict[str, object]

KEPT = 10_000  # fingerprints per account, the oldest forgotten first ("retained for a limited time")
_ANTHROPIC_SETTINGS = ("tool_choice", "thinking", "context_management", "output_config", "output_format")
_GPT = re.compile(r"gpt-(\d+)(?:\.(\d+))?(?:$|[-_@])")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What a comparison needs of a request: hashes and token counts, never its text."""

    model: str
    parts: tuple[tuple[str, str], ...]  # (reason when it differs, digest), in the provider's order of checks
    history: tuple[str, ...]  # digests of the entries that must stay a prefix: messages (Anthropic), input blocks
    blocks: tuple[tuple[bytes, int], ...]  # the whole prompt in cache order: digest and tokens of each block


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _blocks_digest(api: Api, body: Json) -> str:
    return _digest([block.digest.hex() for block in prompt_blocks(api, body)])


def _anthropic(body: Json, headers: Mapping[str, str]) -> Fingerprint:
    betas = sorted({beta.strip() for value in _all(headers, "anthropic-beta") for beta in value.split(",")} - {""})
    settings = _digest([[name, body.get(name)] for name in _ANTHROPIC_SETTINGS] + [betas])
    messages = body.get("messages")
    history = tuple(_blocks_digest(Api.ANTHROPIC, {"messages": [message]})
                    for message in (messages if isinstance(messages, list) else []))
    parts = (("tools_changed", _blocks_digest(Api.ANTHROPIC, {"tools": body.get("tools")})),
             ("system_changed", _blocks_digest(Api.ANTHROPIC, {"system": body.get("system")})),
             ("unavailable", settings))
    return Fingerprint(str(body.get("model")), parts, history, _cache_order(Api.ANTHROPIC, body))


def _responses(body: Json) -> Fingerprint:
    text, reasoning = _object(body.get("text")), _object(body.get("reasoning"))
    parts = (("prompt_cache_key_changed", _digest(body.get("prompt_cache_key"))),
             ("service_tier_changed", _digest(body.get("service_tier") or "auto")),
             ("tools_changed", _blocks_digest(Api.OPENAI_RESPONSES, {"tools": body.get("tools")})),
             ("text_format_changed", _digest(text.get("format"))),
             ("reasoning_effort_changed", _digest(reasoning.get("effort"))),
             ("verbosity_changed", _digest(text.get("verbosity"))))
    prompt = {"instructions": body.get("instructions"), "input": body.get("input")}
    history = tuple(block.digest.hex() for block in prompt_blocks(Api.OPENAI_RESPONSES, prompt))
    return Fingerprint(str(body.get("model")), parts, history, _cache_order(Api.OPENAI_RESPONSES, body))


def _object(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _cache_order(api: Api, body: Json) -> tuple[tuple[bytes, int], ...]:
    return tuple((block.digest, block.tokens) for block in prompt_blocks(api, body))


def _all(headers: Mapping[str, str], name: str) -> list[str]:
    getall = getattr(headers, "getall", None)  # aiohttp's CIMultiDict holds repeated headers
    if getall is not None:
        return list(getall(name, []))
    return [value for key, value in headers.items() if key.lower() == name]


def _missed(previous: Fingerprint, current: Fingerprint, *, everything: bool = False) -> int:
    """The compared prompt's tokens from the first block the two prompts differ in (all of them: ``everything``)."""
    common = 0
    if not everything:
        for (before, _), (now, _) in zip(previous.blocks, current.blocks, strict=False):
            if before != now:
                break
            common += 1
    return sum(tokens for _, tokens in previous.blocks[common:])


def _divergence(previous: Fingerprint, current: Fingerprint) -> str | None:
    """The first reason the two fingerprints differ by, in the provider's order; None when they do not."""
    if previous.model != current.model:
        return "model_changed"
    for (reason, before), (_, now) in zip(previous.parts, current.parts, strict=True):
        if before != now:
            return reason
    if current.history[:len(previous.history)] != previous.history:
        return "history_changed"
    return None


def supports_comparisons(model: str) -> bool:
    """OpenAI: "GPT-5.6 and later supported models"."""
    match = _GPT.match(model)
    return match is not None and (int(match[1]), int(match[2] or 0)) >= (5, 6)


class Diagnostics:
    """The fingerprints every account keeps, and the answers comparisons with them get."""

    def __init__(self, accounts: int, kept: int = KEPT) -> None:
        self._kept = kept
        self._stores: list[OrderedDict[str, Fingerprint]] = [OrderedDict() for _ in range(accounts)]

    def answer(self, account: int, api: Api, body: Json, headers: Mapping[str, str], read: int) -> Json:
        """The members the response object gets (none when the request asked for no diagnostics); ``read``: the
        tokens the request read from the cache."""
        asked = body.get("diagnostics")
        if api is Api.ANTHROPIC and isinstance(asked, dict):
            return {"diagnostics": self._anthropic_answer(account, body, headers, asked.get("previous_message_id"))}
        compared = _object(body.get("prompt_cache_options")).get("comparison_response_id")
        if api is Api.OPENAI_RESPONSES and isinstance(compared, str):
            return {"prompt_cache_diagnostics": self._responses_answer(account, body, compared, read)}
        return {}

    def remember(self, account: int, api: Api, body: Json, headers: Mapping[str, str], response_id: str) -> None:
        """Keeps the fingerprint of a completed response's request: every Responses request, an Anthropic one that
        opted in."""
        if api is Api.ANTHROPIC and isinstance(body.get("diagnostics"), dict):
            fingerprint = _anthropic(body, headers)
        elif api is Api.OPENAI_RESPONSES:
            fingerprint = _responses(body)
        else:
            return
        store = self._stores[account]
        store[response_id] = fingerprint
        while len(store) > self._kept:
            store.popitem(last=False)

    def _anthropic_answer(self, account: int, body: Json, headers: Mapping[str, str],
                          previous_id: object) -> Json | None:
        if previous_id is None:
            return None
        previous = self._stores[account].get(str(previous_id))
        if previous is None:
            return {"cache_miss_reason": {"type": "previous_message_not_found"}}
        current = _anthropic(body, headers)
        reason = _divergence(previous, current)
        if reason is None:
            return None
        if reason == "unavailable":
            return {"cache_miss_reason": {"type": "unavailable"}}
        kind = "messages_changed" if reason == "history_changed" else reason
        missed = _missed(previous, current, everything=kind == "model_changed")
        return {"cache_miss_reason": {"type": kind, "cache_missed_input_tokens": missed}}

    def _responses_answer(self, account: int, body: Json, compared: str, read: int) -> Json:
        if not supports_comparisons(str(body.get("model"))):
            return {"type": "unavailable"}
        previous = self._stores[account].get(compared)
        if previous is None:
            return {"type": "comparison_response_not_found"}
        current = _responses(body)
        reason = _divergence(previous, current)
        if reason is None:
            return {"type": "cache_hit" if read else "unavailable"}
        kind = "input_changed" if reason == "history_changed" else reason
        reusable = sum(tokens for _, tokens in previous.blocks)
        in_prompt = kind in ("tools_changed", "input_changed")  # a setting or the model spoils the whole prefix
        return {"type": "cache_miss", "reason": kind, "comparison_reusable_tokens": reusable,
                "cache_missed_tokens": _missed(previous, current, everything=not in_prompt)}

