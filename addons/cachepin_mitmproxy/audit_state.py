"""The state the audit's hooks share, set up once: each mixin of ``CacheAudit`` inherits it, so it type-checks alone.

Whatever a hot reload hands over (``lifecycle.HandedOver``) replaces part of it in ``CacheAudit.load``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mitmproxy import http
from mitmproxy.version import VERSION as MITMPROXY_VERSION

from cachepin.audit import Audit, RequestFacts
from cachepin.response.websocket import Socket
from cachepin.turns.explain import Explainer
from cachepin.turns.ledger import Ledger
from cachepin.views.metrics import Metrics
from cachepin.worker import Pending, Readers, Turns

type AuditSocket = Socket[http.HTTPFlow, Callable[[], RequestFacts]]


class AuditState:
    logger: logging.Logger  # the script's, set by its class: the mixins' lines are logged as they always were

    def __init__(self) -> None:
        self.audit = Audit(versions={"mitmproxy": MITMPROXY_VERSION})
        self.requests: dict[str, Pending] = {}  # by flow id, request to response
        self.in_flight: dict[str, http.HTTPFlow] = {}  # by flow id: requests sent, their turn not recorded yet
        self.explainer_handed_over = False  # the explainer came from the instance before a reload
        self.sockets: dict[str, AuditSocket] = {}  # by flow id: Responses WebSockets, their responses in flight
        self.reporter: asyncio.Task | None = None  # rewrites the reports every cache_report_interval seconds
        self.is_running = False
        self.metrics: Metrics | None = None  # cache_metrics: the Prometheus counters and their server
        self.readers = Readers(0)  # cache_workers: the processes that read requests (started at running)
        self.turns = Turns(self.readers)  # responses ended, in order, their turns recorded once their request is read
        self.updated: list[http.HTTPFlow] = []  # other flows whose turn was recorded since: to show anew
        self.closed = False  # the final reports are written: a flow that ends later is in no output

    @property
    def ledger(self) -> Ledger:
        return self.audit.ledger

    @property
    def explainer(self) -> Explainer:
        return self.audit.explainer
