"""One real mitmdump with both addons for a whole module of guarantee cases, before a scripted upstream.

The guarantee tests run dozens of cases through one proxy rather than start
one each: a request names its case in its query (``?case=<name>``) and the
upstream answers it with that case's script. The proxy also logs every record
with its level (``logs.level_log_addon``), for the tests to read what each
case cost in warnings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from logs import level_log_addon
from scripted_upstream import Action, RawRequest, ScriptedUpstream

from cachepin_tools.harness.processes import Mitmdump


@dataclass
class CaseProxy:
    mitmdump: Mitmdump
    upstream: ScriptedUpstream
    log: Path  # every log record of the mitmdump process, as ``LEVEL logger message``
    report: Path  # cache_report
    events: Path  # cache_events, when asked for

    def new_lines(self, since: int) -> list[str]:
        """The log's lines after its first ``since`` characters."""
        return self.log.read_text(errors="replace")[since:].splitlines()

    def turn_lines(self) -> int:
        """How many turn log lines the audit has written."""
        return self.log.read_text(errors="replace").count("cachepin session=")


def case_of(request: RawRequest) -> str:
    """The case a request names in its query."""
    return request.target.rsplit("case=", 1)[1]


@contextlib.contextmanager
def case_proxy(folder: Path, answer: Callable[[str], Sequence[Action]], *, events: bool = False,
               **options: object) -> Iterator[CaseProxy]:
    """mitmdump (inject, audit, the level log) before an upstream that answers each case with ``answer(case)``.

    It writes ``folder / "report.json"``, and ``folder / "events.jsonl"`` when
    ``events`` is set; ``options`` are the proxy's others. mitmdump is stopped
    on the way out, the upstream closed.
    """
    script, log = level_log_addon(folder)
    report, event_lines = folder / "report.json", folder / "events.jsonl"
    outputs = {"cache_report": str(report), **({"cache_events": str(event_lines)} if events else {})}
    with ScriptedUpstream(lambda request: answer(case_of(request))) as upstream:
        process = Mitmdump(upstream.url, ("inject.py", "cache_audit.py", str(script)), confdir=str(folder / "conf"),
                           options={**outputs, **options})
        try:
            yield CaseProxy(process, upstream, log, report, event_lines)
        finally:
            process.stop()
