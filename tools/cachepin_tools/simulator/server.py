"""A fake LLM gateway fronting several upstream accounts, each with its own prompt cache.

cachepin's addons claim two things: that session-affinity headers keep a
conversation on one account (so the provider's prompt cache, which lives on one
account, keeps hitting), and that the cache usage they report is right. Neither
can be checked against a real gateway offline, so this simulator plays one: it
speaks the Anthropic Messages and OpenAI Chat Completions / Responses APIs
(JSON and SSE, as the official SDKs expect), routes by session key like the
gateways do, and reports usage that is exactly what its simulated caches did.
``--log`` records that truth per request so tests can compare a proxy's report
with it.

The cache rules live in ``cache.py`` (pure, clock injectable), the routing in
``routing.py`` and the prompt's blocks and tokens in ``prompt.py``; this file
is the HTTP layer, the wire formats and the CLI.
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import contextlib
import functools
import itertools
import json
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, TextIO

from aiohttp import web

from cachepin_tools.simulator.cache import CacheControlError, CachePlan, CacheRules, CacheUsage, Clock, PromptCache
from cachepin_tools.simulator.diagnostics import Diagnostics
from cachepin_tools.simulator.prompt import Api, estimate_tokens
from cachepin_tools.simulator.routing import Route, Router, session_header
from cachepin_tools.wire import anthropic, framing, openai
from cachepin_tools.wire.framing import Event, FlushedGzip
from cachepin_tools.wire.tokens import Tokens

MAX_BODY_BYTES = 64 * 1024 * 1024  # aiohttp's 1 MiB default is too small for long agent conversations
SHUTDOWN_GRACE = 2.0  # seconds in-flight streams get to finish on SIGTERM
READY_LINE = "gateway_sim listening on {url}"

Json = dict[str, object]


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything that shapes a simulator run; the CLI flags map one to one onto it."""

    accounts: int = 3
    min_tokens: int = 64
    model_min_tokens: Mapping[str, int] = field(default_factory=dict)
    ttl_scale: float = 1.0
    event_delay: float = 0.0
    gzip_sse: bool = False
    fail_rate: float = 0.0
    seed: int | None = None
    log: Path | None = None

    def __post_init__(self) -> None:
        """Reject values that would make the simulation meaningless, before any socket opens."""
        if self.accounts < 1:
            raise ValueError("accounts must be at least 1")
        if self.min_tokens < 0 or any(n < 0 for n in self.model_min_tokens.values()):
            raise ValueError("minimum token counts must not be negative")
        if self.ttl_scale <= 0:
            raise ValueError("ttl_scale must be positive")
        if self.event_delay < 0:
            raise ValueError("event_delay must not be negative")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")

    @property
    def rules(self) -> CacheRules:
        return CacheRules(self.min_tokens, self.model_min_tokens, self.ttl_scale)


@dataclass(frozen=True, slots=True)
class _Problem:
    """An error answer, before it is dressed in the provider's error JSON."""

    status: int
    kind: str
    message: str
    param: str | None = None
    code: str | None = None


@dataclass(frozen=True, slots=True)
class _Turn:
    """One simulated completion: everything the wire formats need to render it."""

    id: str
    model: str
    created: int
    text: str
    usage: CacheUsage
    body: Json
    diagnosis: Json = field(default_factory=dict)  # members the message or response gets (diagnostics.py)

    @property
    def output_tokens(self) -> int:
        return estimate_tokens(self.text)

    @property
    def deltas(self) -> list[str]:
        """The text in word-sized pieces, one per streamed delta."""
        return re.findall(r"\S+\s*", self.text)

    def normalised(self) -> Json:
        """The usage in cachepin's normalised (Anthropic, additive) form: the log's ground truth."""
        return {**asdict(self.usage), "output_tokens": self.output_tokens}


