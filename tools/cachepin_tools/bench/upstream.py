"""A minimal, fast LLM upstream for the benchmark: the proxy must be the bottleneck, not the server.

The gateway simulator parses every body and models per-account caches; at
hundreds of 200 KB requests per second that work, not the proxy, would be
measured. This server reads a request (Content-Length bodies only, as
mitmdump forwards them), ignores it, and answers a prebuilt Anthropic SSE
stream, gzipped when the request accepts gzip. Request headers choose the
reply, so one server serves every measurement:

- ``x-bench-size``: decoded size of the stream in bytes (default 30000)
- ``x-bench-delay``: seconds between events; then each event is its own
  chunk, sent at once (default 0: the whole stream in one write)

    python -m cachepin_tools.bench.upstream [--port 0]

Prints ``bench_upstream listening on http://127.0.0.1:PORT`` once ready;
stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from functools import cache

from cachepin_tools.bench.payloads import anthropic_events
from cachepin_tools.wire.framing import gzip_frames
from cachepin_tools.wire.http1 import chunk, chunked_head

DEFAULT_SIZE = 30_000
MAX_HEAD = 64 * 1024
MAX_EVENTS_DELAYED = 200  # bounds how long one delayed stream may take


@cache
def frames(size: int, gzipped: bool) -> tuple[bytes, ...]:
    """The stream's frames, built once per size and encoding."""
    events = anthropic_events(size)
    return tuple(gzip_frames(events) if gzipped else events)


def _head(gzipped: bool) -> bytes:
    headers = [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache")]
    return chunked_head(200, [*headers, ("content-encoding", "gzip")] if gzipped else headers)


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serves requests on one keep-alive connection until the client closes it."""
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return
            headers = {}
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            await reader.readexactly(int(headers.get("content-length") or 0))
            gzipped = "gzip" in headers.get("accept-encoding", "")
            stream = frames(int(headers.get("x-bench-size") or DEFAULT_SIZE), gzipped)
            delay = float(headers.get("x-bench-delay") or 0)
            writer.write(_head(gzipped))
            if delay > 0:
                for index, frame in enumerate(stream[:MAX_EVENTS_DELAYED]):
                    if index:
                        await asyncio.sleep(delay)
                    writer.write(chunk(frame))
                    await writer.drain()
            else:
                writer.write(chunk(b"".join(stream)))
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def _serve(port: int) -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", port, limit=MAX_HEAD)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"bench_upstream listening on http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one (default: 0)")
    asyncio.run(_serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
