"""Drive conversations through mitmdump with cachepin's addons, and read what the audit made of them.

``scripts/demo.py`` and ``scripts/verify.py`` do the same thing at heart: put
mitmdump (with or without the inject addon) in front of an upstream, hold a
few multi-turn conversations through it with the official SDKs, stop it so the
audit writes its report, and print that report. This module is that heart, so
the two commands cannot drift apart in how they talk to a provider or how they
read a report.

Conversations are built to be cacheable on every real model too: a system
prompt of about ``SYSTEM_TOKENS`` estimated tokens (above the 4096-token
minimum of the strictest models) with a ``cache_control`` breakpoint, plus
Anthropic's automatic (top-level) ``cache_control`` so each turn's whole
prefix is cached for the next one. OpenAI-style providers cache automatically.
Each run puts a random nonce into the system prompts, so caches left by an
earlier run can never make a run look warm.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import signal
import socket
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import anthropic
import openai

from cachepin.ledger import short_id
from cachepin.tokens import estimate_tokens
from processes import Mitmdump, Simulator

PROVIDERS = ("anthropic", "openai")
DEFAULT_MODELS = {"anthropic": "claude-sonnet-4-6", "openai": "gpt-5.1"}
SDK_PATHS = {"anthropic": "", "openai": "/v1"}  # what each SDK's base URL adds to the provider's origin
_CLIENTS = {
    "anthropic": (anthropic.Anthropic, anthropic.DefaultHttpxClient),
    "openai": (openai.OpenAI, openai.DefaultHttpxClient),
}
SYSTEM_TOKENS = 4300  # estimated; real tokenizers count more, so this clears even a 4096-token minimum
SIM_MIN_TOKENS = 64  # the simulator's minimum cacheable prompt; the audit is told the same (cache_minimums)
MAX_OUTPUT_TOKENS = 200
REQUEST_TIMEOUT = 120.0  # seconds per request; a CI job should fail, not hang
EPHEMERAL = {"type": "ephemeral"}
EXIT_RUN_FAILED = 1  # the check could not run: no process, no connection, an API error

_REFERENCE = (
    "Answers are read by an automated check, so keep each one to a single plain sentence.",
    "This reference text is long on purpose: it is the cacheable prefix of every request in the check.",
    "Nothing in this reference needs to be quoted, summarised or mentioned in an answer.",
    "If a question is ambiguous, pick the simplest reading and answer it briefly.",
    "Write numbers as digits and spell out units.",
    "Do not use lists, headings, code blocks or emphasis in answers.",
    "Prefer common knowledge, and never ask a follow-up question.",
)
QUESTIONS = (
    "Name one prime number between 10 and 20.",
    "How many days does a leap year have?",
    "Name a planet that has rings.",
    "At what temperature in Celsius does water boil at sea level?",
    "Name a language spoken in Brazil.",
    "How many sides does a hexagon have?",
    "Name a metal that is liquid at room temperature.",
)


class RunError(Exception):
    """The check could not run (a process did not start, the target failed); the message says why."""


@dataclass(frozen=True, slots=True)
class Conversation:
    """One scripted conversation: which API and model, how many turns, and its own system prompt."""

    label: str
    provider: str
    model: str
    turns: int
    system: str


def conversations(specs: Sequence[tuple[str, str, str]], turns: int) -> list[Conversation]:
    """Conversations for ``(label, provider, model)`` specs, with system prompts unique to this run."""
    nonce = secrets.token_hex(4)
    return [Conversation(label, provider, model, turns, system_prompt(label, nonce))
            for label, provider, model in specs]


def system_prompt(label: str, nonce: str) -> str:
    """A harmless instruction plus reference lines up to ``SYSTEM_TOKENS``; label and nonce come first,
    so no two conversations (or runs) share a cacheable prefix."""
    lines = [
        f"You are the assistant in a cachepin prompt-cache check ({label}, run {nonce}). "
        "Answer every question in one short sentence.",
        "",
    ]
    number = 0
    while estimate_tokens("\n".join(lines)) < SYSTEM_TOKENS:
        lines.append(f"Reference line {number + 1}: {_REFERENCE[number % len(_REFERENCE)]}")
        number += 1
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Target:
    """Where mitmdump forwards to (``origin``, for ``--mode reverse:``) and the path a gateway puts
    before the provider's API paths (``prefix``, e.g. ``/anthropic``; reverse mode takes no path)."""

    origin: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> Target:
        """Raises ValueError with a message fit for the user."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL, not {url!r}")
        if parts.username or parts.password:
            raise ValueError("the URL must not hold credentials (they would be printed); use --api-key-env")
        if parts.query or parts.fragment:
            raise ValueError(f"the URL must not have a query or fragment: {url!r}")
        try:
            parts.port  # noqa: B018 - raises for a port out of range
        except ValueError as error:
            raise ValueError(f"bad port in {url!r}: {error}") from None
        return cls(f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/"))

    def check_reachable(self, timeout: float = 10.0) -> None:
        """Fail early with a clear message instead of a 502 from mitmdump after everything started."""
        parts = urlsplit(self.origin)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            socket.create_connection((parts.hostname, port), timeout=timeout).close()
        except OSError as error:
            raise RunError(f"cannot reach the target {self.origin} ({parts.hostname}:{port}): {error}") from None


def start_simulator(event_delay: float) -> Simulator:
    """The gateway simulator on 127.0.0.1 with its defaults (3 accounts, round-robin without affinity)."""
    try:
        return Simulator("--min-tokens", str(SIM_MIN_TOKENS), "--event-delay", str(event_delay))
    except RuntimeError as error:
        raise RunError(str(error)) from None


SIMULATOR_AUDIT_OPTIONS = {"cache_minimums": f"*={SIM_MIN_TOKENS}"}
"""Audit options for a simulated upstream: its minimum, so the explainer does not call misses below_minimum."""


# --- the report -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TurnResult:
    verdict: str
    read: int | None  # cache_read_input_tokens
    prompt: int  # input + creation + read: what a hit ratio divides by
    reason: str | None  # the explainer's reason for a miss or partial hit
    detail: str | None


@dataclass(frozen=True, slots=True)
class SessionResult:
    session_id: str
    source: str
    turns: tuple[TurnResult, ...]
    hit_ratio: float | None
    cost: Mapping[str, float] | None
    failures: tuple[str, ...]

    @property
    def later(self) -> list[TurnResult]:
        """Successful turns after the first: the ones that should hit."""
        ok = [turn for turn in self.turns if turn.verdict != "error"]
        return ok[1:]

    @property
    def later_ratio(self) -> float | None:
        """The token-weighted hit ratio of the later turns: what ``cache_min_hit`` judges."""
        judged = [turn for turn in self.later if turn.read is not None]
        prompt = sum(turn.prompt for turn in judged)
        return sum(turn.read or 0 for turn in judged) / prompt if prompt else None


@dataclass(frozen=True, slots=True)
class Report:
    """The parts of the audit's JSON report (``cachepin/reports.py``, version 1) the commands print."""

    ok: bool
    requests: int
    hit_ratio: float | None
    cost: Mapping[str, float] | None
    sessions: tuple[SessionResult, ...]

    @classmethod
    def load(cls, path: Path) -> Report:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise RunError(f"cannot read the audit's report {path}: {error}") from None
        sessions = tuple(
            SessionResult(
                session["session_id"], session["source"],
                tuple(_turn(turn) for turn in session["turns"]),
                session["hit_ratio"], session["cost"], tuple(session["failures"]),
            )
            for session in data["sessions"]
        )
        totals = data["totals"]
        return cls(data["ok"], totals["requests"], totals["hit_ratio"], totals["cost"], sessions)

    @property
    def later_hits(self) -> tuple[int, int]:
        """(hits, turns) over every session's turns after its first."""
        later = [turn for session in self.sessions for turn in session.later]
        return sum(turn.verdict == "hit" for turn in later), len(later)

    @property
    def reasons(self) -> Counter[str]:
        return Counter(turn.reason for session in self.sessions for turn in session.turns if turn.reason)

    def example(self, reason: str) -> str:
        """The detail of the first turn explained by ``reason``."""
        return next(t.detail or "" for s in self.sessions for t in s.turns if t.reason == reason)


