"""What cachepin's addons cost on the path, next to plain mitmdump and no proxy at all.

A proxy between a coding agent and its provider must be invisible: streamed
tokens must arrive as fast as without it, and large agent requests must not
queue behind slow hooks on mitmproxy's single event loop. Absolute times on a
shared machine are noisy, so every comparison runs side by side in one run,
over several rounds (the order of the contenders rotates each round), and the
medians and their ratios are reported. Everything runs on 127.0.0.1.

1. streaming: time to first SSE event and to the last one (end of message) of
   a gateway-simulator stream with a pause between events, for a 200 KB agent
   request: direct, plain mitmdump (default: it buffers the whole response),
   plain mitmdump streaming SSE (bench/stream_sse.py), plain mitmdump with
   stream_large_bodies=1 (streams requests and responses), mitmdump with
   both addons, and the same with a client that names its session in a
   header (then neither addon needs the body before forwarding). Each
   addons row is compared with its fairest baseline: a client without a
   session id with mitmdump streaming SSE (its body must arrive to be
   fingerprinted), one that names its session with mitmdump streaming both
   ways. The same for a 1 MB request (long Claude Code contexts reach that).
   Target: first event at most 1.1x the baseline, and never the
   whole-stream wait.
2. throughput: requests/s and median latency per request, one client in a
   row and 8 concurrent clients, 200 KB agent request bodies (no session id:
   the resolver fingerprints them) and 30 KB SSE responses, identity and
   gzip, from a minimal fast upstream (cachepin_tools.bench.upstream; the
   simulator's own cache model would be the bottleneck). The same
   contenders; the CPU time of each mitmdump process per request (Linux
   /proc). Targets against the same baselines: requests/s at least 0.9x,
   sequential latency at most 1.1x.
3. in-process: the session resolver on a 500 KB body (parse + resolve, as
   the inject addon does when no header names the session; also with an
   ASCII-only body, and parse and resolve apart) and the audit's prefix
   snapshot of it (a conversation's first turn, and a later one whose
   earlier blocks are remembered), in us per call; the SSE tee (StreamTap)
   on 50 MB Anthropic and OpenAI streams, identity and gzip, fed in 16 KB
   chunks, in MB/s of the decoded stream, with its peak memory (tracemalloc)
   on the whole stream and on a tenth of it. Targets: resolver <= 1 ms; tee
   >= 500 MB/s identity, >= 250 MB/s gzip; memory independent of length.
4. ledger: 100,000 sessions x 5 turns recorded as the audit addon does (UUID
   flow ids, timings, Anthropic usage, priced) with max_sessions=10,000 (the
   cache_max_sessions default): us per turn added, sessions held and
   evicted, turns still counted in the totals. Then with tracemalloc (which
   slows every allocation): memory per 5-turn session with 10,000 sessions
   held, and in total after 20,000 sessions with max_sessions=10,000.
   Targets: <= 2 KB per 5-turn session; bounded by max_sessions.

Usage: scripts/bench [--quick] [--json FILE] [--only SECTION,...] [--rounds N]
The table goes to stdout, progress to stderr. --quick (for the test suite)
runs each measurement small and in 2 rounds, in well under a minute; its
numbers are rough.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import re
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from statistics import median

import mitmproxy.version

from cachepin.request.body import parse_json_object
from cachepin.request.dialects import Dialect
from cachepin.request.session import resolve
from cachepin.request.snapshot import Snapshot
from cachepin.response.readers import StreamTap
from cachepin.response.usage import Usage
from cachepin.turns.ledger import Ledger
from cachepin.turns.models import DEFAULT_PRICES
from cachepin.turns.pricing import cost
from cachepin.worker import Readers, ReadJob, read
from cachepin_tools.bench.payloads import agent_body, anthropic_events, chunked, openai_events
from cachepin_tools.harness.processes import Mitmdump, Process, Simulator
from cachepin_tools.wire.framing import gzip_frames

STREAM_SSE = Path(__file__).resolve().parent / "stream_sse.py"  # a mitmdump -s script, loaded by path
HOST = "127.0.0.1"
REQUEST_TIMEOUT = 30.0
CLIENTS = 8
MB = 1_000_000
SECTIONS = ("streaming", "throughput", "inprocess", "ledger")
_UPSTREAM_READY = re.compile(r"bench_upstream listening on (http://\S+)")
_STARTED = time.monotonic()


@dataclass(frozen=True)
class Settings:
    """How big and how often: the full run's defaults, or ``quick()`` for the test suite."""

    rounds: int = 7
    event_delay: float = 0.05  # s between the simulator's SSE events (16 events per stream)
    body_size: int = 200_000  # agent request bodies (sections 1 and 2)
    large_body_size: int = 1_000_000  # a long Claude Code context (section 1, the addons and their baselines)
    response_size: int = 30_000  # decoded SSE response (section 2)
    sequential_requests: int = 60  # per contender and round
    concurrent_requests: int = 12  # per client, contender and round
    resolver_body: int = 500_000
    resolver_calls: int = 40
    snapshot_calls: int = 15  # one 500 KB body built per call: each must be new to the snapshot's memory
    stream_size: int = 50 * MB
    chunk_size: int = 16 * 1024
    tee_rounds: int = 5
    ledger_sessions: int = 100_000
    ledger_turns: int = 5
    ledger_bound: int = 10_000  # the audit's default cache_max_sessions
    ledger_memory_sessions: int = 10_000  # traced: tracemalloc makes each turn ~6x slower

    @classmethod
    def quick(cls) -> Settings:
        return cls(rounds=2, event_delay=0.02, large_body_size=300_000, sequential_requests=12,
                   concurrent_requests=4, resolver_calls=5,
                   snapshot_calls=3, stream_size=5 * MB, tee_rounds=1, ledger_sessions=2_000, ledger_bound=200,
                   ledger_memory_sessions=1_000)


