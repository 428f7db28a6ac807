"""mitmproxy addon: pin every LLM conversation to one upstream account.

Gateways that front several provider accounts keep a conversation on one
account (and so in one prompt cache) only when each request carries a session
id. This addon adds ``X-Session-Id`` and ``x-session-affinity`` to every LLM
API request, with an id that is the same for every turn of a conversation.

    mitmdump -s addons/inject.py --mode reverse:https://api.anthropic.com

The logic lives in ``cachepin/`` (no mitmproxy imports); this file adapts it, with the pinning of a flow in
``cachepin_mitmproxy/inject_pinning.py``.
"""

from __future__ import annotations

import logging
from functools import partial

from mitmproxy import ctx, exceptions, flowfilter, http

from cachepin import handover, options
from cachepin.request.body import METADATA_KEY, parse_json_object
from cachepin.request.body_edit import prompt_cache_key_edit
from cachepin.request.chains import ResponseChains
from cachepin.request.dialects import Dialect
from cachepin.request.salt import proxy_salt
from cachepin.request.seen import SeenSessions
from cachepin.request.session import from_headers, resolve
from cachepin.request.tee import KEYED_DIALECTS, RequestTee, may_stream, settle
from cachepin.response.readers import StreamTap, usage_from_body
from cachepin_mitmproxy.flows import dialect_of
from cachepin_mitmproxy.inject_pinning import InjectPinning

logger = logging.getLogger(__name__)


