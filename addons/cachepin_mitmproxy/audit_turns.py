"""Turns recorded in the order their responses ended, and published: log line, flow comment and mark, event line.

A turn waits for its request to be read (``cachepin/worker.py``'s ``Turns``); a flow recorded after its hook is
shown anew through mitmproxy's ``UpdateHook``.
"""

from __future__ import annotations

import logging

from mitmproxy import ctx, hooks, http

from cachepin.audit import Recorded, RequestFacts, header_facts
from cachepin.response.extract import Extracted
from cachepin.turns.turn import Verdict
from cachepin.views.content_view import TURN_KEY, turn_facts
from cachepin.views.flow_comment import inject_note, turn_comment, with_turn
from cachepin.worker import Pending
from cachepin_mitmproxy.audit_state import AuditSocket, AuditState
from cachepin_mitmproxy.flows import pinned_of

MISS_MARK = ":x:"


class AuditTurns(AuditState):
    def _in_order(self, flow: http.HTTPFlow, request: Pending, extracted: Extracted, *, started_at: float,
                  stream: bool, first_byte_at: float | None, ended_at: float | None,
                  socket: AuditSocket | None = None) -> None:
        """Records a turn once its request is read, after the turns whose responses ended before it. A
        ``socket``'s turn goes after the comment its flow had when the socket opened, and is not kept on the flow
        for the content view: a socket holds any number.

        Nothing waits for it: the response goes on to the client at once, and
        a flow whose turn is recorded after its hook is shown anew (its
        comment, its mark) when it is.
        """
        if extracted.warning:
            self.logger.warning("cachepin audit: flow %s: %s", flow.id, extracted.warning)
        if self.closed:  # it began as the proxy shut down, after the reports (mitmproxy ends it at once)
            self.logger.info("cachepin audit: flow %s ended after the final reports; not audited", flow.id)
            return
        status = flow.response.status_code if flow.response is not None else 0
        live = flow.live  # now: mitmproxy marks a flow not live once its response has gone, before a late record
        in_hook = True

        def record(facts: RequestFacts) -> None:
            recorded = self.audit.record(facts, extracted, flow_id=flow.id, started_at=started_at, status=status,
                                         stream=stream, first_byte_at=first_byte_at, ended_at=ended_at)
            if socket is None:
                flow.metadata[TURN_KEY] = turn_facts(facts.session_id, recorded.turn, recorded.cost)
            self._publish(flow, facts, extracted, recorded, flow.comment if socket is None else socket.comment, live)
            if not in_hook:
                self.updated.append(flow)

        self.turns.add(flow.id, request, record, lambda: header_facts(flow.id, flow.request.headers, pinned_of(flow)))
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
                 comment: str, live: bool) -> None:
        """A recorded turn's log line, flow comment (after ``comment``) and mark, event line and failures;
        ``live``: whether the flow was live when its response ended."""
        turn, failures, line, cost = recorded
        if unpriced := self.audit.unpriced(turn, warned=bool(extracted.warning)):
            self.logger.warning("cachepin audit: %s", unpriced)
        self.logger.info(line)  # after the flow's warnings: a reader of the log that sees it has seen them
        if self.metrics is not None:
            self.metrics.observe(turn, cost)
        pinned = pinned_of(flow)
        flow.comment = with_turn(comment, turn_comment(request.session_id, request.source, turn),
                                 inject_note(*pinned) if pinned else None)
        if turn.verdict is Verdict.MISS:
            flow.marked = MISS_MARK
        # A replay (-nr) reads its flows during startup, when mitmdump's ErrorCheck turns any ERROR into
        # exit 1: replayed failures are warnings, and done() still exits 3 (or 4, for a lost event line).
        level = logging.ERROR if live else logging.WARNING
        if (error := self.audit.append_event(ctx.options.cache_events, request, recorded)) is not None:
            self._cannot_write("cache_events", error, level)
        for message in failures:
            self.logger.log(level, "cachepin audit FAILED: %s", message)

    def _cannot_write(self, option: str, error: OSError, level: int = logging.ERROR) -> None:
        self.logger.log(level, "cachepin audit: cannot write %s %s: %s", option, getattr(ctx.options, option), error)
