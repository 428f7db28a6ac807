"""The only code that touches disk: reports replaced atomically, event lines appended whole.

Written so that a crash or a second writer never leaves a truncated report or
a torn event line.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_json_atomic(path: str | os.PathLike[str], obj: object) -> None:
    """Write ``obj`` as indented JSON, atomically (see ``write_atomic``)."""
    write_atomic(path, json.dumps(obj, indent=2) + "\n")


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` so readers see the old file or the new one, never half of either.

    The temp file is in the same directory because ``os.replace`` is atomic
    only within a file system; fsync first, or a crash after the rename can
    still leave an empty file. mkstemp makes the file private (0600); a report
    is not, and CI often collects artifacts as another user, hence 0644.
    """
    target = Path(path)
    data = text.encode()
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            if hasattr(os, "fchmod"):  # POSIX (and Windows only from Python 3.13)
                os.fchmod(file.fileno(), 0o644)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append one line with a single O_APPEND write, so concurrent writers never interleave.

    A short write (disk full) raises instead of retrying: a retry would be a
    second write that another writer could slip in front of.
    """
    if "\n" in line or "\r" in line:
        raise ValueError("append_line takes a single line without line breaks")
    data = (line + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
    finally:
        os.close(fd)
    if written != len(data):
        raise OSError(f"short write to {os.fspath(path)}: {written} of {len(data)} bytes")
