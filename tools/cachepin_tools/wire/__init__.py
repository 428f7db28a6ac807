"""The wire kit: what LLM APIs send back, rendered from token counts, for everything that plays an upstream.

The gateway simulator, the benchmark's payloads and fast upstream, the test
suite's fake and scripted upstreams and the unit tests' fixtures all answer
as the providers do. They render those answers here, once, from a
``tokens.Tokens`` record (counts in), to JSON-ready objects and bytes (bytes
out):

- ``framing``: SSE frames in each provider's style, ``[DONE]``, gzip flushed
  per event; ``eventstream``: AWS event-stream messages with their CRCs;
- ``anthropic``, ``openai`` (Chat Completions and Responses), ``gemini``,
  ``bedrock``: each API's usage object, JSON body, stream events (Bedrock's
  event streams too) and error body;
- ``http1``: raw HTTP/1.1 heads and chunked transfer coding, for servers that
  write the socket themselves.

It imports nothing from ``cachepin`` (``tests/rules/test_runtime_imports.py``
checks it): the tools and tests use it to check cachepin's reading of these
formats, so it must not share that reading's code.
"""
