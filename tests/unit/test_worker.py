"""Requests read in a worker process: the same facts as read on the loop, nothing lost when a worker dies."""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import os
import signal
import time
import types
import zlib
from collections.abc import Iterator
from concurrent.futures import Future

import pytest
from bodies import SECRET, anthropic_body, openai_body, tool_conversation
from hanging import hangs_in_a_worker
from mitmproxy.net.encoding import decode as _decode  # what the adapter passes, by reference

from cachepin.audit import RequestFacts, read_request
from cachepin.request.body import parse_json_object
from cachepin.request.dialects import Dialect
from cachepin.worker import Readers, Reading, ReadJob, Turns, read

SALT = b"0123456789abcdef"

REQUESTS = [
    (Dialect.ANTHROPIC, {"x-session-id": "s-1"}, anthropic_body(3)),
    (Dialect.ANTHROPIC, {}, anthropic_body(3, automatic={"type": "ephemeral"})),
    (Dialect.ANTHROPIC, {"x-claude-code-session-id": "cc-1", "x-claude-code-agent-id": "a-2"}, tool_conversation(4)),
    (Dialect.OPENAI_CHAT, {}, openai_body(3)),
    (Dialect.OPENAI_RESPONSES, {"session-id": "codex-1", "thread-id": "t-1"},
     {"model": "gpt-5", "instructions": f"{SECRET} be brief", "input": [
         {"role": "user", "content": f"{SECRET} hi"}, {"role": "assistant", "content": "hello"},
         {"role": "user", "content": "more"}]}),
    (Dialect.GEMINI, {}, {"contents": [{"role": "user", "parts": [{"text": f"{SECRET} hi"}]}]}),
    (Dialect.BEDROCK_CONVERSE, {}, {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}),
    (Dialect.BEDROCK_INVOKE, {}, {"anthropic_version": "bedrock-2023-05-31", **anthropic_body(2)}),
]
IDS = ["anthropic-header", "anthropic-automatic", "claude-code-agent", "openai-chat", "responses-codex", "gemini",
       "bedrock-converse", "bedrock-invoke"]


def job_of(dialect: Dialect, headers: dict[str, str], body: dict, *, explain: bool = True, judged: bool = False,
           raw: bytes | None = None, coding: str = "", pinned: tuple[str, str] | None = None) -> ReadJob:
    return ReadJob(dialect, "flow-1", 1000.0, headers, pinned, json.dumps(body).encode() if raw is None else raw,
                   coding, _decode if coding else None, explain, judged, SALT)


def in_process(job: ReadJob) -> RequestFacts:
    """What the audit reads on the loop today, from the same request."""
    try:
        content = _decode(job.raw, job.coding) if job.coding else job.raw  # as get_content(strict=False)
    except ValueError:
        content = job.raw
    body = parse_json_object(content)
    return read_request(job.dialect, flow_id=job.flow_id, started_at=job.started_at, headers=job.headers,
                        pinned=job.pinned, body=lambda: body, explain=job.explain, judged=job.judged, salt=job.salt)


def as_data(facts: RequestFacts) -> tuple:
    """The facts field by field (a snapshot compares by identity; its fields are what matters)."""
    snapshot = facts.snapshot
    return (facts._replace(snapshot=None), None if snapshot is None else dataclasses.astuple(snapshot))


@pytest.fixture(scope="module")
def readers() -> Iterator[Readers]:
    pool, _ = ready_readers()
    yield pool
    pool.close()


def ready_readers() -> tuple[Readers, int]:
    """A pool of one reader that has answered a first job (requests before are read in the proxy), and its pid."""
    pool = Readers(1)
    pool.start()
    deadline = time.monotonic() + 60
    while (reading := pool.submit(job_of(*REQUESTS[0]))) is None:
        assert time.monotonic() < deadline, "the reader process did not start"
        time.sleep(0.05)
    pool.facts(reading, 30)
    (worker,) = pool._pool._processes  # type: ignore[union-attr]
    return pool, worker


def submitted(readers: Readers, job: ReadJob) -> Reading:
    reading = readers.submit(job)
    assert reading is not None
    return reading


@pytest.mark.parametrize(("dialect", "headers", "body"), REQUESTS, ids=IDS)
@pytest.mark.parametrize(("explain", "judged"), [(True, False), (False, True), (False, False)])
def test_a_worker_reads_what_the_loop_reads(readers: Readers, dialect: Dialect, headers: dict[str, str], body: dict,
                                            explain: bool, judged: bool) -> None:
    job = job_of(dialect, headers, body, explain=explain, judged=judged)
    expected = as_data(in_process(job))
    assert as_data(read(job)) == expected
    assert as_data(readers.facts(submitted(readers, job), 30)) == expected


