"""The only code that touches disk: reports replaced atomically, event lines appended whole.

Written so that a crash, a full disk or a second writer never leaves a
truncated report or a torn event line.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

if sys.platform != "win32":
    import fcntl


def write_atomic(path: str | os.PathLike[str], pieces: Iterable[str]) -> None:
    """Write the text ``pieces`` make up so readers see the old file or the new one, never half of either.

    The pieces are written as they come, so a report is never whole in
    memory. The temp file is in the same directory because ``os.replace`` is
    atomic only within a file system; fsync first, or a crash after the
    rename can still leave an empty file. mkstemp makes the file private
    (0600); a report is not, and CI often collects artifacts as another user,
    hence 0644.
    """
    target = Path(path)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            if hasattr(os, "fchmod"):  # POSIX (and Windows only from Python 3.13)
                os.fchmod(file.fileno(), 0o644)
            for piece in pieces:
                file.write(piece.encode())
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append one line, whole or not at all.

    One ``O_APPEND`` write: the kernel puts it at the end of the file in one
    go, so the lines of concurrent writers never interleave. A short write (a
    full disk, a file size limit) leaves the start of the line, and the next
    line would be glued to it: the start is cut off again and the write
    raises. Its offset is known even when others appended first, since after
    an ``O_APPEND`` write the descriptor's offset is the end of its own bytes.
    Cutting is safe only while nothing follows them: writers through here hold
    an exclusive ``flock`` for the write and the cut (one write long; POSIX
    only), and a file another program appended to since is left as it is.
    There is no retry: it would be a second write that another writer could
    slip in front of. Only regular files are cut; a pipe or a device
    (``/dev/stdout``) gets the write and its error.
    """
    if "\n" in line or "\r" in line:
        raise ValueError("append_line takes a single line without line breaks")
    data = (line + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
        if regular and sys.platform != "win32":
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by the close
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(f"short write, {written} of {len(data)} bytes ({_cut(fd, written) if regular else 'kept'}; "
                          "is the disk full?)")
    finally:
        os.close(fd)


def _cut(fd: int, written: int) -> str:
    """Cut the last ``written`` bytes of the file off again, if they are still its end; says what it did."""
    end = os.lseek(fd, 0, os.SEEK_CUR)
    if os.fstat(fd).st_size != end:
        return "kept: the file was appended to since"
    os.ftruncate(fd, end - written)
    return "cut off again"