class _Wire(abc.ABC):
    """How one API validates a request, fails on purpose, and renders a turn (through the wire kit)."""

    id_prefix: ClassVar[str]
    required: ClassVar[tuple[tuple[str, type | tuple[type, ...]], ...]]
    fault: ClassVar[_Problem]
    missing_text: ClassVar[str]
    wrong_type_text: ClassVar[str]

    def invalid(self, message: str, param: str | None = None, code: str | None = None) -> _Problem:
        return _Problem(400, "invalid_request_error", message, param, code)

    def problem_with(self, body: Json) -> _Problem | None:
        """The first missing or mistyped required field, worded as the provider words it."""
        for name, kind in self.required:
            if name not in body:
                return self.invalid(self.missing_text.format(name=name), name, "missing_required_parameter")
            if not isinstance(body[name], kind):
                return self.invalid(self.wrong_type_text.format(name=name), name, "invalid_type")
        return None

    @abc.abstractmethod
    def error_body(self, problem: _Problem) -> Json: ...

    @abc.abstractmethod
    def usage(self, turn: _Turn) -> Json: ...

    @abc.abstractmethod
    def message(self, turn: _Turn) -> Json:
        """The non-streaming answer."""

    @abc.abstractmethod
    def events(self, turn: _Turn) -> list[Event]:
        """The SSE events of a streamed answer; the last one completes the response."""

    def streamed_usage(self, turn: _Turn) -> Json | None:
        """The usage a streaming client ends up with (None when the stream carries none)."""
        return self.usage(turn)


def _tokens(turn: _Turn) -> Tokens:
    u = turn.usage
    return Tokens(u.input_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens, turn.output_tokens,
                  u.cache_creation_5m, u.cache_creation_1h)


class _AnthropicWire(_Wire):
    id_prefix = "msg_sim"
    required = (("model", str), ("max_tokens", int), ("messages", list))
    fault = _Problem(529, "overloaded_error", "Overloaded")
    missing_text = "{name}: Field required"
    wrong_type_text = "{name}: Input has the wrong type"

    def error_body(self, problem: _Problem) -> Json:
        return anthropic.error(problem.kind, problem.message)

    def usage(self, turn: _Turn) -> Json:
        return anthropic.usage(_tokens(turn), service_tier="standard")

    def message(self, turn: _Turn) -> Json:
        return anthropic.message(self.usage(turn), turn.text, turn.model, turn.id) | turn.diagnosis

    def events(self, turn: _Turn) -> list[Event]:
        """A stream's diagnosis is on its ``message_start``."""
        events = anthropic.events(self.usage(turn), turn.deltas, turn.model, turn.id)
        return _with_members(events, "message_start", "message", turn.diagnosis)


class _OpenAIWire(_Wire):
    fault = _Problem(429, "requests", "Rate limit reached (gateway_sim --fail-rate)", code="rate_limit_exceeded")
    missing_text = "Missing required parameter: '{name}'."
    wrong_type_text = "Invalid type for '{name}'."

    def error_body(self, problem: _Problem) -> Json:
        return openai.error(problem.message, problem.kind, problem.param, problem.code)


class _ChatWire(_OpenAIWire):
    id_prefix = "chatcmpl-sim"
    required = (("model", str), ("messages", list))

    def usage(self, turn: _Turn) -> Json:
        return openai.chat_usage(_tokens(turn))

    def message(self, turn: _Turn) -> Json:
        return openai.completion(self.usage(turn), turn.text, turn.model, turn.id, turn.created)

    def events(self, turn: _Turn) -> list[Event]:
        return openai.chat_events(self.streamed_usage(turn), turn.deltas, turn.model, turn.id, turn.created)

    def streamed_usage(self, turn: _Turn) -> Json | None:
        """Chat streams carry usage only when the client asked, as the real API does."""
        options = turn.body.get("stream_options")
        asked = isinstance(options, dict) and options.get("include_usage") is True
        return self.usage(turn) if asked else None


class _ResponsesWire(_OpenAIWire):
    id_prefix = "resp_sim"
    required = (("model", str), ("input", (str, list)))

    def usage(self, turn: _Turn) -> Json:
        return openai.responses_usage(_tokens(turn))

    def message(self, turn: _Turn) -> Json:
        return openai.response(self.usage(turn), turn.text, turn.model, turn.id, turn.created) | turn.diagnosis

    def events(self, turn: _Turn) -> list[Event]:
        """A stream's diagnosis is on the response of its ``response.completed``."""
        events = openai.responses_events(self.usage(turn), turn.deltas, turn.model, turn.id, turn.created)
        return _with_members(events, "response.completed", "response", turn.diagnosis)


def _with_members(events: list[Event], name: str, holder: str, members: Json) -> list[Event]:
    """``events`` with ``members`` added to the ``holder`` object of the event called ``name``."""
    if not members:
        return events
    return [(event, {**data, holder: {**data[holder], **members}})  # type: ignore[dict-item]
            if event == name and isinstance(data, dict) else (event, data) for event, data in events]


