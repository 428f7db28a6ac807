"""mitmproxy addon: prove that the prompt cache hits, session by session.

Reads the cache figures every LLM response reports (JSON, or SSE streamed
through at once), groups them by session, explains every miss, prices every
turn, logs one line per response, writes JSONL events, a JSON report and
JUnit XML, and makes mitmdump exit with status 3 when expectations fail (4
when one of those files could not be written).

    mitmdump -s addons/inject.py -s addons/cache_audit.py --set cache_expect=warm

The logic lives in ``cachepin/`` (no mitmproxy imports); this file adapts it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable

from mitmproxy import command, contentviews, ctx, exceptions, hooks, http
from mitmproxy.net.encoding import decode
from mitmproxy.version import VERSION as MITMPROXY_VERSION

from cachepin import handover, lifecycle, options, settings
from cachepin.audit import (
    Audit,
    Recorded,
    RequestFacts,
    header_facts,
    parses_body,
    read_request,
    reads_in_order,
)
from cachepin.request.body import METADATA_KEY, parse_json_object, reuse
from cachepin.request.body_edit import exact_body
from cachepin.request.dialects import Dialect, dialect_for, websocket_dialect_for
from cachepin.request.salt import proxy_salt
from cachepin.request.session import from_headers
from cachepin.request.tee import RequestTee, may_stream, settle
from cachepin.response.extract import Extracted
from cachepin.response.readers import (
    StreamTap,
    interrupted,
    scanner_for,
    usage_of_response,
)
from cachepin.response.reading import READING_KEY, from_record
from cachepin.response.websocket import CLOSED, Create, Ended, Socket, create_of
from cachepin.turns.explain import Explainer
from cachepin.turns.ledger import Ledger
from cachepin.turns.turn import Verdict
from cachepin.turns.verdicts import Expect
from cachepin.views.content_view import TURN_KEY, render, turn_facts
from cachepin.views.flow_comment import inject_note, turn_comment, with_turn
from cachepin.views.metrics import Metrics, listen_address, reconfigured
from cachepin.views.table import summary_table
from cachepin.worker import Pending, Readers, Reading, ReadJob, Turns

logger = logging.getLogger(__name__)

EXIT_EXPECTATIONS_FAILED = lifecycle.EXIT_EXPECTATIONS_FAILED  # mitmdump's status then, for whoever runs it
MISS_MARK = ":x:"
MAX_PENDING = 4096  # requests not answered yet; a flow that never ends must not hold memory for ever
READ_DELAY = 0.02  # s from the request hook to reading the request: it is upstream, the provider still thinking
SHUT_DOWN = "the proxy shut down before the response ended"


class CacheAudit:
    name = "cachepin_audit"

    def __init__(self) -> None:
        self.audit = Audit(versions={"mitmproxy": MITMPROXY_VERSION})
        self.requests: dict[str, Pending] = {}  # by flow id, request to response
        self.in_flight: dict[str, http.HTTPFlow] = {}  # by flow id: requests sent, their turn not recorded yet
        self.explainer_handed_over = False  # the explainer came from the instance before a reload
        self.sockets: dict[str, _Socket] = {}  # by flow id: Responses WebSockets, their responses in flight
        self.reporter: asyncio.Task | None = None  # rewrites the reports every cache_report_interval seconds
        self.is_running = False
        self.metrics: Metrics | None = None  # cache_metrics: the Prometheus counters and their server
        self.readers = Readers(0)  # cache_workers: the processes that read requests (started at running)
        self.turns = Turns(self.readers)  # responses ended, in order, their turns recorded once their request is read
        self.updated: list[http.HTTPFlow] = []  # other flows whose turn was recorded since: to show anew
        self.queued: set[str] = set()  # flow ids whose turn waits in ``turns``
        self.closed = False  # the final reports are written: a flow that ends later is in no output

    def load(self, loader) -> None:
        for option in options.AUDIT:
            loader.add_option(option.name, option.typespec, option.default, option.help, option.choices)
        for name, problem in options.deferred_problems(options.AUDIT, ctx.options.deferred).items():
            logger.error("cachepin: %s", problem)  # mitmproxy exits 1 on an error at startup, instead of
            del ctx.options.deferred[name]  # dropping this script without a word for a value it cannot apply
        kept = handover.take((id(ctx.master), self.name))
        if isinstance(kept, lifecycle.HandedOver):  # a hot reload: what the old instance counted, awaits and serves
            self.audit, self.in_flight, self.sockets = kept.audit, kept.in_flight, kept.sockets
            self.metrics, self.readers = kept.metrics, kept.readers
            self.turns.readers = kept.readers
            self.explainer_handed_over = True
        contentviews.add(UsageContentview())

    def configure(self, updated: set[str]) -> None:
        keep_explainer, self.explainer_handed_over = self.explainer_handed_over, False
        try:
            options.check(options.AUDIT, updated, lambda name: getattr(ctx.options, name))
            if "cache_prices" in updated:
                self.audit.prices = options.price_table(ctx.options.cache_prices)
            if "cache_metrics" in updated:
                self.metrics = reconfigured(self.metrics, listen_address(ctx.options.cache_metrics))
                if self.metrics is not None:
                    logger.info("cachepin audit: Prometheus metrics at %s", self.metrics.url)
            if updated & {"affinity_salt", "confdir"}:
                self.audit.salt = proxy_salt(ctx.options.affinity_salt, ctx.options.confdir)
            options.resumable(ctx.options.cache_resume, ctx.options.cache_events)
        except ValueError as e:
            raise exceptions.OptionsError(str(e)) from None
        if "cache_report_interval" in updated and self.is_running:
            self._schedule_reports()
        if "cache_workers" in updated:
            self.readers.resize(ctx.options.cache_workers, self.is_running)
        if updated & settings.EXPLAINER_OPTIONS:
            if not keep_explainer:  # a reload configures every option, all unchanged: keep the explainer's state
                self.audit.explainer = _new_explainer()
        self.ledger.expect = Expect(ctx.options.cache_expect)
        self.ledger.min_hit = ctx.options.cache_min_hit
        self.ledger.max_sessions = ctx.options.cache_max_sessions
        self.ledger.max_turns = ctx.options.cache_max_turns

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """A flow read from a file (or duplicated) carries the marker of the run that recorded it: not this one's.

        Its tap's reading stays on a flow read from a file: it is all a replay has of a stream whose body was
        not kept. A live flow (one sent again) gets a response of its own.
        """
        flow.metadata.pop(TURN_KEY, None)
        if flow.live:
            flow.metadata.pop(READING_KEY, None)
        self._stream_request(flow)
        if isinstance(flow.request.stream, RequestTee) and _dialect(flow) is not None:
            self.in_flight[flow.id] = flow  # on its way upstream already: a shutdown before its end is a turn too

    def _stream_request(self, flow: http.HTTPFlow) -> None:
        """A request whose headers name its session need not wait for its body (``request/tee.py``). The inject
        addon, when it runs first, has decided already, by the same ``may_stream``."""
        request = flow.request
        if (request.stream is False and flow.live and not flow.is_replay and may_stream(ctx.options, _dialect(flow))
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
        dialect = _dialect(flow)
        if dialect is None or flow.intercepted or self.closed:  # an intercepted request may still be edited
            return
        self.in_flight[flow.id] = flow
        self.requests[flow.id] = self._pending(flow, dialect)
        _forget_the_oldest(self.requests, self.in_flight)

    def _pending(self, flow: http.HTTPFlow, dialect: Dialect) -> Pending:
        # The inject addon's parse counts only for an unencoded body: decoding one here would cost what waiting saves.
        unencoded = None if "content-encoding" in flow.request.headers else flow.request.raw_content
        body = reuse(flow.metadata.get(METADATA_KEY), unencoded)
        if ctx.options.cache_diagnostics:  # the edit must be made before the body leaves: read it now
            return self._ask_for_diagnostics(flow, dialect, body)
        reader = _request_reader(flow, dialect, body, self.audit)
        if reads_in_order(dialect, _pinned(flow), flow.request.headers):
            return reader
        if not parses_body(flow.request.headers, _pinned(flow), explain=ctx.options.cache_explain,
                           judged=self.ledger.expecting):
            return reader()  # the headers are all it reads: at once, and never worth a reader process's round trip
        reading = self._read_in_worker(flow, dialect)
        if reading is not None:
            return reading
        _read_later(functools.partial(self._read_request, flow.id))
        return reader

    def _read_in_worker(self, flow: http.HTTPFlow, dialect: Dialect) -> Reading | None:
        """The request sent to a reader process (``cachepin/worker.py``); None: read it here."""
        if not self.is_running or not self.readers.enabled:
            return None
        request = flow.request
        coding = request.headers.get("content-encoding", "")
        job = ReadJob(dialect, flow.id, request.timestamp_start, dict(request.headers.items()), _pinned(flow),
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
                                                       _request_reader(flow, dialect, body, self.audit)(), body, raw)
        if edited is not None:
            request.content = edited  # re-encoded in the client's coding, which _exact_content checked round-trips
        return facts

    def _read_request(self, flow_id: str) -> None:
        pending = self.requests.get(flow_id)
        if callable(pending):
            self.requests[flow_id] = pending()

    def _request(self, flow: http.HTTPFlow, dialect: Dialect) -> Pending:
        """What the request said, read earlier, being read, or to read (no request hook ran, e.g. across a reload)."""
        return self.requests.pop(flow.id, None) or _request_reader(flow, dialect, None, self.audit)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        """Tee streamed responses (SSE, Bedrock's AWS event streams): every chunk goes on to the client at once,
        a copy is read on the side.

        A plain ``stream = True`` (mitmproxy's ``stream_large_bodies``) is replaced by the tap, which
        streams just the same; another addon's own stream callable is left alone.
        """
        dialect = _dialect(flow)
        if not flow.live or flow.response is None or dialect is None:
            return
        scanner = scanner_for(flow.response.headers.get("content-type", ""))
        if scanner is not None and flow.response.stream in (False, True):
            tap = StreamTap(dialect, flow.response.headers.get("content-encoding", ""), clock=time.time,
                            scanner=scanner)
            flow.response.stream = tap
            flow.metadata[READING_KEY] = tap.reading  # kept up to date: a capture (-w) saves it with the flow

    def response(self, flow: http.HTTPFlow) -> None:
        dialect = _dialect(flow)
        if dialect is None or flow.response is None:
            return
        response, tap = flow.response, _tap(flow)
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
        dialect = _dialect(flow)
        if dialect is None:
            return
        tap = _tap(flow)
        extracted = tap.interrupted if tap is not None else from_record(flow.metadata.get(READING_KEY))
        message = flow.error.msg if flow.error else "connection failed"
        self._record(flow, dialect, interrupted(extracted or Extracted(), message), tap)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        """Responses over a WebSocket (``cachepin/response/websocket.py``): a ``response.create`` is read as the
        request of a turn, the server message that ends its response records the turn. Messages pass as they came.
        """
        if flow.websocket is None or _socket_dialect(flow) is None:
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
        _read_later(read)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        """A socket that ended with responses in flight: an error turn each (one that closes idle, no turn)."""
        if flow.id in self.sockets:
            self._end_socket(flow, CLOSED)

    def _socket(self, flow: http.HTTPFlow) -> _Socket:
        socket = self.sockets.get(flow.id)
        if socket is None:  # its first message (also after a reload that handed over nothing, and in a replay)
            socket = self.sockets[flow.id] = Socket(flow, flow.comment)
            _forget_the_oldest(self.sockets)
        return socket

    def _end_socket(self, flow: http.HTTPFlow, reason: str) -> None:
        socket = self.sockets.pop(flow.id)
        ended_at = flow.websocket.timestamp_end if flow.websocket is not None else None
        for ended in socket.responses.closed(reason, ended_at or time.time()):
            self._socket_turn(socket, ended)

    def _socket_turn(self, socket: _Socket, ended: Ended[Callable[[], RequestFacts]]) -> None:
        """One turn of a socket; its flow's comment says the latest one (a socket holds any number)."""
        flow = socket.flow
        self._in_order(flow, ended.request or _create_reader(flow, None, ended.started_at, self.audit),
                       ended.extracted, socket=socket, started_at=ended.started_at, stream=True,
                       first_byte_at=ended.first_byte_at, ended_at=ended.ended_at)

    def running(self) -> None:
        self.is_running = True
        self.readers.start()
        lifecycle.end_on_hangup(ctx.master.shutdown)
        if ctx.options.cache_resume and not self.audit.resumed:  # once: a reload hands the seeded ledger over
            lifecycle.resume(self.audit, ctx.options.cache_events)
        self._schedule_reports()

    def _schedule_reports(self) -> None:
        if self.reporter is not None:
            self.reporter.cancel()
        self.reporter = lifecycle.rewrite_every(ctx.options.cache_report_interval, self._rewrite_reports)

    def _rewrite_reports(self, *, table: bool = False) -> None:
        """Judges min_hit and writes the report files: on the ``cache_report_interval`` timer, and for
        ``cache.report``, which logs the per-session ``table`` too."""
        for message in self.ledger.finalize():
            logger.error("cachepin audit FAILED: %s", message)
        if table:
            for row in summary_table(self.ledger).splitlines():
                logger.info("cachepin %s", row)
        for option, error in self.audit.write_reports(ctx.options.cache_report, ctx.options.cache_junit,
                                                         ctx.options.cache_html).items():
            self._cannot_write(option, error)

    def _settle_in_flight(self) -> None:
        """Records the responses still running as error turns (or complete ones, if their final usage was read).

        mitmproxy tears open connections down, firing their ``error`` hooks,
        only after every addon's ``done()``: recorded then, those turns would
        reach the log and the events file but not the reports written before.
        """
        for flow in list(self.in_flight.values()):
            dialect = _dialect(flow)
            if dialect is not None:
                tap = _tap(flow)
                self._record(flow, dialect, interrupted(tap.interrupted if tap else Extracted(), SHUT_DOWN), tap)
        for flow_id in list(self.sockets):
            self._end_socket(self.sockets[flow_id].flow, SHUT_DOWN)

    def _record(self, flow: http.HTTPFlow, dialect: Dialect, extracted: Extracted, tap: StreamTap | None) -> None:
        self.in_flight.pop(flow.id, None)
        if flow.metadata.get(TURN_KEY) or flow.id in self.queued:
            return  # response and error both fired for this flow: one turn only
        response = flow.response
        stream = response is not None and scanner_for(response.headers.get("content-type", "")) is not None
        self.queued.add(flow.id)
        self._in_order(flow, self._request(flow, dialect), extracted, started_at=flow.request.timestamp_start,
                       stream=stream, first_byte_at=tap.first_byte_at if tap is not None else None,
                       ended_at=response.timestamp_end if response is not None else None)

    def _in_order(self, flow: http.HTTPFlow, request: Pending, extracted: Extracted, *, started_at: float,
                  stream: bool, first_byte_at: float | None, ended_at: float | None,
                  socket: _Socket | None = None) -> None:
        """Records a turn once its request is read, after the turns whose responses ended before it. A
        ``socket``'s turn goes after the comment its flow had when the socket opened, and is not kept on the flow
        for the content view: a socket holds any number.

        Nothing waits for it: the response goes on to the client at once, and
        a flow whose turn is recorded after its hook is shown anew (its
        comment, its mark) when it is.
        """
        if extracted.warning:
            logger.warning("cachepin audit: flow %s: %s", flow.id, extracted.warning)
        if self.closed:  # it began as the proxy shut down, after the reports (mitmproxy ends it at once)
            logger.info("cachepin audit: flow %s ended after the final reports; not audited", flow.id)
            return
        status = flow.response.status_code if flow.response is not None else 0
        in_hook = True

        def record(facts: RequestFacts) -> None:
            self.queued.discard(flow.id)
            recorded = self.audit.record(facts, extracted, flow_id=flow.id, started_at=started_at, status=status,
                                         stream=stream, first_byte_at=first_byte_at, ended_at=ended_at)
            if socket is None:
                flow.metadata[TURN_KEY] = turn_facts(facts.session_id, recorded.turn, recorded.cost)
            self._publish(flow, facts, extracted, recorded, flow.comment if socket is None else socket.comment)
            if not in_hook:
                self.updated.append(flow)

        self.turns.add(flow.id, request, record, lambda: header_facts(flow.id, flow.request.headers, _pinned(flow)))
        self._drain()
        in_hook = False

    def _drain(self, wait: bool = False) -> None:
        """Records the turns whose request is read (``wait``: all of them); flows recorded after their hook are
        shown anew."""
        self.turns.drain(wait)
        if self.updated:
            flows, self.updated = self.updated, []
            ctx.master.addons.trigger(hooks.UpdateHook(flows))

    def _publish(self, flow: http.HTTPFlow, request: RequestFacts, extracted: Extracted, recorded: Recorded,
                 comment: str) -> None:
        """A recorded turn's log line, flow comment (after ``comment``) and mark, event line and failures."""
        turn, failures, line, cost = recorded
        if unpriced := self.audit.unpriced(turn, warned=bool(extracted.warning)):
            logger.warning("cachepin audit: %s", unpriced)
        logger.info(line)  # after the flow's warnings: a reader of the log that sees it has seen them
        if self.metrics is not None:
            self.metrics.observe(turn, cost)
        pinned = _pinned(flow)
        flow.comment = with_turn(comment, turn_comment(request.session_id, request.source, turn),
                                 inject_note(*pinned) if pinned else None)
        if turn.verdict is Verdict.MISS:
            flow.marked = MISS_MARK
        # A replay (-nr) reads its flows during startup, when mitmdump's ErrorCheck turns any ERROR into
        # exit 1: replayed failures are warnings, and done() still exits 3 (or 4, for a lost event line).
        level = logging.ERROR if flow.live else logging.WARNING
        if (error := self.audit.append_event(ctx.options.cache_events, request, recorded)) is not None:
            self._cannot_write("cache_events", error, level)
        for message in failures:
            logger.log(level, "cachepin audit FAILED: %s", message)

    @property
    def ledger(self) -> Ledger:
        return self.audit.ledger

    @property
    def explainer(self) -> Explainer:
        return self.audit.explainer

    @command.command("cache.report")
    def report(self) -> str:
        """Judge min_hit, log the per-session table, write the report files; returns the JSON report path."""
        self._drain(wait=True)  # every response that ended is in the report
        self._rewrite_reports(table=True)
        return ctx.options.cache_report

    def _cannot_write(self, option: str, error: OSError, level: int = logging.ERROR) -> None:
        logger.log(level, "cachepin audit: cannot write %s %s: %s", option, getattr(ctx.options, option), error)

    @command.command("cache.reset")
    def reset(self) -> None:
        """Forget every session and turn (the options stay)."""
        self.audit.reset(_new_explainer())
        logger.info("cachepin audit: ledger reset")

    def done(self) -> None:
        """At shutdown: reports, the table, and the exit status of ``lifecycle.exit_status`` (4 if an output
        could not be written, else 3 if expectations failed). On reload: hand over."""
        if self.reporter is not None:
            self.reporter.cancel()
        if ctx.master.should_exit.is_set():
            self._settle_in_flight()
        self.report()
        if not ctx.master.should_exit.is_set():
            kept = lifecycle.HandedOver(self.audit, self.in_flight, self.sockets, self.metrics, self.readers)
            handover.give((id(ctx.master), self.name), kept)
            return
        self.closed = True
        if self.metrics is not None:
            self.metrics.stop()
        self.readers.shutdown()
        if (failed := lifecycle.exit_status(self.audit.unwritten, self.ledger.ok)) is not None:
            logger.error("cachepin audit: %s; exiting with status %d", failed.reason, failed.status)
            raise SystemExit(failed.status)


class UsageContentview(contentviews.Contentview):
    """mitmweb/mitmproxy view of an LLM response's cache figures (and a stream's text)."""

    name = "cachepin usage"
    syntax_highlight = "yaml"

    def prettify(self, data: bytes, metadata: contentviews.Metadata) -> str:
        dialect = _metadata_dialect(metadata)
        if dialect is None:
            raise ValueError("not an LLM API response")
        return render(dialect, metadata.content_type or "", data, _turn_facts(metadata))

    def render_priority(self, data: bytes, metadata: contentviews.Metadata) -> float:
        return 2 if _metadata_dialect(metadata) is not None and data else -1


def _turn_facts(metadata: contentviews.Metadata) -> dict | None:
    facts = metadata.flow.metadata.get(TURN_KEY) if metadata.flow is not None else None
    return facts if isinstance(facts, dict) else None


def _metadata_dialect(metadata: contentviews.Metadata) -> Dialect | None:
    flow = metadata.flow
    if not isinstance(flow, http.HTTPFlow) or metadata.http_message is not flow.response:
        return None
    return _dialect(flow)


def _dialect(flow: http.HTTPFlow) -> Dialect | None:
    return dialect_for(flow.request.method, flow.request.path)


def _socket_dialect(flow: http.HTTPFlow) -> Dialect | None:
    return websocket_dialect_for(flow.request.method, flow.request.path, flow.request.headers.get("upgrade", ""))


type _Socket = Socket[http.HTTPFlow, Callable[[], RequestFacts]]


def _create_reader(flow: http.HTTPFlow, create: Create | None, started_at: float,
                   audit: Audit) -> Callable[[], RequestFacts]:
    """Reads a ``response.create`` (None: a response whose create was not seen) as the request of its turn when
    called: its body parsed then, the handshake's headers, the session the inject addon pinned the socket to."""
    body = create.body if create is not None else lambda: None
    return _reader(flow, Dialect.OPENAI_RESPONSES, started_at, body, audit)


def _new_explainer() -> Explainer:
    return settings.explainer(ctx.options.cache_ttl_scale, ctx.options.cache_minimums,
                              ctx.options.cache_max_sessions)


def _request_reader(flow: http.HTTPFlow, dialect: Dialect, body: dict | None,
                    audit: Audit) -> Callable[[], RequestFacts]:
    """Reads the request when called, with the inject addon's parse of its body when it made one."""
    request = flow.request

    def parsed() -> dict | None:
        return body if body is not None else parse_json_object(request.get_content(strict=False))

    return _reader(flow, dialect, request.timestamp_start, parsed, audit)


def _reader(flow: http.HTTPFlow, dialect: Dialect, started_at: float, body: Callable[[], dict | None],
            audit: Audit) -> Callable[[], RequestFacts]:
    """``audit.read_request`` of a flow, to call later, with the options as they are now (when it was sent)."""
    explain, judged = ctx.options.cache_explain, audit.ledger.expecting
    return lambda: read_request(dialect, flow_id=flow.id, started_at=started_at, headers=flow.request.headers,
                                pinned=_pinned(flow), body=body, explain=explain, chains=audit.chains,
                                judged=judged, salt=audit.salt)


def _read_later(read: Callable[[], object]) -> None:
    """Calls ``read`` once the request has gone upstream (``request`` says why); with no event loop (hooks called
    directly), nothing: the request is read when its response ends."""
    try:
        asyncio.get_running_loop().call_later(READ_DELAY, read)
    except RuntimeError:
        pass


def _forget_the_oldest(*pending: dict) -> None:
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


def _tap(flow: http.HTTPFlow) -> StreamTap | None:
    """The flow's own tap: kept on the flow, so it outlives a hot reload of this script."""
    stream = flow.response.stream if flow.response is not None else None
    return stream if isinstance(stream, StreamTap) else None


def _pinned(flow: http.HTTPFlow) -> tuple[str, str] | None:
    """The session the inject addon resolved for this flow, if it ran."""
    pinned = flow.metadata.get("cachepin")
    if isinstance(pinned, dict) and pinned.get("session_id"):
        return pinned["session_id"], pinned.get("source", "")
    return None


addons = [CacheAudit()]
