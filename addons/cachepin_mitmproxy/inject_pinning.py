"""The inject addon's pinning: a flow whose session is resolved gets its headers, its note and a log line (and the
problems met, one warning); a WebSocket handshake is pinned by its headers alone."""

from __future__ import annotations

import logging
from collections.abc import Callable

from mitmproxy import ctx, flowfilter, http

from cachepin.request.dialects import Dialect, is_websocket_upgrade
from cachepin.request.seen import SeenSessions
from cachepin.request.session import Resolution, from_headers, set_session_headers
from cachepin.views.flow_comment import inject_note
from cachepin_mitmproxy.flows import socket_dialect_of


class InjectPinning:
    scope: flowfilter.TFilter | None  # set by ``Inject``: affinity_scope, affinity_exclude
    exclude: flowfilter.TFilter | None
    seen: SeenSessions
    logger: logging.Logger  # the script's, set by ``Inject``: the pinning's lines are logged as they always were

    def in_scope(self, flow: http.HTTPFlow, dialect: Callable[[http.HTTPFlow], Dialect | None]) -> bool:
        """Not excluded, and what ``affinity_scope`` names, or else an LLM API call (``dialect`` says which)."""
        if self.exclude is not None and self.exclude(flow):
            return False
        if self.scope is not None:
            return bool(self.scope(flow))
        return dialect(flow) is not None

    def is_handshake(self, flow: http.HTTPFlow) -> bool:
        """A live WebSocket upgrade in scope: Responses over a WebSocket, or what ``affinity_scope`` names."""
        request = flow.request
        return (flow.live and is_websocket_upgrade(request.method, request.headers.get("upgrade", ""))
                and self.in_scope(flow, socket_dialect_of))

    def _pin_handshake(self, flow: http.HTTPFlow) -> None:
        """The upgrade is all the socket's conversation sends in headers, and it has no body: headers decide.

        Without a session id in them the socket is left unpinned (one INFO
        line): a WebSocket is one connection, routed once, so its turns share
        one upstream all the same; only a reconnect may land elsewhere.
        """
        resolution = from_headers(flow.request.headers, ctx.options.affinity_session)
        if resolution.session_id is None:
            self._warn(resolution.problems())
            self.logger.info("cachepin inject: WebSocket %s carries no session id in its headers; not pinned (its "
                             "turns share one connection; send X-Session-Id or set affinity_session to pin reconnects "
                             "too)", flow.request.path.split("?", 1)[0])
            return
        self._pin(flow, resolution)
        self._warn(flow.metadata["cachepin"].pop("rejected", []))

    def _pin(self, flow: http.HTTPFlow, resolution: Resolution) -> None:
        session_id = resolution.session_id
        assert session_id is not None
        injected = set_session_headers(flow.request.headers, ctx.options.affinity_headers, session_id,
                                       ctx.options.affinity_override)
        flow.metadata["cachepin"] = {"session_id": session_id, "source": resolution.source, "injected": injected}
        if resolution.rejected:  # warned about once the request hook knows of every problem
            flow.metadata["cachepin"]["rejected"] = resolution.problems()
        note = inject_note(session_id, resolution.source)
        flow.comment = f"{flow.comment}\n{note}" if flow.comment else note
        headers = ",".join(injected) or "-"
        if self.seen.add(session_id):
            self.logger.info("cachepin inject new session=%s source=%s headers=%s", session_id, resolution.source,
                             headers)
        else:
            self.logger.debug("cachepin inject session=%s source=%s headers=%s", session_id, resolution.source,
                              headers)

    def _warn(self, problems: list[str]) -> None:
        if problems:
            self.logger.warning("cachepin inject: %s", "; ".join(problems))
