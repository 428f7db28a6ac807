"""What tests read of logs: records captured in process, every level of a mitmdump run, closed connections."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

LEVEL_LOG_ADDON = '''"""Test-only addon: every log record of the mitmdump process, with its level, to one file."""
import logging

class _LevelFile(logging.Handler):
    def emit(self, record):
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        if record.exc_info:
            text += "\\n" + logging.Formatter().formatException(record.exc_info)
        with open(PATH, "a", encoding="utf-8", errors="replace") as file:
            file.write(f"{record.levelname} {record.name} {text}\\n")

PATH = %r
logging.getLogger().addHandler(_LevelFile(logging.DEBUG))
addons = []
'''


def level_log_addon(folder: Path) -> tuple[Path, Path]:
    """A ``-s`` script that logs every record as ``LEVEL logger message`` to a file; returns (script, log)."""
    log = folder / "levels.log"
    script = folder / "level_log.py"
    script.write_text(LEVEL_LOG_ADDON % str(log))
    log.touch()
    return script, log


@contextlib.contextmanager
def captured_logs() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def problems(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.levelno >= logging.WARNING]


def connections_closed(output: str) -> bool:
    """mitmdump's log shows every client connection closed again: stopping it now cuts nothing off.

    mitmproxy prints an asyncio traceback of its own when it is stopped while a connection handler is
    still finishing, whatever the addons do; tests wait for this before they stop mitmdump.
    """
    return output.count("] client connect") == output.count("] client disconnect")
