"""How a harness command (``scripts/demo``, ``scripts/verify``) ends: its errors, exit statuses and signals.

A command that starts mitmdump and the simulator must stop them however it
ends: an error says why in one line and exits 1, SIGTERM (a cancelled CI job)
and Ctrl-C unwind the ``with`` blocks that stop the processes. Progress is
printed here too, because printing it is where a swallowed SIGTERM is
honoured after all.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

EXIT_RUN_FAILED = 1  # the check could not run: no process, no connection, an API error


class RunError(Exception):
    """The check could not run (a process did not start, the target failed); the message says why."""


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


def progress(text: str) -> None:
    """Print progress; also where a SIGTERM that some library code swallowed is honoured after all."""
    if _terminated:
        raise SystemExit(128 + _terminated[0])
    print(text, end="", flush=True)
