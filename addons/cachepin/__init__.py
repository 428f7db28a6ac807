"""cachepin: the logic behind the mitmproxy addons, free of mitmproxy imports.

The addon scripts in ``addons/`` and the mixins of ``addons/cachepin_mitmproxy/`` are
thin adapters, which this package never imports; everything here is pure
functions and small classes, so that it can be tested, benchmarked and reused
alone.
The packages are the stages of a flow, in the order data moves through them
(each imports only from the stages before it):

- ``request``: what the client sent: the API dialect, the session, the body
  parsed once (and edited only where documented), the prefix snapshot.
- ``response``: what the provider answered: decoding, the SSE scanner, the
  usage each provider reports, and the readers that drive them.
- ``turns``: the ledger of turns per session, their verdicts, the reason of a
  miss, and what each turn cost.
- ``views``: what people and programs see: log lines, the table, the JSON
  report and events, JUnit, the mitmweb content view.

Above them: ``audit`` ties the stages into one turn per response; ``worker``
reads requests in reader processes, off mitmproxy's event loop; ``options``
declares the addons' options and parses their values, and ``settings`` makes
the explainer of the audit's; ``lifecycle`` is the audit's life around its
flows (resumed at start, reports on a timer, SIGHUP, what a hot reload hands
over, the exit status); ``handover`` keeps state across a hot reload.
"""

__version__ = "0.1.0"  # the same as pyproject.toml's (tests/rules/test_runtime_imports.py checks)
