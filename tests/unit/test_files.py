"""The only code that writes files: reports replaced atomically and written in pieces, event lines appended whole
or not at all."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ledgers import record

from cachepin.turns.ledger import Ledger
from cachepin.views.files import append_line, write_atomic
from cachepin.views.junit import junit_xml
from cachepin.views.report import report_json

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX files: flock, fifos, permissions")


def write_json(path: str | os.PathLike[str], obj: object) -> None:
    write_atomic(path, [json.dumps(obj)])


# --- reports: replaced whole ----------------------------------------------------------------------


def test_write_atomic_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_json(path, {"version": 1, "n": 1})
    write_atomic(str(path), iter(['{"version": 1,', ' "n": 2}']))
    assert json.loads(path.read_text()) == {"version": 1, "n": 2}
    assert os.listdir(tmp_path) == ["report.json"]


def test_pieces_go_to_the_temp_file_as_they_come_and_a_failing_one_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_json(path, {"n": 1})
    seen: list[str] = []

    def pieces() -> Iterator[str]:
        yield '{"n": '
        seen.extend(os.listdir(tmp_path))
        raise TypeError("a renderer bug half-way")

    with pytest.raises(TypeError):
        write_atomic(path, pieces())
    assert len(seen) == 2  # the report and the temp file being written
    assert json.loads(path.read_text()) == {"n": 1}
    assert os.listdir(tmp_path) == ["report.json"]


def test_write_atomic_cleans_up_when_the_rename_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "report.json"
    write_json(path, {"n": 1})

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        write_json(path, {"n": 2})
    assert json.loads(path.read_text()) == {"n": 1}
    assert os.listdir(tmp_path) == ["report.json"]


@POSIX
def test_write_atomic_makes_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_json(path, {})
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.fixture(scope="module")
def runs() -> dict[int, Ledger]:
    """Runs of 10,000 and 100,000 turns in sessions of 20 (a cold start, then hits; every 50th session misses
    once), recorded through the ledger as the audit records them."""
    ledgers = {}
    for turns in (10_000, 100_000):
        ledger = Ledger(expect="warm", min_hit=50)
        for n in range(turns):
            session, turn = divmod(n, 20)
            read = 0 if turn == 0 or (turn == 5 and session % 50 == 0) else 9000
            record(ledger, f"session-{session}", read, creation=9000 - read)
        ledger.finalize()
        ledgers[turns] = ledger
    return ledgers


@pytest.mark.parametrize("render", [report_json, junit_xml], ids=["report", "junit"])
def test_a_report_takes_the_memory_of_a_session_not_of_the_run(
        runs: dict[int, Ledger], render: Callable[[Ledger], Iterator[str]], tmp_path: Path) -> None:
    """Ten times the turns make a ten times larger file, written with about the same memory (the sessions'
    index grows, a few bytes each); the whole report in memory took six times the file's size."""
    peaks, sizes = {}, {}
    for turns, ledger in runs.items():
        path = tmp_path / f"{turns}.out"
        tracemalloc.start()
        try:
            write_atomic(path, render(ledger))
            peaks[turns] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        sizes[turns] = path.stat().st_size
    assert sizes[100_000] > 9 * sizes[10_000]
    assert peaks[100_000] < 3 * peaks[10_000], peaks
    assert peaks[100_000] < sizes[100_000] / 10, (peaks, sizes)


# --- event lines: appended whole, or not at all -----------------------------------------------------


