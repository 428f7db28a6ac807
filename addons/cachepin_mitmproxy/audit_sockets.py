"""The audit over Responses WebSockets: a ``response.create`` read as the request of a turn, the server message that
ends its response, or the socket's end, recording it (``cachepin/response/websocket.py``)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from mitmproxy import http

from cachepin.audit import Audit, RequestFacts, named_session, reads_in_order
from cachepin.request.dialects import Dialect
from cachepin.response.websocket import CLOSED, Create, Ended, Socket, create_of
from cachepin_mitmproxy.audit_requests import facts_reader, forget_the_oldest, read_later
from cachepin_mitmproxy.audit_state import AuditSocket
from cachepin_mitmproxy.audit_turns import AuditTurns
from cachepin_mitmproxy.flows import pinned_of, socket_dialect_of


class AuditSockets(AuditTurns):
    def websocket_message(self, flow: http.HTTPFlow) -> None:
        """Responses over a WebSocket (``cachepin/response/websocket.py``): a ``response.create`` is read as the
        request of a turn, the server message that ends its response records the turn. Messages pass as they came.
        """
        if flow.websocket is None or socket_dialect_of(flow) is None:
            return
        message = flow.websocket.messages[-1]
        if message.dropped:  # another addon kept it from the peer
            return
        socket = self._socket(flow)
        if not message.from_client:
            ended = socket.responses.server_message(message.content, message.is_text, message.timestamp)
            if ended is not None:
                self._socket_turn(socket, ended)
            return
        create = create_of(message.content, message.is_text)
        if create is None:
            return
        read = functools.cache(_create_reader(flow, create, message.timestamp, self.audit))
        for ended in socket.responses.begin(create.lane, read, message.timestamp):
            self._socket_turn(socket, ended)
        if not reads_in_order(Dialect.OPENAI_RESPONSES, named_session(flow.request.headers, pinned_of(flow))):
            read_later(read)  # else when its turn comes: it may continue a response recorded just before it

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        """A socket that ended with responses in flight: an error turn each (one that closes idle, no turn)."""
        if flow.id in self.sockets:
            self._end_socket(flow, CLOSED)

    def _socket(self, flow: http.HTTPFlow) -> AuditSocket:
        socket = self.sockets.get(flow.id)
        if socket is None:  # its first message (also after a reload that handed over nothing, and in a replay)
            socket = self.sockets[flow.id] = Socket(flow, flow.comment)
            forget_the_oldest(self.sockets)
        return socket

    def _end_socket(self, flow: http.HTTPFlow, reason: str) -> None:
        socket = self.sockets.pop(flow.id)
        ended_at = flow.websocket.timestamp_end if flow.websocket is not None else None
        for ended in socket.responses.closed(reason, ended_at or time.time()):
            self._socket_turn(socket, ended)

    def _socket_turn(self, socket: AuditSocket, ended: Ended[Callable[[], RequestFacts]]) -> None:
        """One turn of a socket; its flow's comment says the latest one (a socket holds any number)."""
        flow = socket.flow
        self._in_order(flow, ended.request or _create_reader(flow, None, ended.started_at, self.audit),
                       ended.extracted, socket=socket, started_at=ended.started_at, stream=True,
                       first_byte_at=ended.first_byte_at, ended_at=ended.ended_at)


def _create_reader(flow: http.HTTPFlow, create: Create | None, started_at: float,
                   audit: Audit) -> Callable[[], RequestFacts]:
    """Reads a ``response.create`` (None: a response whose create was not seen) as the request of its turn when
    called: its body parsed then, the handshake's headers, the session the inject addon pinned the socket to."""
    body = create.body if create is not None else lambda: None
    return facts_reader(flow, Dialect.OPENAI_RESPONSES, started_at, body, audit)
