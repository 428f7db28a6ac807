"""From what a flow said to a turn of its session: the audit's policy, free of mitmproxy.

The audit addon only adapts hooks to these steps: ``read_request`` when the
request has gone upstream (what the request says: session, model, prefix
snapshot; ``reads_in_order`` says when it must wait for the turns before it),
``Audit.record`` when the response has ended or failed (the turn, its miss
reason, the failures it caused and its log line), ``Audit.append_event`` for
its event line, and ``Audit.write_reports`` at shutdown and on
``cache.report``. Keeping the policy here lets it be tested, and benchmarked,
without a proxy.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import NamedTuple

from cachepin import __version__
from cachepin.request.branches import Branches
from cachepin.request.chains import ResponseChains
from cachepin.request.diagnostics_edit import (
    Baselines,
    ThreadKey,
    asks_already,
    opts_in_only,
    supported,
    with_diagnostics,
)
from cachepin.request.dialects import Dialect
from cachepin.request.session import from_headers, resolve
from cachepin.request.snapshot import Snapshot
from cachepin.request.thread import Position, Thread, model_family, position_of, thread_of
from cachepin.response.diagnostics import NO_DIVERGENCE, OPTED_IN, diagnosis
from cachepin.response.extract import Extracted
from cachepin.turns.explain import Explainer
from cachepin.turns.ledger import Ledger
from cachepin.turns.models import DEFAULT_PRICES, PriceTable
from cachepin.turns.pricing import Cost, cost
from cachepin.turns.turn import Turn
from cachepin.views.events import Event, Run, event_line, replay
from cachepin.views.files import append_line, write_atomic
from cachepin.views.html import report_html
from cachepin.views.junit import junit_xml
from cachepin.views.log_line import turn_log_line
from cachepin.views.report import report_json

UNIDENTIFIED = "unidentified"
MAX_UNPRICED = 1024  # models warned about without a price; the log names each once


class RequestFacts(NamedTuple):
    """What the audit needs of a request: small, so that it can wait for the response (the body cannot)."""

    session_id: str
    source: str
    model: str | None
    snapshot: Snapshot | None  # None when the body is no JSON object, or nothing is explained
    thread: Thread | None = None  # None: the ledger keeps one thread per model
    position: Position | None = None  # None: the body was not read
    compare_as: ThreadKey | None = None  # the provider can compare the thread's next request with this one's response
    opted_in: bool = False  # it asked Anthropic with previous_message_id null: its answer compares nothing
    continues: str | None = None  # Responses: the previous_response_id it continues, whose thread it is in


class Recorded(NamedTuple):
    turn: Turn
    failures: list[str]  # expectations this turn failed, new ones only
    log_line: str
    cost: Cost | None  # priced once here for the outputs that show it (the ledger prices it for its totals)


def read_request(
    dialect: Dialect,
    *,
    flow_id: str,
    started_at: float,
    headers: Mapping[str, str],
    pinned: tuple[str, str] | None,
    body: Callable[[], dict | None],
    explain: bool,
    chains: ResponseChains | None = None,
    judged: bool = False,
    salt: bytes = b"",
) -> RequestFacts:
    """The session, model and prefix snapshot of one request.

    ``pinned`` is the session the inject addon resolved; ``body`` parses (or
    reuses a parse of) the request body, and is only called when needed.
    Without the explainer only the session is needed, and the model the
    response names keys the turns (always the same name, whether a body was
    parsed or not): a session id in a header spares the parse, unless a gate
    is ``judged``: then the thread and position the body shows are needed.
    """
    if not explain and not judged and (named := named_session(headers, pinned)) is not None:  # see parses_body
        return RequestFacts(*named, None, None, thread_of(headers, None, dialect, salt))
    parsed = body()
    if pinned is None:
        resolution = resolve(headers, parsed, dialect, chains, salt)
        # Unidentifiable flows stay apart: pooled, unrelated requests would look like one session missing.
        pinned = resolution.session_id or f"{UNIDENTIFIED}:{flow_id}", resolution.source
    thread, position = thread_of(headers, parsed, dialect, salt), position_of(parsed, dialect)
    continues = parsed.get("previous_response_id") if parsed and dialect is Dialect.OPENAI_RESPONSES else None
    continues = continues if isinstance(continues, str) else None
    if not explain:
        return RequestFacts(*pinned, None, None, thread, position, continues=continues)
    snapshot = Snapshot.from_request(dialect, parsed, started_at) if parsed else None
    return RequestFacts(*pinned, _request_model(parsed), snapshot, thread, position, continues=continues)


def named_session(headers: Mapping[str, str], pinned: tuple[str, str] | None) -> tuple[str, str] | None:
    """The session the inject addon pinned, else the one a header names (id, source); None: only the body can say."""
    if pinned is not None:
        return pinned
    header = from_headers(headers)
    return (header.session_id, header.source) if header.session_id is not None else None


def reads_in_order(dialect: Dialect, named: tuple[str, str] | None) -> bool:
    """Whether the request must be read after the turns recorded before it, not ahead of them (in a reader
    process, or on a timer while it goes upstream).

    An OpenAI Responses request whose session neither the inject addon
    nor a header names (``named_session``) is resolved through the response it
    continues (``previous_response_id``, ``Audit.chains``): that may be the
    response of a turn not recorded yet, whose id is learnt only when it is.
    """
    return dialect is Dialect.OPENAI_RESPONSES and named is None


def parses_body(named: tuple[str, str] | None, *, explain: bool, judged: bool) -> bool:
    """Whether ``read_request`` parses the body: for the explainer, for a gate, or to find the session (``named``:
    ``named_session``)."""
    return explain or judged or named is None


def header_facts(flow_id: str, headers: Mapping[str, str], pinned: tuple[str, str] | None) -> RequestFacts:
    """What a request's headers (or the inject addon) alone say: the facts of a turn whose body could not be read."""
    return RequestFacts(*(named_session(headers, pinned) or (f"{UNIDENTIFIED}:{flow_id}", "none")), None, None)


