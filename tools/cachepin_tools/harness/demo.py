"""scripts/demo: the whole cachepin story in one command, against the gateway simulator.

A gateway that spreads a conversation over several accounts loses the prompt
cache on most turns, and nothing tells the client. The demo shows it and the
fix side by side: the same conversations through mitmdump with the audit addon
only (round-robin over 3 accounts: later turns mostly miss, explained as
``routing``) and then with the inject addon too (each conversation pinned to
one account: every later turn hits). Each run gets a fresh simulator, so both
start with empty caches.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

from cachepin_tools.harness.command import RunError, at_least, entry_point, fail
from cachepin_tools.harness.conversations import DEFAULT_MODELS, SYSTEM_TOKENS, conversations
from cachepin_tools.harness.passes import Pass, run_pass
from cachepin_tools.harness.present import percent, reason_lines, usd
from cachepin_tools.harness.report import Report
from cachepin_tools.harness.target import SIMULATOR_AUDIT_OPTIONS, Target, start_simulator

RUNS = (("without affinity", "audit only", False), ("with affinity", "inject + audit", True))
_ACCOUNT = re.compile(r"gateway_sim account (\d+):")  # the simulator names the serving account in every answer
DEMO_KEY = "sk-cachepin-demo"  # the simulator takes any key

_DESCRIPTION = f"""\
Show what session affinity does for the prompt cache, in well under a minute, on 127.0.0.1 only.

Starts the gateway simulator (scripts/gateway-sim: 3 upstream accounts, each with its own prompt cache;
requests with X-Session-Id/x-session-affinity stick to one account, others go round-robin) and mitmdump in
reverse mode in front of it, and holds the same conversations twice: first through mitmdump with the audit
addon only, then with the inject addon as well. The conversations are --conversations Anthropic ones
(official anthropic SDK, streaming, {DEFAULT_MODELS['anthropic']}) and one OpenAI-style one (openai SDK, chat
completions streamed with include_usage, {DEFAULT_MODELS['openai']}), --turns turns each, each over its own
system prompt of ~{SYSTEM_TOKENS} estimated tokens with cache_control.

