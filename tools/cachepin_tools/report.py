"""``scripts/report``: the audit's report rebuilt from events files, one per replica or a crashed run's.

The turns are replayed into a ledger in the order they were recorded and
judged by the same rules as the addon (``cachepin.views.events``), so one
events file gives the report the addon wrote, and several files the report
of a fleet that shares its conversations. Exit status as mitmdump's with the
audit: 3 when expectations fail, 4 when an output cannot be written; and 2
for input it cannot read (the outputs are still written from the rest).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence

from cachepin import options
from cachepin.audit import Audit
from cachepin.lifecycle import EXIT_EXPECTATIONS_FAILED, EXIT_OUTPUT_FAILED
from cachepin.turns.verdicts import Expect
from cachepin.views.events import Event, merged
from cachepin.views.table import summary_table

EXIT_BAD_INPUT = 2  # the others are the addon's (cachepin.lifecycle)
PROGRESS_EVERY = 100_000  # turns between progress lines on stderr
FLAGS = {"cache_report": "--json", "cache_junit": "--junit", "cache_html": "--html"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/report",
        description="Rebuild the cachepin audit's report from cache_events files (one per replica, or the file of "
                    "a crashed run): the same JSON, JUnit and HTML the addon writes, judged by the same rules.",
        epilog="Exit status: 0 ok, 2 unreadable input (outputs still written), 3 expectations failed, "
               "4 an output could not be written.")
    parser.add_argument("events", nargs="+", metavar="EVENTS.jsonl", help="cache_events files, merged by time")
    parser.add_argument("--json", default="", metavar="FILE", help="write the JSON report here (as cache_report)")
    parser.add_argument("--junit", default="", metavar="FILE", help="write JUnit XML here (as cache_junit)")
    parser.add_argument("--html", default="", metavar="FILE", help="write the HTML report here (as cache_html)")
    parser.add_argument("--expect", choices=["off", "warm"], default="off", help="as cache_expect (default off)")
    parser.add_argument("--min-hit", type=int, default=0, metavar="N", help="as cache_min_hit, 0-100 (default 0)")
    parser.add_argument("--max-sessions", type=int, default=10_000, metavar="N",
                        help="sessions held, as cache_max_sessions (default %(default)s, the addon's; 0 = all): "
                             "give the proxy's, or a session evicted there and back is judged otherwise here")
    parser.add_argument("--max-turns", type=int, default=2000, metavar="N",
                        help="turns a session holds, as cache_max_turns (default %(default)s, the addon's; 0 = all): "
                             "older ones are in the sums only")
    parser.add_argument("--prices", default="", metavar="FILE",
                        help="price table, as cache_prices; give the proxy's, or costs use the built-in prices")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    audit = Audit()
    try:
        audit.prices = options.price_table(args.prices)
        audit.ledger.min_hit = options.percent(args.min_hit)
        audit.ledger.max_turns = options.turn_limit(args.max_turns)
        audit.ledger.max_sessions = options.session_limit(args.max_sessions)
        for name, path in (("--json", args.json), ("--junit", args.junit), ("--html", args.html)):
            if path:
                options.writable_file(name, path, replaced=True)
    except ValueError as e:
        print(f"cachepin report: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    audit.ledger.expect = Expect(args.expect)
    audit.runs.clear()  # a rebuild is no run: the report lists the runs whose turns it holds
    problems: list[str] = []
    first: list[float] = []
    try:
        turns = audit.resume(_with_progress(merged(args.events, problems), first))
    except OSError as e:
        print(f"cachepin report: cannot read {e.filename}: {e.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if first:
        audit.started_at = first[0]
    for problem in problems:
        print(f"cachepin report: skipped {problem}", file=sys.stderr)
    print(f"cachepin report: {turns} turns of {len(audit.runs)} runs from {len(args.events)} files", file=sys.stderr)
    audit.ledger.finalize()
    print(summary_table(audit.ledger))
    for failure in audit.ledger.failures:
        print(f"cachepin report FAILED: {failure.message}", file=sys.stderr)
    errors = audit.write_reports(args.json, args.junit, args.html)
    for option, error in errors.items():
        print(f"cachepin report: cannot write {FLAGS[option]} {error.filename}: {error.strerror or error}",
              file=sys.stderr)
    if errors:
        return EXIT_OUTPUT_FAILED
    if problems:
        return EXIT_BAD_INPUT
    return 0 if audit.ledger.ok else EXIT_EXPECTATIONS_FAILED


def _with_progress(events: Iterator[Event], first: list[float]) -> Iterator[Event]:
    """The events as they come, with a line on stderr every ``PROGRESS_EVERY``; the first one's start kept."""
    for n, event in enumerate(events, 1):
        if n == 1:
            first.append(event.started_at)
        if n % PROGRESS_EVERY == 0:
            print(f"cachepin report: {n} turns read", file=sys.stderr)
        yield event


if __name__ == "__main__":
    sys.exit(main())
