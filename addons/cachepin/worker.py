"""Requests read in a worker process, so that mitmproxy's event loop only forwards bytes.

Reading a 200 KB agent request (parse, prefix snapshot, lineage) takes about
1.7 ms of CPU. On the event loop that is time every other flow of the proxy
waits; in a worker process it runs on another core while the provider is
still thinking. The loop sends the body (one bytes object, cheap to pickle)
and gets back ``RequestFacts`` (a few hundred bytes). A worker that dies
breaks its pool: the requests it held are read again in this process (never
lost, with a warning), and the next request starts a new pool.

What must be ordered (the ledger's record of a turn, the explainer's
previous snapshot) stays on the loop: ``Turns`` records turns in the order
their responses ended, a turn whose request is still being read holding the
ones after it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError, Future
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import resource_tracker
from typing import NamedTuple

from cachepin.audit import RequestFacts, read_request
from cachepin.request.body import parse_json_object
from cachepin.request.dialects import Dialect

logger = logging.getLogger(__name__)

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the folder holding cachepin/
WAIT_AT_END = 30.0  # s a report waits for one request still being read before reading it here
PARENT_CHECK = 1.0  # s between a worker's checks that the proxy that started it still runs
SHUTDOWN_WAIT = 5.0  # s the proxy's exit waits for its workers to end before it terminates them
STALLED = 10.0  # s a read may take before the turns behind it stop waiting for it (read here instead)


class ReadJob(NamedTuple):
    """Everything ``read_request`` needs of one request, picklable: no flow, no mitmproxy object."""

    dialect: Dialect
    flow_id: str
    started_at: float
    headers: Mapping[str, str]
    pinned: tuple[str, str] | None
    raw: bytes | None  # the body as sent
    coding: str  # its content-encoding ("" for none)
    decode: Callable[[bytes, str], bytes | str] | None  # mitmproxy's decoder, passed by reference; None: no coding
    explain: bool
    judged: bool
    salt: bytes


def read(job: ReadJob) -> RequestFacts:
    """``read_request`` of one job: in the worker, or here when no worker can."""
    return read_request(job.dialect, flow_id=job.flow_id, started_at=job.started_at, headers=job.headers,
                        pinned=job.pinned, body=lambda: parse_json_object(_content(job)), explain=job.explain,
                        judged=job.judged, salt=job.salt)


def _content(job: ReadJob) -> bytes | None:
    """The decoded body, as mitmproxy's ``get_content(strict=False)`` gives it: the raw bytes when decoding fails."""
    if job.raw is None or not job.coding or job.decode is None:
        return job.raw
    try:
        decoded = job.decode(job.raw, job.coding)
    except ValueError:
        return job.raw
    return decoded if isinstance(decoded, bytes) else job.raw


class Reading(NamedTuple):
    """A request being read by a worker; its job is kept to read it here should the worker die."""

    job: ReadJob
    future: Future[RequestFacts]
    pool: object  # the pool it went to: only its own breakage closes the pool
    sent_at: float  # time.monotonic() when it was sent