def test_append_line_appends_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    for n in range(3):
        append_line(path, json.dumps({"n": n}))
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_concurrent_appends_never_tear_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    payload = "x" * 5000  # longer than any buffer a partial write would split

    def writer(name: str) -> None:
        for n in range(200):
            append_line(path, json.dumps({"writer": name, "n": n, "pad": payload}))

    threads = [threading.Thread(target=writer, args=(str(i),)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 800
    for i in range(4):
        assert [line["n"] for line in lines if line["writer"] == str(i)] == list(range(200))


@pytest.mark.parametrize("line", ["a\nb", "a\r", "\n"])
def test_append_line_refuses_line_breaks(tmp_path: Path, line: str) -> None:
    with pytest.raises(ValueError):
        append_line(tmp_path / "events.jsonl", line)
    assert not (tmp_path / "events.jsonl").exists()


def short_writes(monkeypatch: pytest.MonkeyPatch, kept: Callable[[bytes], int],
                 after: Callable[[], None] = lambda: None) -> None:
    """``os.write`` writes only the first ``kept(data)`` bytes for real, as on a disk that fills up, then runs
    ``after``."""
    real = os.write

    def write(fd: int, data: bytes) -> int:
        written = real(fd, data[:kept(data)])
        after()
        return written

    monkeypatch.setattr(os, "write", write)


@pytest.mark.parametrize("kept", [1, 500, 1000])
def test_a_short_write_is_cut_off_again_and_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   kept: int) -> None:
    """Without the cut, the next line would be glued to the part: two events lost to a JSONL reader."""
    path = tmp_path / "events.jsonl"
    append_line(path, '{"n": 0}')
    with monkeypatch.context() as patched:
        short_writes(patched, lambda data: kept)
        with pytest.raises(OSError, match=rf"^short write, {kept} of 1001 bytes \(cut off again; is the disk full"):
            append_line(path, json.dumps({"pad": "y" * 989}))
    append_line(path, '{"n": 2}')
    assert path.read_text() == '{"n": 0}\n{"n": 2}\n'


def test_a_short_write_another_program_appended_after_is_left_as_it_is(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Cutting would cut that program's line too; the error says the part stayed."""
    path = tmp_path / "events.jsonl"

    def other_program() -> None:
        with open(path, "a") as other:
            other.write('{"other": 1}\n')

    short_writes(monkeypatch, lambda data: 3, other_program)
    with pytest.raises(OSError, match=r"kept: the file was appended to since"):
        append_line(path, '{"n": 1}')
    assert path.read_text() == '{"n{"other": 1}\n'


@POSIX
def test_a_short_write_to_a_pipe_raises_and_cuts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fifo (or /dev/stdout) can take event lines; it cannot be cut, so it is not tried."""
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        short_writes(monkeypatch, lambda data: 3)
        with pytest.raises(OSError, match=r"^short write, 3 of 7 bytes \(kept; "):
            append_line(fifo, "abcdef")
        assert os.read(reader, 100) == b"abc"
    finally:
        os.close(reader)


@POSIX
def test_concurrent_writers_never_tear_a_line_when_writes_come_up_short(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Each write and its cut hold the file's lock: no other writer appends between them."""
    path = tmp_path / "events.jsonl"
    calls = itertools.count()
    short_writes(monkeypatch, lambda data: len(data) // 2 if next(calls) % 3 == 0 else len(data))
    failed = [0] * 4

    def writer(i: int) -> None:
        for n in range(150):
            try:
                append_line(path, json.dumps({"writer": i, "n": n, "pad": "x" * 3000}))
            except OSError:
                failed[i] += 1

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 600 - sum(failed) and 0 < sum(failed) < 600
    for i in range(4):
        numbers = [line["n"] for line in lines if line["writer"] == i]
        assert numbers == sorted(numbers) and len(numbers) == 150 - failed[i]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KB tmpfs, where writes really run out of space (mounting one takes root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = shutil.which("mount")
    if mount is None or subprocess.run([mount, "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                                       capture_output=True).returncode != 0:
        pytest.skip("no tmpfs can be mounted here (needs root)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_leaves_whole_lines_and_the_next_one_after_them(small_disk: Path) -> None:
    events, filler = small_disk / "events.jsonl", small_disk / "filler"
    filler.write_bytes(b"x" * 60 * 1024)  # one 4 KB page of the 64 left
    line = json.dumps({"pad": "y" * 989})  # 1001 bytes with its line break: the fifth comes up short
    appended = 0
    with pytest.raises(OSError, match=r"^short write, \d+ of 1001 bytes \(cut off again"):
        for _ in range(16):
            append_line(events, line)
            appended += 1
    assert appended == 4 and events.read_text() == f"{line}\n" * appended
    with pytest.raises(OSError, match=r"\(cut off again"):  # and again, while the disk stays full
        append_line(events, line)
    assert events.read_text() == f"{line}\n" * appended
    filler.unlink()
    append_line(events, '{"n": "after"}')
    assert events.read_text().splitlines() == [line] * appended + ['{"n": "after"}']