Then it prints both runs side by side: each conversation's verdict per turn (cold: first turn, wrote the
cache; hit: read from it; miss: read nothing) with the account that served it, the share of later turns
that hit, the token-weighted hit ratio, what the turns cost at list prices and what the cache saved, and
the audit's reasons for the misses. Every process it starts is stopped before it exits, also on Ctrl-C."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/demo", description=_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--conversations", type=at_least(1), default=3, metavar="N",
        help="Anthropic conversations; one OpenAI-style conversation is always added (default: %(default)s)")
    add("--turns", type=at_least(2), default=4, metavar="N", help="turns per conversation (default: %(default)s)")
    add("--event-delay", type=float, default=0.0, metavar="SECONDS",
        help="the simulator's pause between streamed events, to watch streams trickle (default: %(default)s)")
    add("--out", type=Path, metavar="DIR",
        help="keep both runs' JSON and HTML reports there (without-affinity.json, with-affinity.json, and the "
             ".html of each: open them in a browser); default: a temporary folder, removed at the end")
    add("--verbose", action="store_true",
        help="also print each mitmdump's log: the audit's line per turn (with reason=...) and its table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.event_delay < 0:
        parser.error("--event-delay must not be negative")
    if args.out is not None and not args.out.is_dir():
        parser.error(f"--out {args.out}: not a folder")
    specs = [(f"anthropic {n}", "anthropic", DEFAULT_MODELS["anthropic"]) for n in range(1, args.conversations + 1)]
    specs.append(("openai chat", "openai", DEFAULT_MODELS["openai"]))
    plan = conversations(specs, args.turns)
    started = time.monotonic()
    print(f"cachepin demo: {len(plan)} conversations × {args.turns} turns, held twice through mitmdump in front of\n"
          "a gateway simulator with 3 accounts, each with its own prompt cache", flush=True)
    passes: list[Pass] = []
    with tempfile.TemporaryDirectory(prefix="cachepin-demo-") as temp:
        for number, (name, addons, inject) in enumerate(RUNS, 1):
            print(f"\nrun {number}/{len(RUNS)}: {name} (mitmdump with {addons}), fresh simulator", flush=True)
            report = (args.out or Path(temp)) / _report_name(name)
            html = {"cache_html": str(report.with_suffix(".html"))} if args.out else {}
            options = {**SIMULATOR_AUDIT_OPTIONS, **html}
            try:
                with start_simulator(args.event_delay) as simulator:
                    passes.append(run_pass(Target(simulator.url), plan, inject=inject, report=report,
                                           confdir=Path(temp), api_key=DEMO_KEY, options=options))
            except RunError as error:
                fail(str(error))
            if args.verbose:
                print(passes[-1].proxy_output)
            if len(passes[-1].report.sessions) != len(plan):
                fail(f"the audit saw {len(passes[-1].report.sessions)} sessions for {len(plan)} conversations")
    print()
    print("\n".join(side_by_side([label for label, _, _ in specs], passes)))
    before, after = (p.report for p in passes)
    print(f"\nAffinity: later turns hit {_later(before)} -> {_later(after)}, hit ratio {percent(before.hit_ratio)} "
          f"-> {percent(after.hit_ratio)}, saved by the cache {_saving(before)} -> {_saving(after)}.")
    if args.out is not None:
        names = [args.out / _report_name(name) for name, _, _ in RUNS]
        print(f"Reports: {', '.join(f'{path} ({path.with_suffix('.html').name})' for path in names)}")
    print(f"Demo finished in {time.monotonic() - started:.1f} s; every process it started is stopped.")
    return 0


def side_by_side(labels: Sequence[str], passes: Sequence[Pass]) -> list[str]:
    """The runs as columns: one row per conversation (verdict@account per turn), then the totals."""
    header = ["", *(f"{name} ({addons})" for name, addons, _ in RUNS)]
    rows = [[label, *(_turns(p, index) for p in passes)] for index, label in enumerate(labels)]
    rows += [
        ["later turns hit", *(_later(p.report) for p in passes)],
        ["hit ratio (tokens)", *(percent(p.report.hit_ratio) for p in passes)],
        ["cost at list prices", *(_billed(p.report) for p in passes)],
        ["saved by the cache", *(_saving(p.report) for p in passes)],
        ["miss reasons", *(_reasons(p.report) for p in passes)],
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    table = ["   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in (header, *rows)]
    rule = "   ".join("-" * width for width in widths)
    table.insert(1, rule)
    table.insert(len(labels) + 2, rule)
    legend = ["verdict@account: cold = first turn, writes the cache; hit = read from it; miss = read nothing;",
              "@N = the simulator account that served the turn (each account has its own cache)"]
    explained = []
    for (name, _, _), result in zip(RUNS, passes, strict=True):
        lines = reason_lines(result.report)
        if lines:
            explained += ["", f"Why the misses {name}, as the audit explains them (first example of each reason):"]
            explained += [textwrap.fill(line, 100, initial_indent="  ", subsequent_indent="    ") for line in lines]
    return [*table, *legend, *explained]


def _turns(result: Pass, index: int) -> str:
    verdicts = [turn.verdict for turn in result.report.sessions[index].turns]
    accounts = [_account(reply) for reply in result.replies[index]]
    return " ".join(f"{verdict}@{account}" for verdict, account in zip(verdicts, accounts, strict=True))


def _account(reply: str) -> str:
    found = _ACCOUNT.match(reply)
    return found.group(1) if found else "?"


def _later(report: Report) -> str:
    hits, later = report.later_hits
    return f"{hits}/{later}"


def _billed(report: Report) -> str:
    return f"{usd(report.cost['billed'])} (without cache {usd(report.cost['uncached'])})" if report.cost else "n/a"


def _saving(report: Report) -> str:
    return usd(report.cost["saving"]) if report.cost else "n/a"


def _reasons(report: Report) -> str:
    return ", ".join(f"{reason} ×{count}" for reason, count in report.reasons.most_common()) or "none"


def _report_name(run: str) -> str:
    return run.replace(" ", "-") + ".json"


if __name__ == "__main__":
    entry_point(main)
