"""The audit's request side: whether a request streams, and when and where it is read (here, later, or in a reader
process), so that neither the request nor its response waits for the reading."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

from mitmproxy import ctx, http
from mitmproxy.net.encoding import decode

from cachepin.audit import Audit, RequestFacts, named_session, parses_body, read_request, reads_in_order
from cachepin.request.body import METADATA_KEY, parse_json_object, reuse
from cachepin.request.body_edit import exact_body
from cachepin.request.dialects import Dialect
from cachepin.request.session import from_headers
from cachepin.request.tee import RequestTee, may_stream, settle
from cachepin.response.reading import READING_KEY
from cachepin.views.content_view import TURN_KEY
from cachepin.worker import Pending, Reading, ReadJob
from cachepin_mitmproxy.audit_turns import AuditTurns
from cachepin_mitmproxy.flows import dialect_of, pinned_of

MAX_PENDING = 4096  # requests not answered yet; a flow that never ends must not hold memory for ever
READ_DELAY = 0.02  # s from the request hook to reading the request: it is upstream, the provider still thinking


class AuditRequests(AuditTurns):
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """A flow read from a file (or duplicated) carries the marker of the run that recorded it: not this one's.

        Its tap's reading stays on a flow read from a file: it is all a replay has of a stream whose body was
        not kept. A live flow (one sent again) gets a response of its own.
        """
        flow.metadata.pop(TURN_KEY, None)
        if flow.live:
            flow.metadata.pop(READING_KEY, None)
        self._stream_request(flow)
        if isinstance(flow.request.stream, RequestTee) and dialect_of(flow) is not None:
            self.in_flight[flow.id] = flow  # on its way upstream already: a shutdown before its end is a turn too

    def _stream_request(self, flow: http.HTTPFlow) -> None:
        """A request whose headers name its session need not wait for its body (``request/tee.py``). The inject
        addon, when it runs first, has decided already, by the same ``may_stream``."""
        request = flow.request
        if (request.stream is False and flow.live and not flow.is_replay and may_stream(ctx.options, dialect_of(flow))
                and from_headers(request.headers).session_id is not None):
            request.stream = RequestTee()

    def request(self, flow: http.HTTPFlow) -> None:
        """Read the request once it has gone upstream, while the provider works on it.

        Hooks run on mitmproxy's one event loop, and parsing and snapshotting a
        500 KB agent request takes milliseconds: done here it would hold back
        the request (and every other flow), done in ``response`` the end of this
        one. mitmproxy sends the request after this hook, a large body over
        several turns of the loop, so the reading waits ``READ_DELAY``: long
        enough for the body to leave, far shorter than any provider's time to
        first token. ``response`` reads it itself if the answer came first. The
        inject addon's parse of the body is reused. With ``cache_workers`` a
        reader process reads it at once instead (``cachepin/worker.py``), and
        with ``cache_diagnostics`` the proxy does: its body is edited before it
        leaves.
        """
        settle(flow.request)  # a body streamed by the tee is the request's content again
        dialect = dialect_of(flow)
        if dialect is None or flow.intercepted or self.closed:  # an intercepted request may still be edited
            return
        self.in_flight[flow.id] = flow
        self.requests[flow.id] = self._pending(flow, dialect)
        forget_the_oldest(self.requests, self.in_flight)

    def _pending(self, flow: http.HTTPFlow, dialect: Dialect) -> Pending:
        # The inject addon's parse counts only for an unencoded body: decoding one here would cost what waiting saves.
        unencoded = None if "content-encoding" in flow.request.headers else flow.request.raw_content
        body = reuse(flow.metadata.get(METADATA_KEY), unencoded)
        if ctx.options.cache_diagnostics:  # the edit must be made before the body leaves: read it now
            return self._ask_for_diagnostics(flow, dialect, body)
        reader = request_reader(flow, dialect, body, self.audit)
        pinned = pinned_of(flow)
        named = named_session(flow.request.headers, pinned)
        if reads_in_order(dialect, named):
            return reader
        if not parses_body(named, explain=ctx.options.cache_explain, judged=self.ledger.expecting):
            return reader()  # the headers are all it reads: at once, and never worth a reader process's round trip
        reading = self._read_in_worker(flow, dialect, pinned)
        if reading is not None:
            return reading
        read_later(functools.partial(self._read_request, flow.id))
        return reader

    def _read_in_worker(self, flow: http.HTTPFlow, dialect: Dialect,
                        pinned: tuple[str, str] | None) -> Reading | None:
        """The request sent to a reader process (``cachepin/worker.py``); None: read it here."""
        if not self.is_running or not self.readers.enabled:
            return None
        request = flow.request
        coding = request.headers.get("content-encoding", "")
        job = ReadJob(dialect, flow.id, request.timestamp_start, dict(request.headers.items()), pinned,
                      request.raw_content, coding, decode if coding else None, ctx.options.cache_explain,
                      self.ledger.expecting, self.audit.salt)
        reading = self.readers.submit(job)
        if reading is not None:
            loop = asyncio.get_running_loop()
            reading.future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._drain))
        return reading

    def _ask_for_diagnostics(self, flow: http.HTTPFlow, dialect: Dialect, body: dict | None) -> RequestFacts:
        """``cache_diagnostics``: the request read at once, its body asking the provider to compare it with its
        thread's latest response (``cachepin/request/diagnostics_edit.py``); a replay or a capture is not edited."""
        request = flow.request
        raw = _exact_content(request) if flow.live and not flow.is_replay else None
        if body is None and raw is not None:
            body = parse_json_object(raw)
        facts, edited = self.audit.ask_for_diagnostics(dialect, request.path,
                                                       request_reader(flow, dialect, body, self.audit)(), body, raw)
        if edited is not None:
            request.content = edited  # re-encoded in the client's coding, which _exact_content checked round-trips
        return facts

    def _read_request(self, flow_id: str) -> None:
        pending = self.requests.get(flow_id)
        if callable(pending):
            self.requests[flow_id] = pending()

    def _request(self, flow: http.HTTPFlow, dialect: Dialect) -> Pending:
        """What the request said, read earlier, being read, or to read (no request hook ran, e.g. across a reload)."""
        return self.requests.pop(flow.id, None) or request_reader(flow, dialect, None, self.audit)


