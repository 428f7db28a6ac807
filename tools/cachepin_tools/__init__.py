"""cachepin_tools: what the project runs around the addons, never on a user's proxy path.

The addons (``addons/inject.py``, ``addons/cache_audit.py`` and the ``cachepin``
package) must run on a bare mitmproxy from a plain clone; checking that they
do what they claim needs more: SDKs, aiohttp, a fake gateway, timings. That
lives here, installed with the project (``pip install -e '.[test]'``), one
subpackage per product:

- ``simulator``: the gateway simulator, a fake LLM gateway whose accounts each
  keep a prompt cache (``python -m cachepin_tools.simulator``, ``scripts/gateway-sim``).
- ``bench``: what the addons cost on the path (``python -m cachepin_tools.bench``,
  ``scripts/bench``).
- ``harness``: starting mitmdump and the simulator, and the commands built on
  them, ``scripts/demo`` and ``scripts/verify``.
"""