_WIRES: dict[Api, _Wire] = {
    Api.ANTHROPIC: _AnthropicWire(),
    Api.OPENAI_CHAT: _ChatWire(),
    Api.OPENAI_RESPONSES: _ResponsesWire(),
}
COMPLETION_PATHS = {
    "/v1/messages": Api.ANTHROPIC,
    "/v1/chat/completions": Api.OPENAI_CHAT,
    "/v1/responses": Api.OPENAI_RESPONSES,
}

_MODEL_IDS = ("claude-sonnet-4-6", "gpt-5.1")
_MODELS: Json = {  # both SDKs' list shapes at once, so either client can page through it
    "object": "list",
    "data": [
        {"id": m, "object": "model", "type": "model", "display_name": m, "owned_by": "gateway_sim", "created": 0,
         "created_at": "1970-01-01T00:00:00Z"}
        for m in _MODEL_IDS
    ],
    "has_more": False,
    "first_id": _MODEL_IDS[0],
    "last_id": _MODEL_IDS[-1],
}


@dataclass(slots=True)
class _Exchange:
    """What the request log says about one request, filled in as handling gets further."""

    request: web.Request
    api: Api | None = None
    body: Json = field(default_factory=dict)
    route: Route | None = None

    def record(self, status: int, turn: _Turn | None = None, usage: Json | None = None, completed: bool = True) -> Json:
        """One log line: where the request went and the usage the client received (``usage``) next to
        the cache's truth in normalised form (``cache``)."""
        seen = session_header(self.request.headers)
        return {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "method": self.request.method,
            "path": self.request.path,
            "account": self.route.account if self.route else None,
            "session": seen[1] if seen else None,
            "route": self.route.via if self.route else None,
            "dialect": self.api.value if self.api else None,
            "model": self.body.get("model"),
            "stream": self.body.get("stream") is True,
            "status": status,
            "completed": completed,
            "usage": usage,
            "cache": turn.normalised() if turn else None,
        }


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (``gzip`` or ``*``, without ``q=0``)."""
    for item in accept_encoding.split(","):
        coding, *params = (part.strip().lower() for part in item.split(";"))
        if coding in ("gzip", "*") and not any(re.fullmatch(r"q=0(\.0*)?", p) for p in params):
            return True
    return False


class _Gateway:
    """The state of one simulator app: router, per-account caches, fault dice, ids and the request log."""

    def __init__(self, config: SimConfig, clock: Clock) -> None:
        self._config = config
        self._router = Router(config.accounts, config.seed)
        self._cache = PromptCache(config.accounts, config.rules, clock)
        self._diagnostics = Diagnostics(config.accounts)
        self._dice = random.Random(f"faults:{config.seed}") if config.seed is not None else random.Random()
        self._ids = itertools.count(1)
        self._log: TextIO | None = None

    async def open_log(self, _app: web.Application) -> None:
        """Append, so a simulator restarted mid-test keeps one log."""
        if self._config.log is not None:
            self._log = self._config.log.open("a", encoding="utf-8")

    async def close_log(self, _app: web.Application) -> None:
        if self._log is not None:
            self._log.close()

    async def models(self, request: web.Request) -> web.Response:
        """An out-of-scope endpoint, so proxies can be checked to leave such requests alone."""
        self._write_log(_Exchange(request).record(200))
        return web.json_response(_MODELS)

    async def complete(self, api: Api, request: web.Request) -> web.StreamResponse:
        """One LLM call to ``api``: validate, route, maybe fail, consult the account's cache, answer."""
        wire, exchange = _WIRES[api], _Exchange(request, api)
        parsed = _parse(wire, await request.read())
        if isinstance(parsed, _Problem):
            return self._reject(wire, exchange, parsed)
        exchange.body = body = parsed
        exchange.route = route = self._router.route(request.headers, body)
        if self._config.fail_rate and self._dice.random() < self._config.fail_rate:
            return self._reject(wire, exchange, wire.fault)
        try:
            plan = self._cache.plan(route.account, api, body)
        except CacheControlError as error:
            return self._reject(wire, exchange, wire.invalid(str(error)))
        diagnosis = self._diagnostics.answer(route.account, api, body, request.headers,
                                             plan.usage.cache_read_input_tokens)
        turn = self._turn(wire, body, plan, diagnosis)
        if body.get("stream") is True:
            return await self._stream(request, wire, exchange, turn, plan)
        self._finish(plan, exchange, turn, wire.usage(turn))
        return web.json_response(wire.message(turn))

    async def _stream(
        self, request: web.Request, wire: _Wire, exchange: _Exchange, turn: _Turn, plan: CachePlan
    ) -> web.StreamResponse:
        """Send the events; commit the cache just before the event that completes the response."""
        gzip = self._config.gzip_sse and accepts_gzip(request.headers.get("Accept-Encoding", ""))
        headers = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
        if gzip:
            headers |= {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        encoder, frames, finished = FlushedGzip(gzip), framing.frames(wire.events(turn)), False
        try:
            for index, frame in enumerate(frames):
                if index:
                    await asyncio.sleep(self._config.event_delay)
                if index == len(frames) - 1:
                    self._finish(plan, exchange, turn, wire.streamed_usage(turn))
                    finished = True
                await response.write(encoder.encode(frame))
            await response.write_eof(encoder.close())
        except ConnectionResetError:  # the client left: an unfinished response writes nothing
            if not finished:
                self._write_log(exchange.record(200, completed=False))
        return response

    def _turn(self, wire: _Wire, body: Json, plan: CachePlan, diagnosis: Json) -> _Turn:
        """The reply states the cache outcome, so a human watching a client sees it too."""
        u = plan.usage
        text = (
            f"gateway_sim account {plan.account}: read {u.cache_read_input_tokens}, "
            f"wrote {u.cache_creation_input_tokens}, uncached {u.input_tokens} input tokens."
        )
        turn_id = f"{wire.id_prefix}{next(self._ids):016x}"
        return _Turn(turn_id, str(body["model"]), int(time.time()), text, u, body, diagnosis)

    def _reject(self, wire: _Wire, exchange: _Exchange, problem: _Problem) -> web.Response:
        self._write_log(exchange.record(problem.status))
        return web.json_response(wire.error_body(problem), status=problem.status)

    def _finish(self, plan: CachePlan, exchange: _Exchange, turn: _Turn, usage: Json | None) -> None:
        """The response completes: its cache entries become readable, and its request's fingerprint comparable."""
        self._cache.commit(plan)
        assert exchange.api is not None
        self._diagnostics.remember(plan.account, exchange.api, turn.body, exchange.request.headers, turn.id)
        self._write_log(exchange.record(200, turn, usage))

    def _write_log(self, record: Json) -> None:
        if self._log is not None:
            self._log.write(json.dumps(record) + "\n")
            self._log.flush()


def _parse(wire: _Wire, raw: bytes) -> Json | _Problem:
    """The request body as a JSON object, or the 400 the provider would answer."""
    try:
        body = json.loads(raw)
    except ValueError as error:
        return wire.invalid(f"The request body is not valid JSON: {error}")
    if not isinstance(body, dict):
        return wire.invalid("The request body must be a JSON object.")
    return wire.problem_with(body) or body


def build_app(config: SimConfig, clock: Clock = time.monotonic) -> web.Application:
    """The simulator as an aiohttp application; ``clock`` drives cache TTLs (inject one in tests)."""
    gateway = _Gateway(config, clock)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.on_startup.append(gateway.open_log)
    app.on_cleanup.append(gateway.close_log)
    app.add_routes([web.post(path, functools.partial(gateway.complete, api)) for path, api in COMPLETION_PATHS.items()])
    app.add_routes([web.get("/v1/models", gateway.models)])
    return app


async def serve(app: web.Application, host: str, port: int, ready: Callable[[str], None], stop: asyncio.Event) -> None:
    """Serve ``app`` until ``stop`` is set; ``ready`` gets the base URL once connections are accepted."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        address = runner.addresses[0]
        ready(f"http://{f'[{address[0]}]' if ':' in address[0] else address[0]}:{address[1]}")
        await stop.wait()
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def serve_in_thread(
    config: SimConfig, host: str = "127.0.0.1", port: int = 0, clock: Clock = time.monotonic
) -> Iterator[str]:
    """Run the simulator on its own event loop in a thread and yield its base URL.

    For synchronous callers such as tests driving the blocking SDK clients,
    which would stall a server sharing their thread.
    """
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    url: Future[str] = Future()

    def run() -> None:
        try:
            loop.run_until_complete(serve(build_app(config, clock), host, port, url.set_result, stop))
        except Exception as error:
            if url.done():
                raise
            url.set_exception(error)
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="gateway_sim", daemon=True)
    thread.start()
    base_url = url.result()
    try:
        yield base_url
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join()


def _model_minimum(text: str) -> tuple[str, int]:
    model, sep, number = text.rpartition("=")
    if not sep or not model or not number.isdigit():
        raise argparse.ArgumentTypeError(f"expected MODEL=TOKENS, e.g. claude-opus-4-6=4096, got {text!r}")
    return model, int(number)


_EPILOG = """\
routing:
  X-Session-Id, else x-session-affinity, else body prompt_cache_key picks the
  account by sha256 (stable across runs); other requests go round-robin, or at
  random when --seed is given.
tokens:
  estimated, one per started group of 4 characters of each prompt block:
  Anthropic tools, system blocks, message content blocks; OpenAI tools,
  instructions, message contents (parts) and their other fields, input items.
  A text block counts its text, anything else its compact JSON.
Anthropic caching (/v1/messages):
  cache_control breakpoints (at most 4, more is a 400) or a top-level
  cache_control on the last block; no cache_control, no caching. A hit reads the
  longest cached prefix and writes the rest up to the last breakpoint. TTL 5 min,
  or 1 h with "ttl": "1h", refreshed on a hit.
OpenAI caching (/v1/chat/completions, /v1/responses):
  automatic from the minimum; cached_tokens in 128-token steps, included in
  prompt_tokens; nothing reported as written.
Entries are per account and readable once the writing response has completed.
cache diagnostics (the providers' own miss reasons, per account):
  Anthropic: a request with "diagnostics": {"previous_message_id": ...} is
  compared with the request of that response id and answered in "diagnostics"
  (on message_start when streamed); OpenAI Responses: prompt_cache_options.
  comparison_response_id, answered in prompt_cache_diagnostics (GPT-5.6+).
--log lines (JSON): time, method, path, account, session, route, dialect, model,
  stream, status, completed, usage (as sent to the client) and cache (the truth,
  normalised: input, read, creation with its 5m/1h split, output tokens).
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/gateway-sim",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Fake LLM gateway for testing cachepin. Serves the Anthropic Messages and OpenAI Chat Completions and\n"
            "Responses APIs (JSON and SSE) plus GET /v1/models, in front of N simulated upstream accounts that each\n"
            "keep their own prompt cache; reported usage is exactly what the simulated cache did. Prints one line\n"
            "'gateway_sim listening on http://HOST:PORT' once it accepts connections; stops on SIGTERM or SIGINT."
        ),
        epilog=_EPILOG,
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    add("--port", type=int, default=0, help="port to bind; 0 picks a free one (default: %(default)s)")
    add("--accounts", type=int, default=3, metavar="N", help="upstream accounts, each with its own cache (default: 3)")
    add(
        "--min-tokens",
        type=int,
        default=64,
        metavar="N",
        help="minimum cacheable prompt in estimated tokens (default: 64; real APIs use 1024-4096)",
    )
    add(
        "--model-min-tokens",
        type=_model_minimum,
        action="append",
        default=[],
        metavar="MODEL=N",
        help="per-model minimum; MODEL is a model id prefix, the longest match wins (repeatable)",
    )
    add("--ttl-scale", type=float, default=1.0, metavar="X", help="multiply every cache TTL by X (0.01: 5 min -> 3 s)")
    add("--event-delay", type=float, default=0.0, metavar="SECONDS", help="pause between SSE events (default: 0)")
    add("--gzip-sse", action="store_true", help="gzip SSE responses when the client's Accept-Encoding allows it")
    add(
        "--fail-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="fraction 0..1 of LLM calls answered 529 overloaded_error (Anthropic) or 429 (OpenAI)",
    )
    add("--seed", type=int, help="seed for --fail-rate and for random routing of requests without a session key")
    add("--log", type=Path, metavar="FILE", help="append one JSON line per request to FILE")
    return parser


async def _serve_until_signalled(config: SimConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await serve(build_app(config), host, port, lambda url: print(READY_LINE.format(url=url), flush=True), stop)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = SimConfig(
            accounts=args.accounts,
            min_tokens=args.min_tokens,
            model_min_tokens=dict(args.model_min_tokens),
            ttl_scale=args.ttl_scale,
            event_delay=args.event_delay,
            gzip_sse=args.gzip_sse,
            fail_rate=args.fail_rate,
            seed=args.seed,
            log=args.log,
        )
    except ValueError as error:
        parser.error(str(error))
    try:
        asyncio.run(_serve_until_signalled(config, args.host, args.port))
    except OSError as error:
        print(f"gateway_sim: {error}", file=sys.stderr)
        return 1
    return 0
