"""mitmproxy addon: pin every LLM conversation to one upstream account.

Gateways that front several provider accounts keep a conversation on one
account (and so in one prompt cache) only when each request carries a session
id. This addon adds ``X-Session-Id`` and ``x-session-affinity`` to every LLM
API request, with an id that is the same for every turn of a conversation.

    mitmdump -s addons/inject.py --mode reverse:https://api.anthropic.com

The logic lives in ``cachepin/`` (no mitmproxy imports); this file adapts it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence

from mitmproxy import ctx, exceptions, flowfilter, http

from cachepin import options

from cachepin.request.body_edit import OPENAI_MAX_KEY_LENGTH, with_prompt_cache_key
from cachepin.request.dialects import Dialect, dialect_for
from cachepin.request.body import METADATA_KEY, parse_json_object
from cachepin.request.session import Resolution, from_headers, is_valid_id, resolve

logger = logging.getLogger(__name__)

DEFAULT_HEADERS = ["X-Session-Id", "x-session-affinity"]
DEFAULT_EXCLUDE = r"~d opencode\.ai"
_SEEN_LIMIT = 100_000  # sessions remembered for "first request of a session" logging


class Inject:
    name = "cachepin_inject"

    def __init__(self) -> None:
        self.scope: flowfilter.TFilter | None = None
        self.exclude: flowfilter.TFilter | None = _parse_filter("affinity_exclude", DEFAULT_EXCLUDE)
        self.seen: OrderedDict[str, None] = OrderedDict()

    def load(self, loader) -> None:
        loader.add_option(
            "affinity_scope", str, "",
            "Filter expression selecting the flows to pin. Empty: POSTs to known LLM API paths "
            "(/v1/messages, /chat/completions, /responses, Gemini :generateContent, Bedrock) on any host.",
        )
        loader.add_option(
            "affinity_exclude", str, DEFAULT_EXCLUDE,
            "Filter expression of flows never to touch, even when in scope (default: opencode's own gateway).",
        )
        loader.add_option(
            "affinity_session", str, "",
            "A fixed session id for every flow (e.g. a CI run id). Empty: derive one per conversation.",
        )
        loader.add_option(
            "affinity_headers", Sequence[str], list(DEFAULT_HEADERS),
            "Request headers set to the session id.",
        )
        loader.add_option(
            "affinity_override", bool, False,
            "Replace session headers the client already sent instead of keeping them.",
        )
        loader.add_option(
            "affinity_prompt_cache_key", bool, False,
            "Add prompt_cache_key (the session id) to OpenAI-style JSON bodies that lack it.",
        )

    def configure(self, updated: set[str]) -> None:
        if "affinity_scope" in updated:
            self.scope = _parse_filter("affinity_scope", ctx.options.affinity_scope)
        if "affinity_exclude" in updated:
            self.exclude = _parse_filter("affinity_exclude", ctx.options.affinity_exclude)
        if "affinity_session" in updated:
            fixed = ctx.options.affinity_session
            if fixed and not is_valid_id(fixed):
                raise exceptions.OptionsError(
                    "affinity_session must be 1-256 printable ASCII characters without spaces"
                )
        if "affinity_headers" in updated:
            try:
                options.session_headers(ctx.options.affinity_headers)
            except ValueError as e:
                raise exceptions.OptionsError(str(e)) from None

    def in_scope(self, flow: http.HTTPFlow) -> bool:
        if self.exclude is not None and self.exclude(flow):
            return False
        if self.scope is not None:
            return bool(self.scope(flow))
        return dialect_for(flow.request.method, flow.request.path) is not None

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """Pin from what the headers already say, so it also works when the body is streamed."""
        if not flow.live or not self.in_scope(flow):
            return
        fixed = ctx.options.affinity_session
        resolution = Resolution(fixed, "option") if fixed else from_headers(flow.request.headers)
        if resolution.session_id is not None:
            _warn_rejected(resolution)  # an invalid header before the one used
            self._pin(flow, resolution)
        elif flow.request.stream:
            _warn_rejected(resolution)
            logger.warning(
                "cachepin inject: request body of %s is streamed and its headers carry no session id; "
                "not pinned (raise stream_large_bodies to let cachepin read the body)",
                flow.request.path.split("?", 1)[0],
            )

    def request(self, flow: http.HTTPFlow) -> None:
        """Pin from the body when the headers were not enough, and add prompt_cache_key if asked."""
        if not flow.live or flow.request.stream or not self.in_scope(flow):
            return
        dialect = dialect_for(flow.request.method, flow.request.path)
        body = None
        if "cachepin" not in flow.metadata:
            raw = flow.request.get_content(strict=False)
            body = parse_json_object(raw)
            flow.metadata[METADATA_KEY] = (raw, body)  # for the audit, so that it does not parse the body again
            resolution = resolve(flow.request.headers, body, dialect)
            _warn_rejected(resolution)
            if resolution.session_id is None:
                logger.debug("cachepin inject: nothing identifies the conversation of %s", flow.id)
                return
            self._pin(flow, resolution)
        if ctx.options.affinity_prompt_cache_key and dialect in (Dialect.OPENAI_CHAT, Dialect.OPENAI_RESPONSES):
            self._add_prompt_cache_key(flow, body)

    def response(self, flow: http.HTTPFlow) -> None:
        """The parse left for the audit has served by now: saved flows must not carry the body twice."""
        flow.metadata.pop(METADATA_KEY, None)

    error = response

    def _pin(self, flow: http.HTTPFlow, resolution: Resolution) -> None:
        session_id = resolution.session_id
        assert session_id is not None
        injected = []
        for name in ctx.options.affinity_headers:
            current = flow.request.headers.get(name)
            if current is not None and is_valid_id(current) and not ctx.options.affinity_override:
                continue
            flow.request.headers[name] = session_id
            injected.append(name)
        flow.metadata["cachepin"] = {"session_id": session_id, "source": resolution.source, "injected": injected}
        note = f"cachepin: session {session_id} ({resolution.source})"
        flow.comment = f"{flow.comment}\n{note}" if flow.comment else note
        headers = ",".join(injected) or "-"
        if session_id in self.seen:
            self.seen.move_to_end(session_id)
            logger.debug("cachepin inject session=%s source=%s headers=%s", session_id, resolution.source, headers)
            return
        self.seen[session_id] = None
        if len(self.seen) > _SEEN_LIMIT:
            self.seen.popitem(last=False)
        logger.info("cachepin inject new session=%s source=%s headers=%s", session_id, resolution.source, headers)

    def _add_prompt_cache_key(self, flow: http.HTTPFlow, body: dict | None) -> None:
        session_id = flow.metadata["cachepin"]["session_id"]
        try:  # strict: setting .content re-encodes, so a lying or unknown coding would change more than the key
            raw = flow.request.get_content(strict=True)
        except ValueError:
            return
        if body is None:
            body = parse_json_object(raw)
        if body is None or "prompt_cache_key" in body or raw is None:
            return
        if len(session_id) > OPENAI_MAX_KEY_LENGTH:
            logger.warning(
                "cachepin inject: session id is %d characters, over OpenAI's %d for prompt_cache_key; not added",
                len(session_id), OPENAI_MAX_KEY_LENGTH,
            )
            return
        edited = with_prompt_cache_key(raw, session_id)
        if edited is not None:
            flow.request.content = edited
            flow.metadata["cachepin"]["prompt_cache_key"] = True


def _parse_filter(option: str, spec: str) -> flowfilter.TFilter | None:
    if not spec:
        return None
    try:
        return flowfilter.parse(spec)
    except ValueError:
        raise exceptions.OptionsError(
            f"{option}: invalid filter expression {spec!r} (see mitmproxy's filter syntax, e.g. '~d api.example.com')"
        ) from None


def _warn_rejected(resolution: Resolution) -> None:
    if resolution.rejected:  # one line per flow, however many sources were refused
        logger.warning(
            "cachepin inject: ignored the session id in %s: not 1-256 printable ASCII characters without spaces",
            ", ".join(resolution.rejected),
        )


addons = [Inject()]