_PROMPT_FIELDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


def _turn(turn: Mapping[str, object]) -> TurnResult:
    miss = (turn.get("notes") or {}).get("miss") or {}
    read = turn["cache_read_input_tokens"]
    prompt = sum(turn[field] or 0 for field in _PROMPT_FIELDS)
    return TurnResult(str(turn["verdict"]), read, prompt, miss.get("reason"), miss.get("detail"))


# --- one pass through mitmdump --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pass:
    exit_status: int  # mitmdump's: 3 when the audit's expectations failed
    report: Report
    replies: list[list[str]]  # per conversation, the text of each answer
    proxy_output: str


def run_pass(target: Target, plan: Sequence[Conversation], *, inject: bool, report: Path, confdir: Path,
             api_key: str, options: Mapping[str, object] | None = None, retries: int = 0) -> Pass:
    """Start mitmdump in front of ``target``, hold the conversations, stop it, read its report.

    The SDK clients are closed before mitmdump stops (else mitmproxy logs a
    shutdown traceback for their open connections); mitmdump is stopped on
    every path out, exceptions and Ctrl-C included.
    """
    scripts = ("inject.py", "cache_audit.py") if inject else ("cache_audit.py",)
    report.unlink(missing_ok=True)  # a stale report must never pass for this run's
    try:
        proxy = Mitmdump(target.origin, scripts, options={**(options or {}), "cache_report": str(report)},
                         confdir=str(confdir))
    except RuntimeError as error:
        raise RunError(str(error)) from None
    try:
        replies = drive(proxy.url + target.prefix, plan, api_key, retries=retries)
    finally:
        status = proxy.stop()
    return Pass(status, Report.load(report), replies, proxy.output)