class Readers:
    """A pool of worker processes that read requests, started on demand and replaced when it breaks.

    Until a new pool has answered a first job (its imports take a second or
    so), requests are read here: none waits for a worker to start.
    """

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._ready: Future[int] | None = None  # the new pool's first job: its process id, once it can read
        self._announced = False
        self._retired: list[multiprocessing.process.BaseProcess] = []  # processes of pools closed since: joined
        # at shutdown, so that none outlives the proxy

    @property
    def enabled(self) -> bool:
        """Off when asked (``cache_workers=0``) and in a frozen build (the standalone mitmproxy), which cannot
        start a copy of itself as a worker."""
        return self.processes > 0 and not getattr(sys, "frozen", False)

    def start(self) -> None:
        """Starts the workers now, so that they are ready by the first requests."""
        if not self.enabled or self._pool is not None:
            return
        try:
            self._pool = concurrent.futures.ProcessPoolExecutor(self.processes, mp_context=_SPAWN,
                                                                initializer=_end_with, initargs=(os.getpid(),))
            with _importable():
                self._ready = self._pool.submit(_ready)
        except (BrokenProcessPool, OSError, RuntimeError) as e:  # cannot start one at all (limits, no /dev/shm)
            logger.warning("cachepin audit: cannot start a request reader process (%s); reading in the proxy", e)
            self.processes = 0  # not tried again at every request (a new cache_workers value tries again)
            self.close()

    def submit(self, job: ReadJob) -> Reading | None:
        """The job sent to a worker; None: read it here (no worker, or none ready)."""
        if not self.enabled:
            return None
        if self._pool is None:
            self.start()  # for the requests after this one
            return None
        if self._ready is None or not self._ready.done():
            return None
        if self._ready.exception() is not None:  # the first job failed: the workers cannot run
            logger.warning("cachepin audit: the request reader process failed (%s); reading in the proxy",
                           self._ready.exception())
            self.processes = 0
            self.close()
            return None
        if not self._announced:
            self._announced = True
            logger.info("cachepin audit: request reader process ready (pid %d; %d in all)", self._ready.result(),
                        self.processes)
        try:
            with _importable():
                return Reading(job, self._pool.submit(read, job), self._pool, time.monotonic())
        except (BrokenProcessPool, RuntimeError):  # it died since: a new one for the requests after this one
            logger.warning("cachepin audit: the request reader process died; starting another (reading in the "
                           "proxy meanwhile)")
            self.close()
            return None

    def facts(self, reading: Reading, timeout: float | None = None) -> RequestFacts:
        """The job's result; read here if its worker died or does not answer within ``timeout``."""
        try:
            return reading.future.result(timeout)
        except BrokenProcessPool:
            logger.warning("cachepin audit: flow %s: the request reader process died; read in the proxy instead",
                           reading.job.flow_id)
            if reading.pool is self._pool:
                self.close()  # the next request starts a new pool
        except TimeoutError:
            logger.warning("cachepin audit: flow %s: the request reader process did not answer in %.0f s; read in "
                           "the proxy instead", reading.job.flow_id, time.monotonic() - reading.sent_at)
            if reading.pool is self._pool:
                self.close()  # hung: the jobs it holds are read here at once, the next request starts a new pool
        except CancelledError:  # its pool was closed before it ran (cache_workers changed, or it broke): read here
            pass
        return read(reading.job)

    def resize(self, processes: int, running: bool) -> None:
        """``cache_workers`` changed: a pool's size is fixed when it starts, so the old one is closed and the new
        one started at once if the proxy is ``running`` (else by ``start`` when it runs)."""
        if processes == self.processes:
            return
        self.close()
        self.processes = processes
        if running:
            self.start()

    def close(self) -> None:
        pool, self._pool, self._ready, self._announced = self._pool, None, None, False
        if pool is not None:
            self._retired += (getattr(pool, "_processes", None) or {}).values()  # CPython's, read before shutdown
            pool.shutdown(wait=False, cancel_futures=True)  # drops it

    def shutdown(self, timeout: float = SHUTDOWN_WAIT) -> None:
        """At the proxy's exit: the workers end, within ``timeout`` or terminated (one may hang), and so does the
        resource tracker ``spawn`` started with them, so that no process outlives the proxy."""
        pool, self._pool, self._ready = self._pool, None, None
        processes, self._retired = [*self._retired, *(getattr(pool, "_processes", None) or {}).values()], []
        if pool is None and not processes:
            return
        deadline = time.monotonic() + timeout
        ending = None
        if pool is not None:  # its own shutdown, which also ends its threads and queues; bounded, as a worker may hang
            ending = threading.Thread(target=pool.shutdown, kwargs={"cancel_futures": True}, daemon=True)
            ending.start()
            ending.join(timeout)
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
                process.join(1.0)
        if ending is not None:
            ending.join(1.0)  # its processes have ended: so does it
        stop = getattr(getattr(resource_tracker, "_resource_tracker", None), "_stop", None)  # private, 3.12+:
        if callable(stop):  # without it the tracker ends a moment after the proxy, when its pipe closes
            # It waits for the tracker, which waits for every process holding its pipe: another part of this
            # process may hold one too, so the wait is bounded.
            stopping = threading.Thread(target=stop, name="cachepin-tracker-stop", daemon=True)
            stopping.start()
            stopping.join(max(1.0, deadline - time.monotonic()))