class Inject(InjectPinning):
    name = "cachepin_inject"
    logger = logger  # the mixins log through it: their lines are this script's, as they always were

    def __init__(self) -> None:
        self.scope: flowfilter.TFilter | None = None
        self.exclude: flowfilter.TFilter | None = _parse_filter("affinity_exclude", options.DEFAULT_EXCLUDE)
        self.seen = SeenSessions()  # for "first request of a session" logging
        self.chains = ResponseChains()  # which session each Responses response of this proxy belongs to
        self.salt = b""  # keys the fingerprints (request/salt.py): set in configure

    def load(self, loader) -> None:
        for option in options.INJECT:
            loader.add_option(option.name, option.typespec, option.default, option.help, option.choices)
        filters = {name: partial(_parse_filter, name) for name in ("affinity_scope", "affinity_exclude")}
        for name, problem in options.deferred_problems(options.INJECT, ctx.options.deferred, filters).items():
            logger.error("cachepin: %s", problem)  # mitmproxy exits 1 on an error at startup, instead of
            del ctx.options.deferred[name]  # dropping this script without a word for a value it cannot apply
        chains = handover.take((id(ctx.master), self.name))
        if isinstance(chains, ResponseChains):  # a hot reload: a chained request keeps its session
            self.chains = chains

    def done(self) -> None:
        """On a hot reload of this script, the response chains go to the new instance (see ``load``)."""
        if not ctx.master.should_exit.is_set():
            handover.give((id(ctx.master), self.name), self.chains)

    def configure(self, updated: set[str]) -> None:
        try:
            if "affinity_scope" in updated:
                self.scope = _parse_filter("affinity_scope", ctx.options.affinity_scope)
            if "affinity_exclude" in updated:
                self.exclude = _parse_filter("affinity_exclude", ctx.options.affinity_exclude)
            options.check(options.INJECT, updated, lambda name: getattr(ctx.options, name))
            if updated & {"affinity_salt", "confdir"}:
                self.salt = proxy_salt(ctx.options.affinity_salt, ctx.options.confdir)
        except ValueError as e:
            raise exceptions.OptionsError(str(e)) from None


    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """Pin from what the headers already say, so it also works when the body is streamed."""
        if self.is_handshake(flow):
            self._pin_handshake(flow)
            return
        if not flow.live or not self.in_scope(flow, dialect_of):
            return
        resolution = from_headers(flow.request.headers, ctx.options.affinity_session)
        if resolution.session_id is not None:
            self._pin(flow, resolution)  # an invalid header before the one used is warned about in request
            dialect = dialect_of(flow)
            if flow.request.stream is False and not flow.is_replay and may_stream(ctx.options, dialect):
                flow.request.stream = RequestTee()  # nothing needs the body before it leaves
            if flow.request.stream:  # no request hook will read the body: say it now
                self._warn(flow.metadata["cachepin"].pop("rejected", []))
        elif flow.request.stream:
            self._warn(resolution.problems())
            logger.warning(
                "cachepin inject: request body of %s is streamed and its headers carry no session id; "
                "not pinned (raise stream_large_bodies to let cachepin read the body)",
                flow.request.path.split("?", 1)[0],
            )

    def request(self, flow: http.HTTPFlow) -> None:
        """Pin from the body when the headers were not enough, and add prompt_cache_key if asked."""
        settle(flow.request)  # a body streamed by the tee is the request's content again
        if not flow.live or flow.request.stream or not self.in_scope(flow, dialect_of):
            return
        dialect = dialect_of(flow)
        body = None
        if "cachepin" not in flow.metadata:
            raw = flow.request.get_content(strict=False)
            body = parse_json_object(raw)
            flow.metadata[METADATA_KEY] = (raw, body)  # for the audit, so that it does not parse the body again
            resolution = resolve(flow.request.headers, body, dialect, self.chains, self.salt)
            if resolution.session_id is None:
                self._warn(resolution.problems())
                logger.debug("cachepin inject: nothing identifies the conversation of %s", flow.id)
                return
            self._pin(flow, resolution)
        problems = flow.metadata["cachepin"].pop("rejected", [])
        if ctx.options.affinity_prompt_cache_key and dialect in KEYED_DIALECTS:
            problems += self._add_prompt_cache_key(flow, body)
        self._warn(problems)  # one line per flow, whatever went wrong

    def response(self, flow: http.HTTPFlow) -> None:
        """Learns the id of a pinned Responses response, for the request that continues it."""
        self.error(flow)
        pinned = flow.metadata.get("cachepin")
        response = flow.response
        if not flow.live or pinned is None or response is None or response.status_code >= 400:
            return
        if dialect_of(flow) is not Dialect.OPENAI_RESPONSES:
            return
        stream = response.stream
        if isinstance(stream, StreamTap):  # the audit addon's tap has read the stream
            response_id = stream.result.response_id
        elif response.raw_content is not None:
            content_type = response.headers.get("content-type", "")
            response_id = usage_from_body(Dialect.OPENAI_RESPONSES, content_type,
                                          response.get_content(strict=False) or b"").response_id
        else:
            return
        self.chains.learn(response_id, pinned["session_id"], pinned["source"])

    def error(self, flow: http.HTTPFlow) -> None:
        """The parse left for the audit has served by now: saved flows must not carry the body twice."""
        flow.metadata.pop(METADATA_KEY, None)

    def _add_prompt_cache_key(self, flow: http.HTTPFlow, body: dict | None) -> list[str]:
        """Adds the key where the body allows it exactly; returns the problems worth a warning."""
        pinned = flow.metadata["cachepin"]
        try:  # strict: setting .content re-encodes, so a lying or unknown coding would change more than the key
            decoded = flow.request.get_content(strict=True)
        except ValueError:
            decoded = None
        edited, problems = prompt_cache_key_edit(decoded, flow.request.headers.get("content-encoding", ""),
                                                 flow.request.raw_content or b"", body, pinned["session_id"])
        if edited is not None:
            flow.request.content = edited
            pinned["prompt_cache_key"] = True
        return problems


def _parse_filter(option: str, spec: str) -> flowfilter.TFilter | None:
    if not spec:
        return None
    try:
        return flowfilter.parse(spec)
    except ValueError:
        raise ValueError(
            f"{option}: invalid filter expression {spec!r} (see mitmproxy's filter syntax, e.g. '~d api.example.com')"
        ) from None


addons = [Inject()]
