"""The audit's response side: streamed responses tapped, a response or an error recorded as one turn, and the
responses still running settled at shutdown."""

from __future__ import annotations

import time

from mitmproxy import http

from cachepin.request.dialects import Dialect
from cachepin.response.extract import Extracted
from cachepin.response.readers import StreamTap, interrupted, scanner_for, usage_of_response
from cachepin.response.reading import READING_KEY, from_record
from cachepin.views.content_view import TURN_KEY
from cachepin_mitmproxy.audit_requests import AuditRequests
from cachepin_mitmproxy.audit_sockets import AuditSockets
from cachepin_mitmproxy.flows import dialect_of, tap_of

SHUT_DOWN = "the proxy shut down before the response ended"


class AuditResponses(AuditRequests, AuditSockets):
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """Tee streamed responses (SSE, Bedrock's AWS event streams): every chunk goes on to the client at once,
        a copy is read on the side.

        A plain ``stream = True`` (mitmproxy's ``stream_large_bodies``) is replaced by the tap, which
        streams just the same; another addon's own stream callable is left alone.
        """
        dialect = dialect_of(flow)
        if not flow.live or flow.response is None or dialect is None:
            return
        scanner = scanner_for(flow.response.headers.get("content-type", ""))
        if scanner is not None and flow.response.stream in (False, True):
            tap = StreamTap(dialect, flow.response.headers.get("content-encoding", ""), clock=time.time,
                            scanner=scanner)
            flow.response.stream = tap
            flow.metadata[READING_KEY] = tap.reading  # kept up to date: a capture (-w) saves it with the flow

    def response(self, flow: http.HTTPFlow) -> None:
        dialect = dialect_of(flow)
        if dialect is None or flow.response is None:
            return
        response, tap = flow.response, tap_of(flow)
        extracted = usage_of_response(
            dialect, response.headers.get("content-type", ""), tap,
            body=lambda: None if response.raw_content is None else response.get_content(strict=False) or b"",
            other_stream=callable(response.stream), kept_reading=flow.metadata.get(READING_KEY), live=flow.live,
        )
        if flow.error is not None and response.raw_content is None:  # a replay of a stream that did not end:
            extracted = interrupted(extracted, flow.error.msg)  # mitmproxy replays its response before its error
        self._record(flow, dialect, extracted, tap)

    def error(self, flow: http.HTTPFlow) -> None:
        """A broken stream, a reset or a client that left: an error turn, counted nowhere, unless the stream had
        given its final usage (a client may hang up at its last event). Read as a replay will read it."""
        dialect = dialect_of(flow)
        if dialect is None:
            return
        tap = tap_of(flow)
        extracted = tap.interrupted if tap is not None else from_record(flow.metadata.get(READING_KEY))
        message = flow.error.msg if flow.error else "connection failed"
        self._record(flow, dialect, interrupted(extracted or Extracted(), message), tap)

    def _settle_in_flight(self) -> None:
        """Records the responses still running as error turns (or complete ones, if their final usage was read).

        mitmproxy tears open connections down, firing their ``error`` hooks,
        only after every addon's ``done()``: recorded then, those turns would
        reach the log and the events file but not the reports written before.
        """
        for flow in list(self.in_flight.values()):
            dialect = dialect_of(flow)
            if dialect is not None:
                tap = tap_of(flow)
                self._record(flow, dialect, interrupted(tap.interrupted if tap else Extracted(), SHUT_DOWN), tap)
        for flow_id in list(self.sockets):
            self._end_socket(self.sockets[flow_id].flow, SHUT_DOWN)

    def _record(self, flow: http.HTTPFlow, dialect: Dialect, extracted: Extracted, tap: StreamTap | None) -> None:
        self.in_flight.pop(flow.id, None)
        if flow.metadata.get(TURN_KEY) or flow.id in self.turns:
            return  # response and error both fired for this flow: one turn only
        response = flow.response
        stream = response is not None and scanner_for(response.headers.get("content-type", "")) is not None
        self._in_order(flow, self._request(flow, dialect), extracted, started_at=flow.request.timestamp_start,
                       stream=stream, first_byte_at=tap.first_byte_at if tap is not None else None,
                       ended_at=response.timestamp_end if response is not None else None)