def drive(base_url: str, plan: Sequence[Conversation], api_key: str, *, retries: int = 0) -> list[list[str]]:
    """Hold each conversation in turn (one after the other, so the order of sessions in the report is
    the order of ``plan``); every turn streams, and prints its number when done, as progress.
    Returns the answers; raises RunError on an API error."""
    with contextlib.ExitStack() as clients:
        made: dict[str, anthropic.Anthropic | openai.OpenAI] = {}

        def client(provider: str) -> anthropic.Anthropic | openai.OpenAI:
            """One client per provider, made on first use. trust_env=False: the client talks to our own
            mitmdump on 127.0.0.1, so an HTTP_PROXY from the environment is never the way there."""
            if provider not in made:
                factory, http_client = _CLIENTS[provider]
                made[provider] = clients.enter_context(factory(
                    base_url=base_url + SDK_PATHS[provider], api_key=api_key, max_retries=retries,
                    timeout=REQUEST_TIMEOUT, http_client=http_client(trust_env=False),
                ))
            return made[provider]

        replies = []
        for conversation in plan:
            _progress(f"  {conversation.label} ({conversation.model}): turn")
            try:
                with _explained(conversation, api_key):
                    replies.append(_hold(client(conversation.provider), conversation))
            finally:
                _progress("\n")
        return replies


def _progress(text: str) -> None:
    """Print progress; also where a SIGTERM that some library code swallowed is honoured after all."""
    if _terminated:
        raise SystemExit(128 + _terminated[0])
    print(text, end="", flush=True)


def _hold(client: anthropic.Anthropic | openai.OpenAI, conversation: Conversation) -> list[str]:
    messages: list[dict[str, str]] = []
    answers = []
    for turn in range(conversation.turns):
        messages.append({"role": "user", "content": QUESTIONS[turn % len(QUESTIONS)]})
        if isinstance(client, anthropic.Anthropic):
            answer = _anthropic_turn(client, conversation, messages)
        else:
            answer = _chat_turn(client, conversation, messages)
        messages.append({"role": "assistant", "content": answer or "(no answer)"})
        answers.append(answer)
        _progress(f" {turn + 1}")
    return answers


def _anthropic_turn(client: anthropic.Anthropic, conversation: Conversation, messages: list[dict[str, str]]) -> str:
    """A streamed Messages call: a breakpoint on the system prompt, and automatic caching of the whole
    prefix (top-level cache_control), so the next turn can read everything this one sent."""
    system = [{"type": "text", "text": conversation.system, "cache_control": EPHEMERAL}]
    with client.messages.stream(model=conversation.model, max_tokens=MAX_OUTPUT_TOKENS, system=system,
                                messages=messages, cache_control=EPHEMERAL) as stream:
        return stream.get_final_text()


