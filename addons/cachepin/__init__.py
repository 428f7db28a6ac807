"""cachepin: the logic behind the mitmproxy addons, free of mitmproxy imports.

The addons in ``addons/`` are thin adapters; everything here is pure functions
and small classes so that it can be tested, benchmarked and reused alone.
"""
