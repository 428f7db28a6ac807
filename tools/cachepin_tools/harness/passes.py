"""One pass through mitmdump: start it in front of a target, hold the conversations, stop it, read its report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cachepin_tools.harness.command import RunError
from cachepin_tools.harness.conversations import Conversation
from cachepin_tools.harness.drive import drive
from cachepin_tools.harness.processes import Mitmdump
from cachepin_tools.harness.report import Report
from cachepin_tools.harness.target import Target


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
