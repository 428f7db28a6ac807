"""scripts/verify: prove in CI that a proxy/gateway path keeps LLM sessions warm.

A prompt cache that silently stops hitting costs money and latency without
failing anything, so CI needs a check that fails: this starts mitmdump with
cachepin's addons in front of a target (the gateway simulator, a gateway or a
provider), holds a few multi-turn conversations through it and exits with
mitmdump's status, which the audit addon sets to 3 when its expectations
(``cache_expect``, ``cache_min_hit``) fail. See docs/demo-verify.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cachepin.lifecycle import EXIT_EXPECTATIONS_FAILED  # the status the audit addon makes mitmdump exit with
from cachepin_tools.harness.command import RunError, at_least, entry_point, fail
from cachepin_tools.harness.conversations import DEFAULT_MODELS, PROVIDERS, SYSTEM_TOKENS, conversations
from cachepin_tools.harness.passes import run_pass
from cachepin_tools.harness.present import failure_lines, reason_lines, session_table
from cachepin_tools.harness.target import SIMULATOR_AUDIT_OPTIONS, Target, start_simulator

NO_KEY = "cachepin-verify-no-key"  # sent when no --api-key-env is given: the simulator ignores keys

_DESCRIPTION = f"""\
Prove that a proxy/gateway path keeps LLM prompt caches warm, for CI.

Starts mitmdump (127.0.0.1, a free port) in reverse mode in front of --target with both cachepin addons
(addons/inject.py adds session-affinity headers, addons/cache_audit.py audits every response), holds
--conversations conversations of --turns turns through it with the official SDK (streaming), stops
mitmdump, prints a table of the sessions (verdict of each turn, hit ratio, cost) with the reasons of
failing sessions, and exits with mitmdump's status: 0 when every expectation holds, 3 when not.

Without --target the gateway simulator (scripts/gateway-sim: 3 upstream accounts with a cache each,
routed by session header, else round-robin) is started and stopped for you, and the audit is told its
minimum cacheable length. Each conversation has its own system prompt of ~{SYSTEM_TOKENS} estimated tokens
with a cache_control breakpoint (Anthropic also gets automatic top-level cache_control): above every
model's minimum (1024 tokens for Sonnet, 4096 for Opus 4.5/4.6 and Haiku 4.5), and unique to the run,
so caches of an earlier run cannot make this one pass."""

_EPILOG = """\
exit status:
  0  every session met the expectations
  1  the check could not run (a process did not start, the target is unreachable or answered an error,
     or the audit saw fewer turns than were sent)
  2  bad arguments (e.g. --api-key-env naming an unset variable)
  3  cache expectations failed (mitmdump's exit status, set by the audit addon)

examples:
  scripts/verify                                        # against the simulator: passes
  scripts/verify --no-inject                            # the same without affinity: fails with 3
  scripts/verify --target https://api.anthropic.com --api-key-env ANTHROPIC_API_KEY --junit cache.xml
  scripts/verify --target https://api.openai.com --provider openai --api-key-env OPENAI_API_KEY
  scripts/verify --target https://llm-gateway.example.com/anthropic --api-key-env GATEWAY_KEY

The API key is read only from the variable named by --api-key-env and only handed to the SDK client: it
is never printed, logged or written to a file."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/verify", description=_DESCRIPTION, epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--target", metavar="URL",
        help="the provider or gateway, as mitmdump's --mode reverse:URL takes it (https://api.anthropic.com, "
             "https://api.openai.com), optionally with the path a gateway puts before the provider's API paths "
             "(https://gw.example.com/anthropic); the SDK adds its own (/v1/messages, /v1/chat/completions). "
             "Default: the gateway simulator on 127.0.0.1")
    add("--api-key-env", metavar="NAME",
        help="environment variable holding the API key (e.g. ANTHROPIC_API_KEY); without it a placeholder "
             "key is sent, which only the simulator or a keyless gateway accepts")
    add("--provider", choices=PROVIDERS, default="anthropic",
        help="anthropic: Messages API (/v1/messages, streamed); openai: Chat Completions "
             "(/v1/chat/completions, streamed with include_usage; the inject addon also adds "
             "prompt_cache_key, by which OpenAI routes its cache). Default: %(default)s")
    add("--model", metavar="M",
        help=f"model id (default: {DEFAULT_MODELS['anthropic']} for anthropic, {DEFAULT_MODELS['openai']} for openai)")
    add("--conversations", type=at_least(1), default=3, metavar="N",
        help="conversations, held one after the other (default: %(default)s)")
    add("--turns", type=at_least(2), default=4, metavar="N",
        help="turns per conversation, at least 2 since the first one only writes (default: %(default)s)")
    add("--expect", choices=("warm", "off"), default="warm",
        help="warm: every successful turn that does not open its thread (its first successful turn, on a "
             "request that does not continue a conversation) must be a cache hit; off: judge --min-hit only "
             "(default: %(default)s)")
    add("--min-hit", type=_percent, default=80, metavar="PCT",
        help="each session's judged hit ratio (token-weighted, over its successful turns that do not open "
             "their thread) must reach PCT (0 turns it off; default: %(default)s)")
    add("--report", type=Path, default=Path("cachepin-report.json"), metavar="PATH",
        help="where the audit writes its JSON report (default: %(default)s in the current directory)")
    add("--junit", type=Path, metavar="PATH", help="also write JUnit XML, one test case per session")
    add("--no-inject", action="store_true",
        help="leave the inject addon out (no session-affinity headers): shows that the check can fail")
    add("--verbose", action="store_true", help="print mitmdump's log (the audit's line per turn) afterwards")
    return parser


