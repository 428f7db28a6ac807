"""The addons' options: their declarations, and parsers of their values.

Each parser takes what the user typed and returns it checked, or raises
``ValueError`` with a message that names what is accepted; the addons turn it
into mitmproxy's ``OptionsError``. Declared here, as data, so that an
addon's ``load`` and ``configure`` are one loop each.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any, NamedTuple

from cachepin.request.session import is_valid_id
from cachepin.turns.models import DEFAULT_PRICES, PriceTable
from cachepin.turns.price_files import load_prices
from cachepin.views.metrics import listen_address

_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PROTECTED_HEADERS = frozenset({
    "authorization", "x-api-key", "api-key", "x-goog-api-key", "proxy-authorization", "cookie", "host",
    "content-length", "content-type", "content-encoding", "transfer-encoding", "connection", "keep-alive", "te",
    "trailer", "upgrade", "expect", "accept-encoding", "anthropic-version", "anthropic-beta",
    "openai-organization", "openai-project",
})  # setting one of these to a session id would break the request or overwrite its credentials
_PROTECTED_PREFIXES = ("x-amz-",)  # AWS signs these (Bedrock)


def session_headers(names: Sequence[str]) -> list[str]:
    """``affinity_headers``: at least one valid header name, none that carries credentials or framing."""
    names = list(names)
    if not names:
        raise ValueError("affinity_headers must name at least one header")
    for name in names:
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"affinity_headers: {name!r} is not a valid header name")
        if name.lower() in _PROTECTED_HEADERS or name.lower().startswith(_PROTECTED_PREFIXES):
            raise ValueError(f"affinity_headers: {name!r} carries credentials or framing; choose a session header")
    return names


def ttl_scale(text: str) -> float:
    """``cache_ttl_scale``: a number > 0."""
    try:
        scale = float(text)
    except ValueError:
        scale = -1.0
    if not scale > 0:
        raise ValueError(f"cache_ttl_scale must be a number > 0, not {text!r}")
    return scale


def minimums(entries: Sequence[str]) -> dict[str, int]:
    """``cache_minimums``: ``MODEL=TOKENS`` entries."""
    parsed = {}
    for entry in entries:
        model, _, tokens = entry.partition("=")
        if not model or not tokens.isdigit():
            raise ValueError(f"cache_minimums: expected MODEL=TOKENS, not {entry!r}")
        parsed[model.strip()] = int(tokens)
    return parsed


def writable_file(option: str, path: str, *, replaced: bool = False) -> str:
    """An output file option: a file (not a folder) in a folder that exists and is writable, checked now
    rather than at shutdown.

    A file that is ``replaced`` whole (a report: a temp file renamed over it)
    must be a regular file, if it exists: a rename over ``/dev/null`` would
    replace the device. A file appended to (the events) may be a pipe or a
    device, but must be writable itself.
    """
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise ValueError(f"{option}: {path!r} is a folder; name a file in it")
    if replaced and os.path.exists(path) and not os.path.isfile(path):
        raise ValueError(f"{option}: {path!r} is not a regular file, and the report replaces it whole; name a file")
    if not replaced and os.path.exists(path) and not os.access(path, os.W_OK):
        raise ValueError(f"{option}: cannot append to {path!r}: the file is read-only")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise ValueError(f"{option}: cannot write {path!r}: folder {folder!r} missing or read-only")
    return path


def price_table(path: str) -> PriceTable:
    """``cache_prices``: the built-in prices, with those of the JSON file at ``path`` (cachepin's format, or
    LiteLLM's price database) over them."""
    try:
        return load_prices(path) if path else DEFAULT_PRICES
    except ValueError as e:
        raise ValueError(f"cache_prices: {e}") from None


def fixed_session(value: str) -> str:
    """``affinity_session``: empty, or an id a gateway can take in a header."""
    if value and not is_valid_id(value):
        raise ValueError("affinity_session must be 1-256 printable ASCII characters without spaces")
    return value


MIN_SALT = 16


def salt(value: str) -> str:
    """``affinity_salt``: empty (the proxy's own, kept in the confdir) or a secret of at least 16 characters."""
    if value and len(value) < MIN_SALT:
        raise ValueError(f"affinity_salt must be at least {MIN_SALT} characters (a secret the replicas share, "
                         f"e.g. from `openssl rand -hex 32`), not {len(value)}")
    return value


def expectation(value: str) -> str:
    """``cache_expect``: ``off`` or ``warm``."""
    if value not in ("off", "warm"):
        raise ValueError(f"cache_expect must be 'off' or 'warm', not {value!r}")
    return value


def percent(value: int) -> int:
    """``cache_min_hit``: 0-100."""
    if not 0 <= value <= 100:
        raise ValueError(f"cache_min_hit must be 0-100, not {value}")
    return value


def session_limit(value: int) -> int:
    """``cache_max_sessions``: 0 (unlimited) or more."""
    if value < 0:
        raise ValueError("cache_max_sessions must be >= 0 (0 = unlimited)")
    return value


def turn_limit(value: int) -> int:
    """``cache_max_turns``: 0 (unlimited) or more."""
    if value < 0:
        raise ValueError("cache_max_turns must be >= 0 (0 = unlimited)")
    return value


def interval(value: int) -> int:
    """``cache_report_interval``: 0 (only at shutdown and on cache.report) or seconds."""
    if value < 0:
        raise ValueError("cache_report_interval must be >= 0 seconds (0 = only at shutdown and on cache.report)")
    return value


MAX_WORKERS = 16


def workers(value: int) -> int:
    """``cache_workers``: 0 (read requests on the event loop) or a few processes."""
    if not 0 <= value <= MAX_WORKERS:
        raise ValueError(f"cache_workers must be 0-{MAX_WORKERS} (0 = read requests in the proxy's own process)")
    return value


def _output(option: str, *, replaced: bool) -> Callable[[str], str]:
    return lambda path: writable_file(option, path, replaced=replaced) if path else path


class Option(NamedTuple):
    """One option as ``Loader.add_option`` takes it, with the parser ``configure`` checks it with."""

    name: str
    typespec: type | object
    default: Any
    help: str
    check: Callable[[Any], object] | None = None
    choices: Sequence[str] | None = None
    accepts: str = ""  # what a value that is not even of the option's type is told it should be
    numeric: bool = False  # a number held as text (mitmproxy has no float option): config.yaml may give it unquoted


DEFAULT_HEADERS = ("X-Session-Id", "x-session-affinity")
DEFAULT_EXCLUDE = r"~d opencode\.ai"

SALT = Option("affinity_salt", str, "",
              "Key of the session ids and thread names derived from prompt text (fingerprints, lineages), so "
              "that they tell nothing of the prompt. Empty: a random key made once and kept in the confdir (file "
              "cachepin-salt), so ids survive restarts. Replicas that must agree on ids set the same secret.", salt)
"""Declared by both addons (mitmproxy accepts an option declared twice alike): each derives ids on its own."""

STREAM = Option("affinity_stream_requests", bool, True,
                "Stream an LLM request's body upstream as it arrives when its headers name the session and no "
                "edit needs the body first (prompt_cache_key, cache_diagnostics), keeping a copy: the flow holds "
                "the body as if buffered. Headers and body leave before any request hook, so never while one of "
                "mitmproxy's own addons acts there (intercept, modify_body, map_local, map_remote, server_replay, "
                "block_list, stickyauth, stickycookie, anticache, anticomp, body_size_limit). Turn off for a "
                "script of yours that edits requests in its request hook.")
"""Declared by both addons: whichever streams a request keeps its copy."""

INJECT = (
    Option("affinity_scope", str, "",
           "Filter expression selecting the flows to pin. Empty: POSTs to known LLM API paths "
           "(/v1/messages, /chat/completions, /responses, Gemini :generateContent, Bedrock) on any host."),
    Option("affinity_exclude", str, DEFAULT_EXCLUDE,
           "Filter expression of flows never to touch, even when in scope (default: opencode's own gateway)."),
    Option("affinity_session", str, "",
           "A fixed session id for every flow (e.g. a CI run id). Empty: derive one per conversation.",
           fixed_session),
    Option("affinity_headers", Sequence[str], list(DEFAULT_HEADERS), "Request headers set to the session id.",
           session_headers),
    Option("affinity_override", bool, False,
           "Replace session headers the client already sent instead of keeping them."),
    Option("affinity_prompt_cache_key", bool, False,
           "Add prompt_cache_key (the session id) to OpenAI-style JSON bodies that lack it."),
    SALT,
    STREAM,
)
"""The inject addon's options (``affinity_scope`` and ``affinity_exclude`` are mitmproxy filters, which the
addon parses itself)."""

AUDIT = (
    Option("cache_expect", str, "off",
           "'warm': every successful turn that does not open its thread must be a cache hit (a turn opens its "
           "thread when it is the thread's first successful turn, on a request that does not continue a "
           "conversation); 'off': no per-turn check.", expectation, ["off", "warm"]),
    Option("cache_min_hit", int, 0,
           "Percent 0-100: each session's judged hit ratio (read / (input + creation + read), token-weighted, over "
           "its successful turns that do not open their thread) must reach it, judged at report time.", percent,
           accepts="a whole number 0-100"),
    Option("cache_events", str, "", "Append one JSON line per completed turn to this file.",
           _output("cache_events", replaced=False)),
    Option("cache_resume", bool, False,
           "On start, read the cache_events file back into the ledger: the reports cover the turns of earlier "
           "runs too (judged again with this run's expectations), and turn numbers continue."),
    Option("cache_report_interval", int, 0,
           "Also rewrite the report files every this many seconds (0: only at shutdown and on cache.report).",
           interval, accepts="a whole number of seconds >= 0"),
    Option("cache_report", str, "", "Write the JSON report here at shutdown and on cache.report.",
           _output("cache_report", replaced=True)),
    Option("cache_junit", str, "", "Write JUnit XML (one test case per session) here at shutdown and on cache.report.",
           _output("cache_junit", replaced=True)),
    Option("cache_html", str, "", "Write the HTML report (one self-contained file) here at shutdown and on "
           "cache.report.",
           _output("cache_html", replaced=True)),
    Option("cache_max_sessions", int, 10_000,
           "Sessions held in memory (0 = unlimited); older ones still count in totals.", session_limit,
           accepts="a whole number >= 0 (0 = unlimited)"),
    Option("cache_max_turns", int, 2000,
           "Turns each session holds in memory (0 = unlimited); older ones still count in its sums and verdicts "
           "(and are in cache_events), but the reports list only the held ones.", turn_limit,
           accepts="a whole number >= 0 (0 = unlimited)"),
    Option("cache_metrics", str, "",
           "Serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9464; docs/metrics.md); needs "
           "prometheus_client (pip install 'cachepin[metrics]'). Empty: off.", listen_address),
    Option("cache_prices", str, "",
           "JSON file of model prices (USD per million tokens) merged over the built-in table: cachepin's "
           "format, or a copy of LiteLLM's model_prices_and_context_window.json.", price_table),
    Option("cache_ttl_scale", str, "1",
           "Multiply cache TTLs by this factor when explaining misses (for simulators that shrink time).", ttl_scale,
           accepts="a number > 0", numeric=True),
    Option("cache_explain", bool, True,
           "Explain misses and partial hits. Costs a parse and a prefix snapshot of every request body; turn off "
           "for the most throughput (then a request whose session id is in a header is never parsed by the "
           "audit, and turns are grouped by the model the response names)."),
    Option("cache_workers", int, 1,
           "Processes that read request bodies for the audit (parse, prefix snapshot, lineage) off mitmproxy's "
           "event loop, on other cores; 0: read them in the proxy's own process (as the standalone mitmproxy "
           "build always does).", workers, accepts=f"a whole number 0-{MAX_WORKERS}"),
    Option("cache_diagnostics", bool, False,
           "Ask the provider why each later turn of a thread missed: add the documented field naming the thread's "
           "previous response (Anthropic diagnostics.previous_message_id on the Claude API, OpenAI Responses "
           "prompt_cache_options.comparison_response_id on GPT-5.6+) to request bodies without one; reads each "
           "request body before it goes upstream. Responses that carry the provider's diagnosis are read either way."),
    Option("cache_minimums", Sequence[str], [],
           "Minimum cacheable prefix per model as MODEL=TOKENS (MODEL may end in *), overriding the built-in "
           "table when explaining misses.", minimums),
    SALT,
    STREAM,
)
"""The audit addon's options."""


def deferred_problems(
    declared: Sequence[Option], deferred: MutableMapping[str, object],
    checks: Mapping[str, Callable[[Any], object]] = {},
) -> dict[str, str]:
    """What is wrong with the values given for ``declared`` before the addon was loaded.

    mitmproxy keeps ``--set`` values (``deferred[name].val``, the strings as
    typed) and config-file values of options no addon has declared yet, and
    applies them once the script declares its options. A value it cannot
    apply then (``cache_min_hit=abc``, a second ``--set cache_report=``) makes
    it roll the script back without a word, and mitmdump runs on with no
    audit: so the addon checks them first, the way mitmproxy will convert
    them, and its own parsers after that (or those in ``checks``, for parsers
    that need mitmproxy). Returns a message per bad option. A config-file
    number for a ``numeric`` option is put back in ``deferred`` as its text,
    the value mitmproxy can apply.
    """
    problems = {}
    for option in declared:
        if option.name not in deferred:
            continue
        given = deferred[option.name]
        typed = getattr(given, "val", None)  # mitmproxy's _UnconvertedStrings: what --set said
        try:
            if isinstance(typed, list):
                value = _converted(option, typed)
            else:
                value = deferred[option.name] = _typed(option, given)
            check = checks.get(option.name, option.check)
            if check is not None:
                check(value)
        except ValueError as e:
            problems[option.name] = str(e)
    return problems


def _converted(option: Option, strings: list[str]) -> object:
    """A ``--set`` value as mitmproxy's ``_parse_setval`` will convert it, or the error it would hit."""
    if option.typespec == Sequence[str]:
        return strings
    if option.typespec is bool and not strings:
        return True  # "--set cache_explain" alone means true
    if len(strings) != 1:
        given = ", ".join(f"{option.name}={text}" for text in strings) or option.name
        raise ValueError(f"{option.name} is given {len(strings)} times ({given}); give it once")
    text = strings[0]
    if option.typespec is bool:
        if text not in ("true", "false", "", "toggle"):
            raise ValueError(f"{option.name} must be true or false, not {text!r}")
        return not option.default if text == "toggle" else text != "false"
    if option.typespec is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{option.name} must be {option.accepts or 'a whole number'}, not {text!r}") from None
    return text


def _typed(option: Option, value: object) -> object:
    """A config-file value, which mitmproxy only type-checks; a number for a ``numeric`` option, as its text."""
    expected = {int: "a whole number", bool: "true or false", str: "a string"}.get(option.typespec)  # type: ignore
    expected = option.accepts or expected
    if expected is None:  # Sequence[str]
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        raise ValueError(f"{option.name} must be a list of strings, not {value!r}")
    if option.numeric and type(value) in (int, float):  # YAML's 2 or 0.5 (``type``: not true, a bool)
        return str(value)
    if type(value) is not option.typespec:
        raise ValueError(f"{option.name} must be {expected}, not {value!r}")
    return value


def check(declared: Sequence[Option], updated: set[str], value_of: Callable[[str], Any]) -> None:
    """Runs the parser of every updated option; the first bad value raises its ``ValueError``."""
    for option in declared:
        if option.name in updated and option.check is not None:
            option.check(value_of(option.name))


def resumable(resume: bool, events: str) -> None:
    """``cache_resume`` with ``cache_events``: the earlier turns are read back from the events file, so resuming
    without one is refused, whichever of the two options changed last."""
    if resume and not events:
        raise ValueError("cache_resume needs cache_events: the file to read the earlier turns from "
                         "(and to append this run's to)")