_SPAWN = multiprocessing.get_context("spawn")
"""Spawned, never forked: mitmproxy runs threads, which a fork would copy in whatever state they were."""


class _importable:
    """``cachepin`` on ``sys.path`` while a worker is started: a spawned process imports by name, and mitmproxy
    found this package through the script's folder, which it only puts on the path while loading the script."""

    def __enter__(self) -> None:
        self.added = PACKAGE_ROOT not in sys.path
        if self.added:
            sys.path.insert(0, PACKAGE_ROOT)

    def __exit__(self, *_: object) -> None:
        if self.added and PACKAGE_ROOT in sys.path:
            sys.path.remove(PACKAGE_ROOT)


def _end_with(proxy: int) -> None:
    """A worker's start: it ends when the proxy does, even when the proxy is killed (SIGKILL, OOM) and cannot
    say so; it would otherwise wait for jobs for ever, and so would the resource tracker it shares."""
    def watch() -> None:
        while os.getppid() == proxy:
            time.sleep(PARENT_CHECK)
        os._exit(0)

    threading.Thread(target=watch, name="cachepin-parent-watch", daemon=True).start()


def _ready() -> int:
    """A new worker's first job: it has imported cachepin (to find this function) and can read requests."""
    return os.getpid()


Pending = RequestFacts | Reading | Callable[[], RequestFacts]
"""A request's facts: known, being read by a worker, or to read here when needed."""


class Turns:
    """Turns recorded in the order their responses ended, each once its request facts are known.

    ``add`` takes what is pending (facts, or a worker's future) and what to do
    with the facts; ``drain`` records every turn at the head of the queue whose
    facts have come, or (``wait``) all of them, waiting for the workers.
    """

    def __init__(self, readers: Readers) -> None:
        self.readers = readers
        self._queue: deque[tuple[str, Pending, Callable[[RequestFacts], None], Callable[[], RequestFacts]]] = deque()
        self._waiting: Counter[str] = Counter()  # flow ids in the queue (a socket's flow may hold several turns)

    def __len__(self) -> int:
        return len(self._queue)

    def __contains__(self, flow_id: str) -> bool:
        return self._waiting[flow_id] > 0

    def add(self, flow_id: str, pending: Pending, record: Callable[[RequestFacts], None],
            fallback: Callable[[], RequestFacts]) -> None:
        """``fallback``: the facts to record the turn with should reading its request fail (a bug): the turn
        is kept, with what the headers said, and the turns after it are not held up."""
        self._queue.append((flow_id, pending, record, fallback))
        self._waiting[flow_id] += 1

    def drain(self, wait: bool = False) -> None:
        while self._queue:
            flow_id, pending, record, fallback = self._queue[0]
            timeout = WAIT_AT_END
            if isinstance(pending, Reading) and not pending.future.done():
                if time.monotonic() - pending.sent_at >= STALLED:
                    timeout = 0  # hung: read here, and the turns behind it go on
                elif not wait:
                    return
            self._queue.popleft()
            self._waiting[flow_id] -= 1
            if not self._waiting[flow_id]:
                del self._waiting[flow_id]
            try:
                facts = self._facts(pending, timeout)
            except Exception:
                logger.exception("cachepin audit: flow %s: its request could not be read; its turn is recorded "
                                 "with what the headers said", flow_id)
                facts = fallback()
            record(facts)

    def _facts(self, pending: Pending, timeout: float) -> RequestFacts:
        if isinstance(pending, Reading):
            return self.readers.facts(pending, timeout)
        return pending if isinstance(pending, RequestFacts) else pending()