def _percent(text: str) -> int:
    value = at_least(0)(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"must be 0-100, not {value}")
    return value


def _output_path(parser: argparse.ArgumentParser, option: str, path: Path) -> Path:
    """Checked now, because mitmdump would only fail on it at startup, less clearly."""
    path = path.resolve()
    if path.is_dir():
        parser.error(f"{option} {path}: is a directory")
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        parser.error(f"{option} {path}: folder {path.parent} does not exist or is not writable")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    target = None
    if args.target is not None:
        try:
            target = Target.parse(args.target)
        except ValueError as error:
            parser.error(f"--target: {error}")
    api_key = NO_KEY
    if args.api_key_env is not None:
        api_key = os.environ.get(args.api_key_env, "")
        if not api_key:
            parser.error(f"--api-key-env {args.api_key_env}: the environment variable {args.api_key_env} "
                         "is not set or empty")
    if args.expect == "off" and args.min_hit == 0:
        parser.error("--expect off with --min-hit 0 checks nothing; set --expect warm or a --min-hit above 0")
    report = _output_path(parser, "--report", args.report)
    junit = _output_path(parser, "--junit", args.junit) if args.junit else None
    model = args.model or DEFAULT_MODELS[args.provider]
    plan = conversations([(f"conversation {n}", args.provider, model) for n in range(1, args.conversations + 1)],
                         args.turns)
    options: dict[str, object] = {"cache_expect": args.expect, "cache_min_hit": args.min_hit}
    if junit is not None:
        junit.unlink(missing_ok=True)
        options["cache_junit"] = str(junit)
    if args.provider == "openai" and not args.no_inject:
        options["affinity_prompt_cache_key"] = True

    addons = "audit only" if args.no_inject else "inject + audit"
    print(f"cachepin verify: {args.conversations} {args.provider} conversation(s) × {args.turns} turns, "
          f"model {model}, streaming")
    print(f"  expect {args.expect}, min-hit {args.min_hit}%; mitmdump ({addons}) -> "
          f"{args.target or 'the gateway simulator'}", flush=True)
    with contextlib.ExitStack() as stack:
        confdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cachepin-verify-")))
        try:
            if target is None:
                target = Target(stack.enter_context(start_simulator(event_delay=0.0)).url)
                options |= SIMULATOR_AUDIT_OPTIONS
                retries = 0  # the simulator fails only when told to
            else:
                target.check_reachable()
                retries = 2  # a real provider may answer 529/429 now and then; the SDK retries those
            result = run_pass(target, plan, inject=not args.no_inject, report=report, confdir=confdir,
                              api_key=api_key, options=options, retries=retries)
        except RunError as error:
            fail(str(error))
    if args.verbose:
        print(result.proxy_output)
    print()
    print("\n".join(session_table(result.report)))
    expected = args.conversations * args.turns
    if result.exit_status not in (0, EXIT_EXPECTATIONS_FAILED):
        print(result.proxy_output[-4000:], file=sys.stderr)
        fail(f"mitmdump exited with status {result.exit_status}")
    if result.report.requests < expected:
        fail(f"the audit recorded {result.report.requests} successful turns of the {expected} sent "
             "(does the target speak the provider's API paths?)")
    files = f"report {report}" + (f", JUnit {junit}" if junit else "")
    if result.exit_status == EXIT_EXPECTATIONS_FAILED:
        print("\nfailing sessions:")
        print("\n".join(f"  {line}" for line in failure_lines(result.report)))
        reasons = reason_lines(result.report)
        if reasons:
            print("why (the audit's miss reasons, with the first one's detail):")
            print("\n".join(f"  {line}" for line in reasons))
        print(f"\nverify: FAIL: the cache did not stay warm ({files})")
        return EXIT_EXPECTATIONS_FAILED
    print(f"\nverify: PASS ({files})")
    return 0


if __name__ == "__main__":
    entry_point(main)
