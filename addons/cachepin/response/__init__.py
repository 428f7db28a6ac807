"""Stage 2, the response: the usage a provider reports, read from JSON bodies and SSE streams.

``readers`` drives the rest: the live stream tap and the reader of buffered or
replayed bodies decode (``decoding``), scan (``sse``) and normalise
(``extract``) into one ``usage.Usage`` record per response.
"""