class Audit:
    """The audit's state, which a hot reload hands over whole: the ledger, the explainer, the prices."""

    def __init__(self, versions: Mapping[str, str] | None = None) -> None:
        self.run = Run(uuid.uuid4().hex, f"{socket.gethostname()}:{os.getpid()}")  # in the report and each event
        self.started_at = time.time()
        self.runs: dict[Run, int] = {self.run: 0}  # the turns of each run the ledger holds: this one, and those
        # read back from events (``resume``)
        self.resumed = False  # ``resume`` ran: a reload hands the ledger over, seeded already
        self.versions = {"cachepin": __version__, **(versions or {})}
        self.prices: PriceTable = DEFAULT_PRICES
        self.unpriced_models: set[str] = set()  # models warned about by ``unpriced``
        self.salt = b""  # keys the ids derived from prompt text (request/salt.py); the adapter sets the proxy's
        self.ledger = Ledger(pricer=self.price)
        self.explainer = Explainer()
        self.chains = ResponseChains()  # Responses ids of this run's turns, for previous_response_id
        self.branches = Branches()  # conversations of one fingerprinted session that start alike
        self.baselines = Baselines()  # each thread's latest response, for the provider to compare with (diagnostics)
        self.unwritten: set[str] = set()  # output options whose file lacks something: an event line that failed,
        # a report whose latest write failed; kept across a reset, since what is lost stays lost

    def reset(self, explainer: Explainer) -> None:
        """Forget every session, turn and response chain; the expectations and prices stay."""
        self.ledger.reset()
        self.explainer = explainer
        self.chains = ResponseChains()
        self.branches = Branches()
        self.baselines = Baselines()

    def price(self, turn: Turn) -> Cost | None:
        """What a turn cost; derived when needed, never stored per turn."""
        return cost(turn.usage(), self.prices) if turn.provider else None

    def record(
        self,
        request: RequestFacts,
        extracted: Extracted,
        *,
        flow_id: str,
        started_at: float,
        status: int,
        stream: bool,
        first_byte_at: float | None,
        ended_at: float | None,
    ) -> Recorded:
        """Adds one response to the ledger, explains it against the thread's previous request, and words it."""
        thread = self._thread(request)
        if (request.source == "fingerprint" and thread is not None and thread.source == "lineage"
                and request.snapshot is not None and request.continues is None):  # a chain knows its thread
            thread = self.branches.thread_for(request.session_id, thread, model_family(request.model),
                                              request.snapshot.digests)
        turn, failures = self.ledger.record(
            request.session_id, request.source, flow_id=flow_id, started_at=started_at, status=status, stream=stream,
            usage=extracted.usage, model=request.model,
            ttft_ms=(first_byte_at - started_at) * 1000 if first_byte_at else None,
            duration_ms=(ended_at - started_at) * 1000 if ended_at else None, error=extracted.error,
            thread=thread, position=request.position,
        )
        if turn.ok and request.snapshot is not None:
            key = f"{turn.thread}@{model_family(turn.requested_model or turn.model)}"  # a cache is per model
            turn.miss = self.explainer.observe(request.session_id, request.snapshot, extracted.usage, thread=key,
                                               continues=request.position is Position.CONTINUATION and not turn.opens)
        answer = extracted.diagnosis
        if request.opted_in and answer is not None and answer.reason == NO_DIVERGENCE:
            answer = diagnosis(OPTED_IN)  # null is also the answer to a comparison that found nothing: not here
        turn.provider_diagnosis = answer
        self.ledger.diagnoses.add(turn)
        if turn.ok:
            self.chains.learn(extracted.response_id, request.session_id, request.source, thread)
            if request.compare_as is not None:
                self.baselines.learn(request.compare_as, extracted.response_id)
        self.runs[self.run] += 1
        return Recorded(turn, failures, turn_log_line(request.session_id, turn), self.price(turn) if turn.ok else None)

    def _thread(self, request: RequestFacts) -> Thread | None:
        """The request's thread; for a Responses request that continues a response this proxy saw, that
        response's: its lineage would be of the new input only, another each turn."""
        if request.continues is not None and (request.thread is None or request.thread.source == "lineage"):
            known = self.chains.thread_of(request.continues)
            if isinstance(known, Thread):
                return known
        return request.thread

    def unpriced(self, turn: Turn, *, warned: bool = False) -> str | None:
        """A warning for the adapter to log on the first successful turn of a model the price table does not
        know, None on any other turn: one line per model, not per turn (at most ``MAX_UNPRICED`` models). A turn
        without a model name has nothing to name: it is counted in the totals only. A flow that ``warned``
        already (its figures) gets no second WARNING: the model is named at its next turn that warned of nothing."""
        model = turn.model
        if (warned or not turn.ok or not turn.provider or not model or model in self.unpriced_models
                or len(self.unpriced_models) >= MAX_UNPRICED or self.prices.get(model) is not None):
            return None
        self.unpriced_models.add(model)
        return (f"model {model!r} has no price: its turns are left out of the cost totals "
                f"(totals.cost_unpriced_turns counts them); give its prices in a cache_prices file")

    def ask_for_diagnostics(self, dialect: Dialect, path: str, request: RequestFacts, body: dict | None,
                            raw: bytes | None) -> tuple[RequestFacts, bytes | None]:
        """``cache_diagnostics``: the body that asks the provider to compare this request with the latest response
        of its thread (None: nothing to add, or ``raw`` is None: the body cannot be edited exactly), and the request
        facts that say whether its own response can be compared with (``compare_as``)."""
        thread = self._thread(request)
        if body is None or thread is None or not supported(dialect, path, body.get("model")):
            return request, None
        key = ThreadKey(request.session_id, thread.thread_id, model_family(body["model"]))
        baseline = self.baselines.baseline(key, continues=request.position is Position.CONTINUATION)
        edited = with_diagnostics(dialect, raw, body, baseline) if raw is not None else None
        # Anthropic keeps a fingerprint only of a request that asks; OpenAI one of every response.
        asked = edited is not None or asks_already(dialect, body) or dialect is Dialect.OPENAI_RESPONSES
        if not asked:
            return request, None
        return request._replace(compare_as=key, opted_in=opts_in_only(dialect, body, edited, baseline)), edited

    def event_line(self, request: RequestFacts, recorded: Recorded) -> str:
        turn = recorded.turn
        return event_line(request.session_id, request.source, turn, self.ledger.thread_state(request.session_id, turn),
                          self.run, time.time(), lambda _: recorded.cost)

    def append_event(self, path: str, request: RequestFacts, recorded: Recorded) -> OSError | None:
        """Appends the turn's event line to ``path`` (``cache_events``; empty: none); returns the error of a line
        that could not be written, for the adapter to log.

        That line is lost for good, so ``cache_events`` stays in ``unwritten``
        (the exit status says so) even if the next line is written.
        """
        if not path:
            return None
        try:
            append_line(path, self.event_line(request, recorded))
        except OSError as e:
            self.unwritten.add("cache_events")
            return e
        return None

    def resume(self, events: Iterable[Event]) -> int:
        """Seeds the ledger with the turns of events (``cache_resume``, ``scripts/report``), judged again as they
        come; returns how many there were.

        Their failures are the ledger's from then on, but not new: the run that
        recorded those turns logged them.
        """
        self.resumed = True
        read = replay(self.ledger, events)
        own = self.runs.pop(self.run, None)
        for run, turns in read.items():
            self.runs[run] = self.runs.get(run, 0) + turns
        if own is not None:  # listed after the runs before it
            self.runs[self.run] = own
        return sum(read.values())

    def write_reports(self, report: str, junit: str, html: str = "") -> dict[str, OSError]:
        """Writes the files that are named, each on its own (judge min_hit first: ``ledger.finalize``).

        A file that cannot be written does not keep the other from being
        written; returns the error of each option whose file failed, which
        stays in ``unwritten`` until that file is written again.
        """
        about = {"generated_at": _utc(time.time()), "started_at": _utc(self.started_at), "run_id": self.run.run_id,
                 "versions": self.versions,
                 "runs": [{"run_id": run.run_id, "instance": run.instance, "turns": turns}
                          for run, turns in self.runs.items() if turns or run == self.run]}
        outputs: dict[str, tuple[str, Callable[[], Iterator[str]]]] = {
            "cache_report": (report, lambda: report_json(self.ledger, about)),
            "cache_junit": (junit, lambda: junit_xml(self.ledger)),
            "cache_html": (html, lambda: report_html(self.ledger, about)),
        }
        errors = {}
        for option, (path, render) in outputs.items():
            if not path:
                continue
            try:
                write_atomic(path, render())
            except OSError as e:
                errors[option] = e
                self.unwritten.add(option)
            else:
                self.unwritten.discard(option)
        return errors


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _request_model(body: dict | None) -> str | None:
    """The model the request names; a client may send anything there, and only a string is a name."""
    model = body.get("model") if body else None
    return model if isinstance(model, str) else None
