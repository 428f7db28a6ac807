"""The benchmark: what cachepin's addons cost on the path, next to plain mitmdump and no proxy.

``measure`` runs the measurements and prints the table
(``python -m cachepin_tools.bench --help``); ``payloads`` builds agent-like
bodies and streams; ``upstream`` is a minimal fast upstream
(``python -m cachepin_tools.bench.upstream``); ``stream_sse.py`` is a mitmdump
``-s`` script, loaded by path, for the plain-but-streaming reference.
"""
