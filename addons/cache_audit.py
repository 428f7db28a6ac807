"""mitmproxy addon: prove that the prompt cache hits, session by session.

Reads the cache figures every LLM response reports (JSON, or SSE streamed
through at once), groups them by session, explains every miss, prices every
turn, logs one line per response, writes JSONL events, a JSON report and
JUnit XML, and makes mitmdump exit with status 3 when expectations fail (4
when one of those files could not be written).

    mitmdump -s addons/inject.py -s addons/cache_audit.py --set cache_expect=warm

The logic lives in ``cachepin/`` (no mitmproxy imports); this file and the mixins it is made of in
``cachepin_mitmproxy/`` adapt it: this one declares the options and commands and runs the audit's life (load,
reload, reports, shutdown).
"""

from __future__ import annotations

import logging

from mitmproxy import command, contentviews, ctx, exceptions

from cachepin import handover, lifecycle, options, settings
from cachepin.request.salt import proxy_salt
from cachepin.turns.explain import Explainer
from cachepin.turns.verdicts import Expect
from cachepin.views.metrics import listen_address, reconfigured
from cachepin.views.table import summary_table
from cachepin_mitmproxy.audit_requests import AuditRequests
from cachepin_mitmproxy.audit_responses import SHUT_DOWN as SHUT_DOWN
from cachepin_mitmproxy.audit_responses import AuditResponses
from cachepin_mitmproxy.audit_sockets import AuditSockets
from cachepin_mitmproxy.audit_turns import MISS_MARK as MISS_MARK
from cachepin_mitmproxy.audit_turns import AuditTurns
from cachepin_mitmproxy.usage_view import UsageContentview

logger = logging.getLogger(__name__)

EXIT_EXPECTATIONS_FAILED = lifecycle.EXIT_EXPECTATIONS_FAILED  # mitmdump's status then, for whoever runs it


class CacheAudit(AuditResponses, AuditRequests, AuditSockets, AuditTurns):
    """The audit addon: hooks from the mixins (requests, responses, WebSockets, turns), state from ``AuditState``."""

    name = "cachepin_audit"
    logger = logger  # the mixins log through it: their lines are this script's, as they always were

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

    @command.command("cache.report")
    def report(self) -> str:
        """Judge min_hit, log the per-session table, write the report files; returns the JSON report path."""
        self._drain(wait=True)  # every response that ended is in the report
        self._rewrite_reports(table=True)
        return ctx.options.cache_report

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


def _new_explainer() -> Explainer:
    return settings.explainer(ctx.options.cache_ttl_scale, ctx.options.cache_minimums,
                              ctx.options.cache_max_sessions)


addons = [CacheAudit()]