@dataclass
class Row:
    """One measurement: ``key`` is stable for machines, ``label`` is for people."""

    key: str
    section: str
    label: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    def add(self, key: str, label: str, value: float, unit: str, target: str = "", met: bool | None = None) -> None:
        self.rows.append(Row(key, key.split(".", 1)[0], label, value, unit, target, met))


def progress(message: str) -> None:
    print(f"[bench {time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


# --- a minimal HTTP/1.1 client: keep-alive, timing the body as it arrives ---------------------------------------


@dataclass(frozen=True)
class Timing:
    first_event: float  # s from sending the request to the first complete SSE event (gzip: the first body bytes)
    last_event: float  # s to the end of the message


class Connection:
    """One keep-alive connection to 127.0.0.1, speaking just enough HTTP/1.1 to time an SSE reply.

    A full client (aiohttp, httpx) would cost the benchmark's own process more
    CPU per request than the proxies under test spend; this one parses only
    the status line, the framing headers and the chunk sizes.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> Connection:
        self._reader, self._writer = await asyncio.open_connection(HOST, self.port, limit=1 << 20)
        return self

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await asyncio.wait_for(self._writer.wait_closed(), 5)
            except (OSError, TimeoutError):
                pass
            self._writer = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Timing:
        return await asyncio.wait_for(self._post(path, body, headers), REQUEST_TIMEOUT)

    async def _post(self, path: str, body: bytes, headers: dict[str, str]) -> Timing:
        assert self._reader is not None and self._writer is not None, "open() first"
        lines = [f"POST {path} HTTP/1.1", f"host: {HOST}:{self.port}", "content-type: application/json",
                 f"content-length: {len(body)}", *(f"{name}: {value}" for name, value in headers.items())]
        started = time.perf_counter()
        self._writer.writelines([("\r\n".join(lines) + "\r\n\r\n").encode(), body])
        head = (await self._reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        status = int(head.split(" ", 2)[1])
        watch_events = "content-encoding: gzip" not in head
        first: float | None = None
        seen = b""
        async for piece in self._body(head):
            if first is None:
                seen += piece
                if not watch_events or b"\n\n" in seen:
                    first = time.perf_counter()
        ended = time.perf_counter()
        if status != 200:
            raise RuntimeError(f"HTTP {status} from port {self.port}: {seen[:300]!r}")
        return Timing((first or ended) - started, ended - started)

    async def _body(self, head: str) -> AsyncIterator[bytes]:
        assert self._reader is not None
        if "transfer-encoding: chunked" in head:
            while True:
                size = int((await self._reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                if size == 0:
                    await self._reader.readuntil(b"\r\n")  # no trailers are sent
                    return
                yield (await self._reader.readexactly(size + 2))[:-2]
        match = re.search(r"content-length: *(\d+)", head)
        if match is None:
            raise RuntimeError("a response without Content-Length or chunked framing")
        if int(match.group(1)):
            yield await self._reader.readexactly(int(match.group(1)))


async def open_all(ports: dict[str, int], count: int = 1) -> dict[str, list[Connection]]:
    return {name: [await Connection(port).open() for _ in range(count)] for name, port in ports.items()}


async def close_all(connections: dict[str, list[Connection]]) -> None:
    for group in connections.values():
        for connection in group:
            await connection.close()


def rotated[T](items: Sequence[T], round_index: int) -> list[T]:
    """Each round starts with another contender, so drift over the run favours none."""
    shift = round_index % len(items)
    return [*items[shift:], *items[:shift]]


# --- processes ------------------------------------------------------------------------------------------------


def start_all(factories: Mapping[str, Callable[[], Process]], stack: ExitStack) -> dict[str, Process]:
    """Start processes in parallel (mitmdump takes a second or two); each is stopped when ``stack`` closes."""
    with ThreadPoolExecutor(len(factories)) as pool:
        futures = {name: pool.submit(factory) for name, factory in factories.items()}
    started: dict[str, Process] = {}
    errors = []
    for name, future in futures.items():
        try:
            started[name] = stack.enter_context(future.result())
        except Exception as exc:  # every process that did start must still be stopped
            errors.append(exc)
    if errors:
        raise errors[0]
    return started


def proxies(upstream: str, stack: ExitStack) -> dict[str, Process]:
    """Plain mitmdump, the SSE-streaming reference, plain mitmdump streaming both ways, and mitmdump with both
    addons (with the miss explainer, and without it: ``addons_lean``; with the request readers in the proxy's
    own process: ``addons_here``), in front of ``upstream``."""
    confdirs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cachepin-bench-")))
    both = ("inject.py", "cache_audit.py")
    setups: dict[str, tuple[tuple[str, ...], dict[str, object]]] = {
        "mitmdump": ((), {}), "mitmdump_stream": ((str(STREAM_SSE),), {}),
        "mitmdump_stream_all": ((), {"stream_large_bodies": "1"}),
        "addons": (both, {}), "addons_lean": (both, {"cache_explain": False}),
        "addons_here": (both, {"cache_workers": 0})}
    factories = {name: (lambda name=name, chosen=chosen, options=options:
                        Mitmdump(upstream, chosen, options=options, confdir=str(confdirs / name)))
                 for name, (chosen, options) in setups.items()}
    started = start_all(factories, stack)
    time.sleep(0.5)  # mitmdump reports "listening" before it exits over an addon that failed to load
    for name, process in started.items():
        if process.proc.poll() is not None:
            raise RuntimeError(f"{name}: mitmdump exited at startup:\n{process.output}")
    return started


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].rstrip("/"))


# --- 1. streaming -----------------------------------------------------------------------------------------------

_LABELS = {"direct": "direct (no proxy)", "mitmdump": "plain mitmdump (default, buffers)",
           "mitmdump_stream": "plain mitmdump, SSE streamed",
           "mitmdump_stream_all": "plain mitmdump, stream_large_bodies=1", "addons": "both addons",
           "addons_header": "both addons, session header",
           "addons_lean": "both addons, session header, cache_explain=false",
           "addons_here": "both addons, cache_workers=0", "addons_header_here": "both addons, session header, "
           "cache_workers=0"}
_WITH_ADDONS = ("addons", "addons_header", "addons_lean", "addons_here", "addons_header_here")
_NAMES_SESSION = ("addons_header", "addons_lean", "addons_header_here", "mitmdump_stream_all")  # send X-Session-Id
BASELINE = {"addons": "mitmdump_stream", "addons_header": "mitmdump_stream_all", "addons_lean": "mitmdump_stream_all",
            "addons_here": "mitmdump_stream", "addons_header_here": "mitmdump_stream_all"}
"""The fairest plain mitmdump for each: a client without a session id is fingerprinted from its body, which
must arrive first, so its baseline buffers requests (as mitmdump does by default) and streams SSE; a client that
names its session needs no body before forwarding, so its baseline streams both ways."""


_PROCESS = {"addons_header": "addons", "addons_header_here": "addons_here"}
"""Contenders that are another contender's mitmdump, with another client (one that names its session)."""


def contender_ports(ports: dict[str, int], names: Sequence[str]) -> dict[str, int]:
    """The port each contender talks to."""
    return {name: ports[_PROCESS.get(name, name)] for name in names}


def request_headers(name: str, encoding: str, client: int, response_size: int | None = None) -> dict[str, str]:
    """A contender's request headers: only the _NAMES_SESSION ones name their session (so inject skips the body)."""
    headers = {"anthropic-version": "2023-06-01", "accept-encoding": encoding}
    if response_size is not None:
        headers["x-bench-size"] = str(response_size)
    if name in _NAMES_SESSION:
        headers["x-session-id"] = f"bench-session-{client}"
    return headers


def measure_streaming(settings: Settings, report: Report) -> None:
    progress(f"streaming: starting the gateway simulator (--event-delay {settings.event_delay}) and the mitmdumps")
    with ExitStack() as stack:
        simulator = stack.enter_context(Simulator("--event-delay", str(settings.event_delay)))
        started = proxies(simulator.url, stack)
        ports = contender_ports({"direct": port_of(simulator.url), **{name: process.port
                                                                     for name, process in started.items()}},
                                list(_LABELS))
        timings, large = asyncio.run(_streaming_rounds(settings, ports))
    first = {name: median([t.first_event for t in runs]) * 1000 for name, runs in timings.items()}
    last = {name: median([t.last_event for t in runs]) * 1000 for name, runs in timings.items()}
    for name, label in _LABELS.items():
        report.add(f"streaming.first_event_ms.{name}", f"first event, {label}", first[name], "ms")
    for name, label in _LABELS.items():
        report.add(f"streaming.last_event_ms.{name}", f"last event, {label}", last[name], "ms")
    whole = last["direct"]
    for name in _WITH_ADDONS:
        label, reference = _LABELS[name], timings[BASELINE[name]]
        ratio = median([a.first_event / s.first_event for a, s in zip(timings[name], reference, strict=True)])
        report.add(f"streaming.first_event_ratio.{name}", f"first event: {label} / {_LABELS[BASELINE[name]]}",
                   ratio, "x", "<= 1.1x", ratio <= 1.1)
        ratio = median([a.first_event / s.first_event
                        for a, s in zip(large[name], large[BASELINE[name]], strict=True)])
        report.add(f"streaming.first_event_ratio_large.{name}",
                   f"first event, {settings.large_body_size // 1000:,} KB request: {label} / "
                   f"{_LABELS[BASELINE[name]]}", ratio, "x", "<= 1.1x", ratio <= 1.1)
        worst = max(t.first_event for t in timings[name]) * 1000
        report.add(f"streaming.first_event_worst_ms.{name}", f"first event, {label}, worst round", worst, "ms",
                   f"< half the stream ({whole / 2:.0f} ms)", worst < whole / 2)


_LARGE = ("mitmdump_stream", "mitmdump_stream_all", *_WITH_ADDONS)  # the large request: the addons, baselines


async def _streaming_rounds(settings: Settings,
                            ports: dict[str, int]) -> tuple[dict[str, list[Timing]], dict[str, list[Timing]]]:
    """Each round: the agent request through every contender, then the large one through ``_LARGE``."""
    connections = await open_all(ports)
    timings: dict[str, list[Timing]] = {name: [] for name in ports}
    large: dict[str, list[Timing]] = {name: [] for name in _LARGE}
    try:
        for index in range(-1, settings.rounds):  # round -1 warms up (upstream connections, caches): not counted
            if index >= 0:
                progress(f"streaming: round {index + 1}/{settings.rounds}")
            for size, names, into in ((settings.body_size, list(ports), timings),
                                      (settings.large_body_size, list(_LARGE), large)):
                body = agent_body(size, turn=index)
                for name in rotated(names, max(index, 0)):
                    timing = await connections[name][0].post("/v1/messages", body,
                                                             request_headers(name, "identity", 0))
                    if index >= 0:
                        into[name].append(timing)
    finally:
        await close_all(connections)
    return timings, large


# --- 2. throughput ----------------------------------------------------------------------------------------------

_CONTENDERS = ("mitmdump", "mitmdump_stream", "mitmdump_stream_all", *_WITH_ADDONS)
_TURNS_PER_CLIENT = 4  # distinct bodies each client cycles through


@dataclass
class Load:
    """Requests/s and per-request latencies of one contender, encoding and mode, over the rounds."""

    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # the mitmdump process's CPU time per request, per round
    loop_ms: list[float] = field(default_factory=list)  # of which its main thread's: mitmproxy's event loop


def measure_throughput(settings: Settings, report: Report) -> None:
    progress("throughput: starting the fast upstream and the mitmdumps")
    with ExitStack() as stack:
        upstream = stack.enter_context(
            Process([sys.executable, "-m", "cachepin_tools.bench.upstream"], _UPSTREAM_READY, name="bench_upstream"))
        started = proxies(upstream.match.group(1), stack)
        loads = asyncio.run(_throughput_rounds(settings, started))
    for encoding in ("identity", "gzip"):
        for mode, mode_label in (("sequential", "1 client"), ("concurrent", f"{CLIENTS} clients")):
            where = f"{encoding}, {mode_label}"
            chosen = {name: loads[name, encoding, mode] for name in _CONTENDERS}
            for name in _CONTENDERS:
                report.add(f"throughput.rps.{encoding}.{mode}.{name}", f"req/s, {where}, {_LABELS[name]}",
                           median(chosen[name].rates), "req/s")
            for name in _CONTENDERS:
                report.add(f"throughput.latency_ms.{encoding}.{mode}.{name}", f"latency, {where}, {_LABELS[name]}",
                           median(chosen[name].latencies) * 1000, "ms")
            for name in _CONTENDERS:
                report.add(f"throughput.cpu_ms.{encoding}.{mode}.{name}", f"CPU per request, {where}, {_LABELS[name]}",
                           median(chosen[name].cpu_ms), "ms")
            for name in _CONTENDERS:
                report.add(f"throughput.loop_ms.{encoding}.{mode}.{name}",
                           f"  of which on the event loop, {where}, {_LABELS[name]}",
                           median(chosen[name].loop_ms), "ms")
            for name in _WITH_ADDONS:
                baseline = chosen[BASELINE[name]]
                ratio = median([a / p for a, p in zip(chosen[name].rates, baseline.rates, strict=True)])
                report.add(f"throughput.ratio.{encoding}.{mode}.{name}",
                           f"req/s ratio, {where}: {_LABELS[name]} / {_LABELS[BASELINE[name]]}", ratio, "x",
                           ">= 0.9x", ratio >= 0.9)
                latency = median(chosen[name].latencies) / median(baseline.latencies)
                report.add(f"throughput.latency_ratio.{encoding}.{mode}.{name}",
                           f"latency ratio, {where}: {_LABELS[name]} / {_LABELS[BASELINE[name]]}", latency, "x",
                           "<= 1.1x" if mode == "sequential" else "", latency <= 1.1 if mode == "sequential" else None)


async def _throughput_rounds(settings: Settings, started: dict[str, Process]) -> dict[tuple[str, str, str], Load]:
    bodies = [[agent_body(settings.body_size, seed=client + 1, turn=turn) for turn in range(_TURNS_PER_CLIENT)]
              for client in range(CLIENTS)]
    ports = {name: process.port for name, process in started.items()}
    pids = {name: started[_PROCESS.get(name, name)].proc.pid for name in _CONTENDERS}
    connections = await open_all(contender_ports(ports, _CONTENDERS), CLIENTS)
    loads: dict[tuple[str, str, str], Load] = {}
    try:
        for index in range(-1, settings.rounds):  # round -1 warms up and is not counted
            if index >= 0:
                progress(f"throughput: round {index + 1}/{settings.rounds}")
            for encoding in ("identity", "gzip"):
                for name in rotated(_CONTENDERS, max(index, 0)):
                    group = connections[name]
                    headers = [request_headers(name, encoding, client, settings.response_size)
                               for client in range(CLIENTS)]
                    runs = (("sequential", group[:1], settings.sequential_requests),
                            ("concurrent", group, settings.concurrent_requests))
                    for mode, clients, count in runs:
                        cpu_before, loop_before = cpu_seconds(pids[name]), loop_seconds(pids[name])
                        rate, latencies = await _drive(clients, bodies, headers, count if index >= 0 else 2)
                        if index >= 0:
                            load = loads.setdefault((name, encoding, mode), Load())
                            load.rates.append(rate)
                            load.latencies += latencies
                            load.cpu_ms.append((cpu_seconds(pids[name]) - cpu_before) * 1000 / len(latencies))
                            load.loop_ms.append((loop_seconds(pids[name]) - loop_before) * 1000 / len(latencies))
    finally:
        await close_all(connections)
    return loads


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and the processes it started and runs (the audit's request
    readers: their work is the proxy's too). Linux ``/proc``; 0 elsewhere, and the column reads 0."""
    return _stat_seconds(f"/proc/{pid}/stat") + sum(cpu_seconds(child) for child in _children(pid))


def loop_seconds(pid: int) -> float:
    """The CPU time of a process's main thread: mitmproxy's event loop, which every flow waits for."""
    return _stat_seconds(f"/proc/{pid}/task/{pid}/stat")


def _stat_seconds(path: str) -> float:
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    children: list[int] = []
    for task in tasks:
        try:
            children += [int(child) for child in (task / "children").read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    return children


async def _drive(clients: list[Connection], bodies: list[list[bytes]], headers: list[dict[str, str]],
                 count: int) -> tuple[float, list[float]]:
    """``count`` requests on each connection at once; returns requests/s and every request's latency."""
    latencies: list[float] = []

    async def client(index: int, connection: Connection) -> None:
        for turn in range(count):
            timing = await connection.post("/v1/messages", bodies[index][turn % _TURNS_PER_CLIENT], headers[index])
            latencies.append(timing.last_event)

    started = time.perf_counter()
    await asyncio.gather(*(client(index, connection) for index, connection in enumerate(clients)))
    return len(latencies) / (time.perf_counter() - started), latencies


# --- 3. in-process --------------------------------------------------------------------------------------------


def measure_reading(raws: list[bytes], calls: int, where: str, report: Report) -> None:
    """The audit's reading of a request (parse, snapshot, lineage), in the proxy and through a reader process
    (``cache_workers``): its round trip, and the CPU it still costs the proxy's process (sending, receiving)."""
    progress("in-process: the audit's request reading, here and in a reader process")
    jobs = [ReadJob(Dialect.ANTHROPIC, "bench", 0.0, {}, ("bench", "header:x-session-id"), raw, "", None,
                    explain=True, judged=False, salt=b"bench") for raw in raws]
    report.add("inprocess.read_us", f"audit: request read in the proxy (parse, snapshot, lineage), {where}",
               per_call_us(read, jobs, calls), "us")
    readers = Readers(1)
    readers.start()
    deadline = time.monotonic() + 60
    while readers.submit(jobs[0]) is None:  # the first requests are read here while the process starts
        if time.monotonic() > deadline:
            raise RuntimeError("the reader process did not start within 60 s")
        time.sleep(0.05)
    try:
        def round_trip(job: ReadJob) -> object:
            reading = readers.submit(job)
            assert reading is not None
            return reading.future.result(30)

        report.add("inprocess.read_worker_us", f"audit: request read by a reader process, round trip, {where}",
                   per_call_us(round_trip, jobs, calls), "us")
        started = time.process_time()  # every thread of this process: the pool's own included
        for index in range(calls):
            round_trip(jobs[index % len(jobs)])
        report.add("inprocess.read_worker_cpu_us", f"  of which: CPU of the proxy's process (send, receive), {where}",
                   (time.process_time() - started) / calls * 1e6, "us")
    finally:
        readers.shutdown()


def per_call_us[T](call: Callable[[T], object], inputs: Sequence[T], calls: int) -> float:
    """Median wall time of one call, in microseconds, cycling through ``inputs`` (after one warm-up call).

    Two inputs at least where the code remembers its last input (``parse_json_object`` does).
    """
    call(inputs[-1])
    times = []
    for index in range(calls):
        chosen = inputs[index % len(inputs)]
        started = time.perf_counter()
        call(chosen)
        times.append(time.perf_counter() - started)
    return median(times) * 1e6


def _resolve_raw(raw: bytes) -> object:
    """What the inject addon does with a body when no header names the session."""
    return resolve({}, parse_json_object(raw), Dialect.ANTHROPIC)


def measure_inprocess(settings: Settings, report: Report) -> None:
    progress(f"in-process: resolver on a {settings.resolver_body // 1000} KB body")
    size, calls = settings.resolver_body, settings.resolver_calls
    raws = [agent_body(size, turn=turn) for turn in range(2)]
    ascii_raws = [agent_body(size, turn=turn, ascii_only=True) for turn in range(2)]
    bodies = [json.loads(raw) for raw in raws]
    assert resolve({}, bodies[0], Dialect.ANTHROPIC).source == "fingerprint"
    where = f"{len(raws[0]) // 1000} KB body"
    value = per_call_us(_resolve_raw, raws, calls)
    report.add("inprocess.resolver_us", f"resolver, parse + resolve, {where}", value, "us", "<= 1000 us",
               value <= 1000)
    report.add("inprocess.resolver_ascii_us", f"resolver, parse + resolve, ASCII-only {where}",
               per_call_us(_resolve_raw, ascii_raws, calls), "us")
    report.add("inprocess.parse_us", f"  of which: JSON parse, {where}", per_call_us(parse_json_object, raws, calls),
               "us")
    report.add("inprocess.resolve_parsed_us", f"  of which: resolve, the parsed {where}",
               per_call_us(lambda body: resolve({}, body, Dialect.ANTHROPIC), bodies, calls), "us")
    progress("in-process: the audit's prefix snapshot, first and later turns")
    snapshot_calls = settings.snapshot_calls
    firsts = [json.loads(agent_body(size, seed=seed)) for seed in range(100, 100 + snapshot_calls + 1)]
    laters = [json.loads(agent_body(size, seed=1, turn=turn)) for turn in range(snapshot_calls + 1)]
    snapshot = partial(Snapshot.from_request, Dialect.ANTHROPIC, at=0.0)
    report.add("inprocess.snapshot_first_us", f"audit: prefix snapshot, a conversation's first turn, {where}",
               per_call_us(snapshot, firsts, snapshot_calls), "us")
    report.add("inprocess.snapshot_later_us", f"audit: prefix snapshot, a later turn, {where}",
               per_call_us(snapshot, laters, snapshot_calls), "us")
    measure_reading(raws, calls, where, report)
    del raws, ascii_raws, bodies, firsts, laters
    streams = {"anthropic": (Dialect.ANTHROPIC, anthropic_events), "openai": (Dialect.OPENAI_CHAT, openai_events)}
    for name, (dialect, build) in streams.items():
        progress(f"in-process: building a {settings.stream_size // MB} MB {name} stream")
        frames = build(settings.stream_size)
        for encoding in ("identity", "gzip"):
            wire = b"".join(gzip_frames(frames) if encoding == "gzip" else frames)
            decoded = sum(map(len, frames))
            chunks = chunked(wire, settings.chunk_size)
            progress(f"in-process: tee on the {name} stream, {encoding}, {len(chunks)} chunks")
            rates = [decoded / MB / _tee_seconds(dialect, encoding, chunks) for _ in range(settings.tee_rounds)]
            target = 500 if encoding == "identity" else 250
            where = f"{name}, {encoding}, {decoded // MB} MB"
            report.add(f"inprocess.tee_mbps.{name}.{encoding}", f"SSE tee, {where}", median(rates), "MB/s",
                       f">= {target} MB/s", median(rates) >= target)
            whole = _tee_peak(dialect, encoding, chunks)
            tenth = _tee_peak(dialect, encoding, chunks[: max(1, len(chunks) // 10)])
            report.add(f"inprocess.tee_peak_kb.{name}.{encoding}", f"SSE tee peak memory, {where}", whole / 1000, "KB",
                       f"a tenth's +- {_LENGTH_SLACK // 1000} KB", abs(whole - tenth) <= _LENGTH_SLACK)
            report.add(f"inprocess.tee_peak_kb.{name}.{encoding}.tenth",
                       f"SSE tee peak memory, {name}, {encoding}, a tenth of it", tenth / 1000, "KB")


_LENGTH_SLACK = 64_000  # bytes: a stream's last events (usage, the final parse) cost a little once, not per MB


def _tee(dialect: Dialect, encoding: str, chunks: list[bytes]) -> StreamTap:
    tap = StreamTap(dialect, "gzip" if encoding == "gzip" else "")
    for chunk in chunks:
        tap(chunk)
    tap(b"")
    return tap


def _tee_seconds(dialect: Dialect, encoding: str, chunks: list[bytes]) -> float:
    started = time.perf_counter()
    tap = _tee(dialect, encoding, chunks)
    elapsed = time.perf_counter() - started
    if tap.result.usage is None or tap.result.warning:
        raise RuntimeError(f"the tee read no usage from the benchmark stream: {tap.result}")
    return elapsed


def _tee_peak(dialect: Dialect, encoding: str, chunks: list[bytes]) -> int:
    """Peak bytes allocated while teeing (the stream itself was allocated before)."""
    gc.collect()
    tracemalloc.start()
    try:
        _tee(dialect, encoding, chunks)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- 4. ledger ------------------------------------------------------------------------------------------------


def measure_ledger(settings: Settings, report: Report) -> None:
    sessions, turns, bound = settings.ledger_sessions, settings.ledger_turns, settings.ledger_bound
    progress(f"ledger: {sessions} sessions x {turns} turns, max_sessions={bound} (timed)")
    ledger = Ledger(pricer=_price, max_sessions=bound)
    seconds, _ = _fill(ledger, sessions, turns, traced=False)
    report.add("ledger.turn_us", f"ledger, time per turn added ({sessions:,} sessions x {turns}, "
               f"max_sessions={bound:,})", seconds / (sessions * turns) * 1e6, "us")
    report.add("ledger.bounded_held", "  sessions held in memory", len(ledger.sessions), "sessions",
               f"= {bound:,}", len(ledger.sessions) == bound)
    report.add("ledger.bounded_evicted", "  sessions evicted (still in the totals)", ledger.evicted, "sessions")
    report.add("ledger.bounded_total_turns", "  turns counted in the totals", ledger.totals.requests, "turns",
               f"= {sessions * turns:,}", ledger.totals.requests == sessions * turns)
    del ledger
    sample = settings.ledger_memory_sessions
    progress(f"ledger: memory of {sample} sessions x {turns} turns (tracemalloc)")
    _, held = _fill(Ledger(pricer=_price), sample, turns, traced=True)
    per_session = held / sample
    report.add("ledger.session_bytes", f"ledger, memory per {turns}-turn session ({sample:,} sessions held)",
               per_session, "B", "<= 2048 B", per_session <= 2048)
    progress(f"ledger: memory after {2 * bound} sessions x {turns} turns, max_sessions={bound} (tracemalloc)")
    _, held = _fill(Ledger(pricer=_price, max_sessions=bound), 2 * bound, turns, traced=True)
    report.add("ledger.bounded_mb", f"ledger, memory after {2 * bound:,} sessions, max_sessions={bound:,}",
               held / MB, "MB", f"<= 1.1x {bound:,} sessions'", held <= 1.1 * bound * per_session)


def _price(turn):
    """As the audit addon prices a turn for its running totals."""
    return cost(turn.usage(), DEFAULT_PRICES) if turn.provider else None


def _fill(ledger: Ledger, sessions: int, turns: int, traced: bool) -> tuple[float, int]:
    """Records ``sessions`` x ``turns`` realistic turns, 100 sessions interleaved at a time.

    Returns the seconds spent in ``Ledger.record`` and, when ``traced``, the
    bytes the ledger holds afterwards (tracemalloc: everything allocated
    during the fill that is still alive).
    """
    rng = random.Random(5)
    spent = 0.0
    gc.collect()
    if traced:
        tracemalloc.start()
    try:
        for first in range(0, sessions, 100):
            spent += _record_batch(ledger, rng, min(100, sessions - first), turns)
        gc.collect()
        return spent, tracemalloc.get_traced_memory()[0] if traced else 0
    finally:
        if traced:
            tracemalloc.stop()


def _record_batch(ledger: Ledger, rng: random.Random, sessions: int, turns: int) -> float:
    """Records ``turns`` turns of ``sessions`` new sessions, interleaved; returns the seconds in ``record``."""
    spent = 0.0
    batch = [f"fp_{rng.getrandbits(128):032x}" for _ in range(sessions)]
    for turn in range(1, turns + 1):
        for session_id in batch:
            creation = rng.randrange(20_000, 60_000) if turn == 1 else rng.randrange(500, 4000)
            usage = Usage("anthropic", "claude-sonnet-4-5", rng.randrange(1, 30), creation,
                          0 if turn == 1 else rng.randrange(20_000, 80_000), rng.randrange(50, 2000), creation, 0)
            flow_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            started_at, ttft_ms, duration_ms = 1.7e9 + rng.random() * 1e6, rng.uniform(300, 3000), rng.uniform(2e3, 6e4)
            started = time.perf_counter()
            ledger.record(session_id, "fingerprint", flow_id=flow_id, started_at=started_at, status=200, stream=True,
                          usage=usage, model="claude-sonnet-4-5", ttft_ms=ttft_ms, duration_ms=duration_ms)
            spent += time.perf_counter() - started
    return spent


# --- output -----------------------------------------------------------------------------------------------------


def machine() -> dict[str, object]:
    """What the numbers were measured on: they mean little without it."""
    cpu = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                    if line.startswith("model name")), cpu)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"nproc": cpus, "cpu": cpu, "python": platform.python_version(),
            "mitmproxy": mitmproxy.version.VERSION, "platform": platform.platform()}


def _number(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}"
    if unit in ("sessions", "turns"):
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def table(report: Report, info: dict[str, object], quick: bool) -> str:
    header = ("measurement", "value", "unit", "target", "")
    cells = [(row.label, _number(row.value, row.unit), row.unit, row.target,
              "" if row.met is None else ("met" if row.met else "MISSED")) for row in report.rows]
    widths = [max(len(str(line[i])) for line in [header, *cells]) for i in range(len(header))]
    out = [f"cachepin bench ({'quick' if quick else 'full'}): {info['nproc']} CPUs, {info['cpu']}, "
           f"Python {info['python']}, mitmproxy {info['mitmproxy']}"]
    section = None
    for row, line in zip(report.rows, cells, strict=True):
        if row.section != section:
            section = row.section
            out += ["", f"== {section}", "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
                    "  ".join("-" * w for w in widths)]
        out.append("  ".join([line[0].ljust(widths[0]), line[1].rjust(widths[1]),
                              *(cell.ljust(width) for cell, width in zip(line[2:], widths[2:], strict=True))]).rstrip())
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(prog="scripts/bench", description=doc.split("\n\n", 1)[0],
                                     epilog=doc.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small workloads, 2 rounds: checks that it works")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--only", metavar="SECTION,...", default=",".join(SECTIONS),
                        help=f"sections to run, comma-separated (default: all of {','.join(SECTIONS)})")
    parser.add_argument("--rounds", type=int, help="rounds of sections 1 and 2 (default: 7, quick: 2)")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown or not chosen:
        parser.error(f"--only: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    settings = Settings.quick() if args.quick else Settings()
    if args.rounds is not None:
        settings = replace(settings, rounds=args.rounds)
    measures: dict[str, Callable[[Settings, Report], None]] = {
        "streaming": measure_streaming, "throughput": measure_throughput,
        "inprocess": measure_inprocess, "ledger": measure_ledger}
    report = Report()
    for name in SECTIONS:
        if name in chosen:
            measures[name](settings, report)
    info = machine()
    sys.stdout.write(table(report, info, args.quick))
    if args.json:
        document = {"machine": info, "quick": args.quick, "settings": asdict(settings),
                    "command": "scripts/bench " + " ".join(sys.argv[1:] if argv is None else argv),
                    "results": [asdict(row) for row in report.rows]}
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    progress("done")
    return 0
