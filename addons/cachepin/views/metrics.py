"""Prometheus counters of the audited turns, served at ``/metrics`` (option ``cache_metrics``, docs/metrics.md).

A fleet of replicas is watched in Prometheus, not in each replica's report. ``prometheus_client`` is an
optional extra, imported only when the option is set, so that the audit still runs on a bare mitmproxy.

The counters live in a registry of their own, never the library's global one: a hot reload hands the same
object over (the port stays served, the counts go on), and a second one (a test, the option turned off and on)
starts from zero instead of failing on "Duplicated timeseries". Labels stay bounded whatever the traffic: no
session ids, at most ``MAX_MODELS`` models and ``MAX_PROVIDERS`` providers (later ones count as ``other``), a
turn without a model or provider name counts as ``unknown``.
"""

from __future__ import annotations

from typing import Any

from cachepin.turns.pricing import Cost
from cachepin.turns.turn import Turn

MAX_MODELS = 100
MAX_PROVIDERS = 20
OTHER = "other"  # a name past the cap
UNKNOWN = "unknown"  # no name at all
KINDS = ("input", "cache_creation", "cache_read", "output")  # the order of Turn.counts()
MISSING = ("cache_metrics needs prometheus_client: pip install 'cachepin[metrics]' "
           "(or pip install prometheus_client into mitmproxy's Python)")


def listen_address(value: str) -> tuple[str, int] | None:
    """``cache_metrics``: empty (off) or ``HOST:PORT`` (an IPv6 host in brackets); port 0 lets the system choose
    one, which the log line names."""
    if not value:
        return None
    host, colon, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"cache_metrics must be HOST:PORT, e.g. 127.0.0.1:9464 (0.0.0.0:9464 on every "
                         f"interface), not {value!r}")
    return host, int(port)


class _Bounded:
    """The names a label has taken so far, at most ``cap``: a client that invents model names cannot grow the
    series without bound."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.names: set[str] = set()

    def __call__(self, name: str | None) -> str:
        if not name:
            return UNKNOWN
        if name not in self.names:
            if len(self.names) >= self.cap:
                return OTHER
            self.names.add(name)
        return name


class Metrics:
    """The four counters, and the HTTP server that serves them once ``serve`` is called.

    ``observe`` runs on the proxy's event loop for every turn: each labelled
    child is looked up once and kept, so a turn costs a few dict look-ups and
    increments (docs/metrics.md has the measured time).
    """

    def __init__(self) -> None:
        try:
            import prometheus_client
        except ImportError:
            raise ValueError(MISSING) from None
        self._client: Any = prometheus_client
        self.registry = prometheus_client.CollectorRegistry()

        def counter(name: str, documentation: str, labels: tuple[str, ...]) -> Any:
            return prometheus_client.Counter(name, documentation, labels, registry=self.registry)

        self._turns = counter("cachepin_turns", "LLM responses audited, by verdict (hit, cold, miss, none, error)",
                              ("provider", "model", "verdict"))
        self._tokens = counter("cachepin_tokens", "Tokens of successful turns: input (uncached), cache_read, "
                               "cache_creation, output", ("provider", "model", "kind"))
        self._reasons = counter("cachepin_miss_reasons", "Misses and partial hits, by the reason cachepin found",
                                ("reason",))
        self._cost = counter("cachepin_cost_usd", "Cost of the priced successful turns in USD, as billed and as "
                             "if nothing had been cached", ("provider", "model", "basis"))
        self._children: dict[tuple[object, ...], Any] = {}
        self._models = _Bounded(MAX_MODELS)
        self._providers = _Bounded(MAX_PROVIDERS)
        self._server: Any = None
        self.address: tuple[str, int] | None = None  # as asked for (port 0 included); None: not served

    def observe(self, turn: Turn, cost: Cost | None) -> None:
        """One recorded turn. Tokens and cost count as the report's totals do: successful turns only."""
        provider, model = self._providers(turn.provider), self._models(turn.model or turn.requested_model)
        self._child(self._turns, provider, model, turn.verdict.value).inc()
        if not turn.ok:
            return
        for kind, count in zip(KINDS, turn.counts()[:4], strict=True):
            if count is not None:
                self._child(self._tokens, provider, model, kind).inc(count)
        if turn.miss is not None:
            self._child(self._reasons, turn.miss.reason.value).inc()
        if cost is not None:
            self._child(self._cost, provider, model, "billed").inc(cost.billed)
            self._child(self._cost, provider, model, "uncached").inc(cost.uncached)

    def _child(self, counter: Any, *labels: str) -> Any:
        key = (counter, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(*labels)
        return child

    def serve(self, address: tuple[str, int]) -> None:
        """Serves ``/metrics`` at ``address``, instead of where it was served before; kept if unchanged."""
        if address == self.address:
            return
        self.stop()
        host, port = address
        try:
            self._server, _ = self._client.start_http_server(port, host, registry=self.registry)
        except OSError as e:  # the port is taken, or the host is not this machine's
            raise ValueError(f"cache_metrics: cannot listen on {host}:{port}: {e.strerror or e}") from None
        self.address = address

    @property
    def url(self) -> str | None:
        """Where ``/metrics`` is served (with the port the system chose for port 0)."""
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"

    def stop(self) -> None:
        """Closes the server and its port (the counters stay)."""
        server, self._server, self.address = self._server, None, None
        if server is not None:
            server.shutdown()
            server.server_close()


def reconfigured(metrics: Metrics | None, address: tuple[str, int] | None) -> Metrics | None:
    """The metrics once ``cache_metrics`` says ``address``: None (off) stops them; else the same counters (new
    ones if there were none) served there. Raises ``ValueError`` (no library, a port in use)."""
    if address is None:
        if metrics is not None:
            metrics.stop()
        return None
    metrics = metrics or Metrics()
    metrics.serve(address)
    return metrics