@pytest.mark.parametrize(
    ("raw", "coding"),
    [(gzip.compress(json.dumps(anthropic_body(2)).encode()), "gzip"),
     (zlib.compress(json.dumps(anthropic_body(2)).encode()), "gzip"),  # labelled gzip, not gzip: read as sent
     (json.dumps(anthropic_body(2)).encode(), "br-unknown")],
    ids=["gzip", "lying-coding", "unknown-coding"],
)
def test_an_encoded_body_is_decoded_as_mitmproxy_would(readers: Readers, raw: bytes, coding: str) -> None:
    job = job_of(Dialect.ANTHROPIC, {}, {}, raw=raw, coding=coding)
    assert as_data(readers.facts(submitted(readers, job), 30)) == as_data(in_process(job))


def test_a_pinned_session_is_kept() -> None:
    job = job_of(Dialect.ANTHROPIC, {}, anthropic_body(2), pinned=("s-pinned", "header:x-session-id"))
    assert read(job)[:2] == ("s-pinned", "header:x-session-id")


def test_a_worker_that_dies_loses_no_request(caplog: pytest.LogCaptureFixture) -> None:
    pool, worker = ready_readers()
    try:
        big = job_of(Dialect.ANTHROPIC, {}, {"messages": [{"role": "user", "content": "x" * 100}] * 200_000})
        readings = [submitted(pool, job) for job in [big, *(job_of(*request) for request in REQUESTS)]]
        os.kill(worker, signal.SIGKILL)  # busy with the big one (a second's parse): every job is in flight
        with caplog.at_level(logging.WARNING):
            facts = [pool.facts(reading, 30) for reading in readings]
        assert [as_data(f) for f in facts] == [as_data(in_process(r.job)) for r in readings]
        died = [r for r in caplog.records if "request reader process died" in r.getMessage()]
        assert died and len(died) <= len(readings)
        assert pool._pool is None  # replaced: the next request starts a new pool
        assert pool.submit(job_of(*REQUESTS[0])) is None  # read here while the new one starts
        assert pool._pool is not None
    finally:
        pool.close()


def test_no_worker_when_off_or_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not Readers(0).enabled
    assert Readers(0).submit(job_of(*REQUESTS[0])) is None
    monkeypatch.setattr("sys.frozen", True, raising=False)  # the standalone mitmproxy build
    frozen = Readers(2)
    assert not frozen.enabled
    frozen.start()
    assert frozen.submit(job_of(*REQUESTS[0])) is None


@pytest.mark.parametrize(("before", "after", "running", "calls"), [
    (1, 1, True, []),  # unchanged: the pool goes on
    (1, 2, True, ["close", "start"]),  # a pool's size is fixed when it starts
    (1, 2, False, ["close"]),  # started when the proxy runs
    (2, 0, True, ["close", "start"]),  # start does nothing when off
    (0, 3, False, ["close"]),
])
def test_a_new_size_closes_the_pool_and_starts_one_if_running(monkeypatch: pytest.MonkeyPatch, before: int,
                                                               after: int, running: bool, calls: list[str]) -> None:
    pool = Readers(before)
    made: list[str] = []
    monkeypatch.setattr(pool, "close", lambda: made.append("close"))
    monkeypatch.setattr(pool, "start", lambda: made.append("start"))
    pool.resize(after, running)
    assert (pool.processes, made) == (after, calls)


def test_a_resized_pool_reads_with_its_new_size() -> None:
    pool = Readers(0)
    pool.resize(1, running=True)
    try:
        deadline = time.monotonic() + 60
        while (reading := pool.submit(job_of(*REQUESTS[0]))) is None:
            assert time.monotonic() < deadline, "the reader process did not start"
            time.sleep(0.05)
        assert as_data(pool.facts(reading, 30)) == as_data(in_process(reading.job))
        pool.resize(0, running=True)
        assert not pool.enabled and pool.submit(job_of(*REQUESTS[0])) is None
    finally:
        pool.close()


class FakeFuture:
    def __init__(self, facts: RequestFacts) -> None:
        self.facts, self.ready = facts, False

    def done(self) -> bool:
        return self.ready

    def result(self, timeout: float | None = None) -> RequestFacts:
        return self.facts


def facts_named(name: str) -> RequestFacts:
    return RequestFacts(name, "header:x-session-id", None, None)