def request_reader(flow: http.HTTPFlow, dialect: Dialect, body: dict | None,
                   audit: Audit) -> Callable[[], RequestFacts]:
    """Reads the request when called, with the inject addon's parse of its body when it made one."""
    request = flow.request

    def parsed() -> dict | None:
        return body if body is not None else parse_json_object(request.get_content(strict=False))

    return facts_reader(flow, dialect, request.timestamp_start, parsed, audit)


def facts_reader(flow: http.HTTPFlow, dialect: Dialect, started_at: float, body: Callable[[], dict | None],
                 audit: Audit) -> Callable[[], RequestFacts]:
    """``audit.read_request`` of a flow, to call later, with the options as they are now (when it was sent)."""
    explain, judged = ctx.options.cache_explain, audit.ledger.expecting
    return lambda: read_request(dialect, flow_id=flow.id, started_at=started_at, headers=flow.request.headers,
                                pinned=pinned_of(flow), body=body, explain=explain, chains=audit.chains,
                                judged=judged, salt=audit.salt)


def read_later(read: Callable[[], object]) -> None:
    """Calls ``read`` once the request has gone upstream (``request`` says why); with no event loop (hooks called
    directly), nothing: the request is read when its response ends."""
    try:
        asyncio.get_running_loop().call_later(READ_DELAY, read)
    except RuntimeError:
        pass


def forget_the_oldest(*pending: dict) -> None:
    """Past ``MAX_PENDING`` entries, the oldest goes: a flow that never ends must not hold memory for ever."""
    for held in pending:
        if len(held) > MAX_PENDING:
            held.pop(next(iter(held)))


def _exact_content(request: http.Request) -> bytes | None:
    """The decoded body, when an edit of it goes upstream in exactly the coding the client sent (``exact_body``)."""
    try:
        decoded = request.get_content(strict=True)
    except ValueError:
        return None
    return exact_body(decoded, request.headers.get("content-encoding", ""), request.raw_content or b"")