def _chat_turn(client: openai.OpenAI, conversation: Conversation, messages: list[dict[str, str]]) -> str:
    """A streamed Chat Completions call; usage only arrives in a stream when asked for (include_usage)."""
    chunks = client.chat.completions.create(
        model=conversation.model, messages=[{"role": "system", "content": conversation.system}, *messages],
        max_completion_tokens=MAX_OUTPUT_TOKENS, stream=True, stream_options={"include_usage": True},
    )
    with chunks:
        return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)


@contextlib.contextmanager
def _explained(conversation: Conversation, api_key: str) -> Iterator[None]:
    """SDK errors as one clear line; the key is never in it (OpenAI echoes part of a rejected key)."""
    try:
        yield
    except (anthropic.APIStatusError, openai.APIStatusError) as error:
        where = f"{conversation.label}: the target answered HTTP {error.status_code}"
        if error.status_code in (401, 403):
            raise RunError(f"{where}: the credentials were rejected (pass --api-key-env NAME)") from None
        raise RunError(f"{where}: {_redacted(error.message, api_key)}") from None
    except (anthropic.APIError, openai.APIError) as error:
        raise RunError(f"{conversation.label}: {_redacted(str(error), api_key)}") from None


def _redacted(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


# --- presentation ---------------------------------------------------------------------------------


def percent(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio * 100:.1f}%"


def usd(amount: float) -> str:
    return f"-${-amount:.4f}" if amount < 0 else f"${amount:.4f}"


def reason_lines(report: Report) -> list[str]:
    """Each miss reason with its count and the explainer's detail of its first occurrence."""
    return [f"{reason} ×{count}: {report.example(reason)}" for reason, count in report.reasons.most_common()]


def session_table(report: Report) -> list[str]:
    """One row per session (verdicts turn by turn, hit ratio, cost, ok/FAIL) and a totals row."""
    header = ("session", "source", "verdicts", "hit ratio", "after turn 1", "billed", "saving", "status")
    rows = [
        (short_id(s.session_id), s.source, " ".join(t.verdict for t in s.turns), percent(s.hit_ratio),
         percent(s.later_ratio), *_money(s.cost), "FAIL" if s.failures else "ok")
        for s in report.sessions
    ]
    hits, later = report.later_hits
    total = ("TOTAL", "", f"{hits}/{later} later turns hit", percent(report.hit_ratio), "", *_money(report.cost),
             "ok" if report.ok else "FAIL")
    widths = [max(len(row[i]) for row in (header, *rows, total)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return [line(header), rule, *map(line, rows), rule, line(total)]


def _money(cost: Mapping[str, float] | None) -> tuple[str, str]:
    """(billed, saving), or dashes for turns of a model without a known price."""
    return (usd(cost["billed"]), usd(cost["saving"])) if cost else ("-", "-")


def failure_lines(report: Report) -> list[str]:
    """For each failing session: its explained misses, then the audit's failure messages."""
    lines = []
    for session in report.sessions:
        if not session.failures:
            continue
        misses = [f"turn {n} {t.verdict} ({t.reason})" for n, t in enumerate(session.turns, 1) if t.reason]
        lines.append(f"{short_id(session.session_id)}: {', '.join(misses) or 'no miss explained'}")
        lines += [f"  {message}" for message in session.failures]
    return lines


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


def fail(message: str) -> NoReturn:
    """The check could not run: say why on stderr, exit with status 1."""
    print(f"scripts/{Path(sys.argv[0]).stem}: {message}", file=sys.stderr)
    raise SystemExit(EXIT_RUN_FAILED)


_terminated: list[int] = []  # the signal that asked this command to stop, once one did


def entry_point(main: Callable[[], int]) -> NoReturn:
    """Run a command's ``main`` so that every child process is stopped however it ends.

    SIGTERM (a cancelled CI job) becomes SystemExit and Ctrl-C a short message
    instead of a traceback; both unwind the ``with`` blocks that stop processes.
    """
    def terminate(signum: int, frame: object) -> NoReturn:
        signal.signal(signum, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
        _terminated.append(signum)  # if a finalizer swallows this SystemExit, the next turn raises it again
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        status = main()
    except KeyboardInterrupt:
        print(f"scripts/{Path(sys.argv[0]).stem}: interrupted; every process it started is stopped",
              file=sys.stderr)
        status = 130
    sys.exit(128 + _terminated[0] if _terminated else status)
