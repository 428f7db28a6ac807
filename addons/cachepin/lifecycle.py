"""The audit's life around its flows: resumed at start, reports rewritten on a timer, ended on SIGHUP, handed
over across a hot reload, and the exit status it ends with.

The audit addon calls these from its ``load``, ``running``, ``configure`` and
``done`` hooks; what they need of mitmproxy comes in as plain values and
callables (a shutdown, a rewrite of the reports), so they are tested without a
proxy.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Set
from dataclasses import dataclass
from typing import NamedTuple

from cachepin.audit import Audit, RequestFacts
from cachepin.response.websocket import Socket
from cachepin.views.events import merged
from cachepin.views.metrics import Metrics
from cachepin.worker import Readers

logger = logging.getLogger(__name__)

EXIT_EXPECTATIONS_FAILED = 3
EXIT_OUTPUT_FAILED = 4  # a report, JUnit file or event line could not be written


def resume(audit: Audit, path: str) -> None:
    """``cache_resume``: the turns of the events file this run appends to, read back before any flow."""
    problems: list[str] = []
    if os.path.exists(path) and not os.path.isfile(path):  # a pipe or a device: reading it would wait, or eat
        logger.error("cachepin audit: cache_resume: cache_events %s is not a regular file; nothing resumed", path)
        return
    try:
        turns = audit.resume(merged([path], problems))
    except FileNotFoundError:
        logger.info("cachepin audit: nothing to resume: %s does not exist yet", path)
        return
    except OSError as e:
        logger.error("cachepin audit: cache_resume: cannot read cache_events %s: %s", path, e)
        return
    for problem in problems:
        logger.warning("cachepin audit: cache_resume skipped %s", problem)
    logger.info("cachepin audit: resumed %d turns of %d earlier runs from %s", turns, len(audit.runs) - 1, path)


def rewrite_every(seconds: float, rewrite: Callable[[], None]) -> asyncio.Task[None] | None:
    """``cache_report_interval``: a task on the running loop that calls ``rewrite`` every ``seconds`` (None: 0,
    never), between the other writes."""
    if not seconds:
        return None
    return asyncio.get_running_loop().create_task(_rewrites(seconds, rewrite))


async def _rewrites(seconds: float, rewrite: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            rewrite()
        except Exception:  # a bug must not end the rewrites silently: said, and tried again next time
            logger.exception("cachepin audit: cache_report_interval: the reports could not be rewritten")


def end_on_hangup(shutdown: Callable[[], object]) -> None:
    """SIGHUP (a closed terminal, many service managers) ends the proxy as SIGTERM does: by ``shutdown``
    (mitmproxy's, through ``done()``).

    Unhandled, it kills the process before any report is written. A handler
    someone else installed, or an ignored SIGHUP (``nohup``), is left alone.
    """
    if not hasattr(signal, "SIGHUP") or signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL:
        return
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, shutdown)
    except (RuntimeError, NotImplementedError, ValueError):  # no running loop, or not the main thread
        pass


@dataclass
class HandedOver[F]:
    """What a hot reload hands from the old instance of the audit to the new one (``handover``): the counts, the
    flows of type ``F`` whose turns are awaited, and the servers and processes, which go on serving."""

    audit: Audit
    in_flight: dict[str, F]  # by flow id: requests sent, their turn not recorded yet
    sockets: dict[str, Socket[F, Callable[[], RequestFacts]]]  # by flow id: Responses WebSockets in flight
    metrics: Metrics | None
    readers: Readers


class Exit(NamedTuple):
    status: int
    reason: str


def exit_status(unwritten: Set[str], ok: bool) -> Exit | None:
    """The status the proxy exits with at shutdown, and why: ``EXIT_OUTPUT_FAILED`` if an output option's file
    (``unwritten``) could not be written, else ``EXIT_EXPECTATIONS_FAILED`` if expectations failed; None: 0.

    The output failure wins: a report or event log that is stale or lacks
    lines cannot back a verdict, whichever it is (the reason says both).
    """
    failed = []
    if unwritten:
        failed.append(f"could not write {', '.join(sorted(unwritten))}")
    if not ok:
        failed.append("cache expectations failed")
    if not failed:
        return None
    return Exit(EXIT_OUTPUT_FAILED if unwritten else EXIT_EXPECTATIONS_FAILED, "; ".join(failed))
