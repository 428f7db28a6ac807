"""mitmdump addon, for the benchmark (scripts/bench) only: plain mitmdump with streaming enabled for SSE.

mitmdump buffers every response by default, so an SSE stream reaches the
client only when it has ended (docs/performance.md, streaming). This is the
smallest fix, and the reference the cachepin addons are compared with: SSE
responses are streamed, untouched and unread; everything else stays buffered.
"""

from __future__ import annotations

from mitmproxy import http


class StreamSse:
    name = "bench_stream_sse"

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None and flow.response.headers.get("content-type", "").lower().startswith(
            "text/event-stream"
        ):
            flow.response.stream = True


addons = [StreamSse()]