def test_turns_are_recorded_in_the_order_their_responses_ended() -> None:
    recorded: list[str] = []
    turns = Turns(Readers(0))
    slow = FakeFuture(facts_named("first"))

    def add(pending: object) -> None:
        turns.add("flow", pending, lambda f: recorded.append(f.session_id), lambda: facts_named("fallback"))  # type: ignore[arg-type]

    add(Reading(job_of(*REQUESTS[0]), slow, None, time.monotonic()))  # type: ignore[arg-type]
    add(facts_named("second"))
    add(lambda: facts_named("third"))
    turns.drain()
    assert recorded == [] and len(turns) == 3  # the first holds the ones after it
    slow.ready = True
    turns.drain()
    assert recorded == ["first", "second", "third"] and len(turns) == 0


def test_drain_waits_for_every_turn_when_asked() -> None:
    recorded: list[str] = []
    turns = Turns(Readers(0))
    turns.add("flow", Reading(job_of(*REQUESTS[0]), FakeFuture(facts_named("late")), None, time.monotonic()),  # type: ignore[arg-type]
              lambda f: recorded.append(f.session_id), lambda: facts_named("fallback"))
    turns.drain(wait=True)
    assert recorded == ["late"]


def test_a_request_that_cannot_be_read_keeps_its_turn_and_holds_up_none(caplog: pytest.LogCaptureFixture) -> None:
    recorded: list[str] = []
    turns = Turns(Readers(0))

    def broken() -> RequestFacts:
        raise KeyError("a bug in the reading")

    for pending in (broken, facts_named("after")):
        turns.add("flow-9", pending, lambda f: recorded.append(f.session_id), lambda: facts_named("from-headers"))
    with caplog.at_level(logging.ERROR):
        turns.drain()
    assert recorded == ["from-headers", "after"]
    assert "flow flow-9: its request could not be read" in caplog.text


def test_a_job_cancelled_with_its_pool_is_read_here() -> None:
    """Closing a pool (cache_workers changed, or it broke) cancels the jobs it had not started."""
    future: Future[RequestFacts] = Future()
    future.cancel()
    job = job_of(*REQUESTS[0])
    assert as_data(Readers(1).facts(Reading(job, future, None, time.monotonic()))) == as_data(in_process(job))


def test_a_worker_that_cannot_start_is_not_tried_at_every_request(monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("no /dev/shm")

    monkeypatch.setattr("concurrent.futures.ProcessPoolExecutor", refuse)
    readers = Readers(1)
    with caplog.at_level(logging.WARNING):
        readers.start()
        assert [readers.submit(job_of(*REQUESTS[0])) for _ in range(3)] == [None] * 3
    assert not readers.enabled
    assert [r.getMessage() for r in caplog.records] == [
        "cachepin audit: cannot start a request reader process (no /dev/shm); reading in the proxy"]


def test_a_hung_reader_holds_the_turns_behind_it_only_so_long_and_the_proxy_still_exits(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr("cachepin.worker.STALLED", 0.5)
    # The resource tracker is this test process's, shared with the module's other pool: left alone here (the
    # e2e tests see a real proxy's end); stopping it would clean that pool's semaphores from under it.
    monkeypatch.setattr("cachepin.worker.resource_tracker", types.SimpleNamespace())
    readers, worker = ready_readers()
    hung = job_of(Dialect.ANTHROPIC, {}, anthropic_body(2), raw=json.dumps(anthropic_body(2)).encode(),
                  coding="gzip")._replace(decode=hangs_in_a_worker)
    turns, recorded = Turns(readers), []
    for job in (hung, job_of(*REQUESTS[3]), job_of(*REQUESTS[5])):
        reading = readers.submit(job)
        assert reading is not None
        turns.add(job.flow_id, reading, recorded.append, lambda: facts_named("fallback"))
    time.sleep(0.6)
    with caplog.at_level(logging.WARNING):
        turns.drain()  # not waiting: the stalled head is read here, and the pool holding it is closed
    assert [as_data(f) for f in recorded] == [as_data(in_process(job)) for job in
                                               (hung, job_of(*REQUESTS[3]), job_of(*REQUESTS[5]))]
    assert "did not answer in 1 s; read in the proxy instead" in caplog.text
    started = time.monotonic()
    readers.shutdown(timeout=1.0)  # the hung worker is terminated, not waited for
    assert time.monotonic() - started < 5
    assert not os.path.exists(f"/proc/{worker}") or "Z" in open(f"/proc/{worker}/stat").read().rsplit(")", 1)[1][:3]
