"""The only code that writes files: reports replaced atomically, event lines appended whole."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from cachepin.views.files import append_line, write_json_atomic


def test_write_json_atomic_replaces_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_json_atomic(path, {"version": 1, "n": 1})
    write_json_atomic(str(path), {"version": 1, "n": 2})
    assert json.loads(path.read_text()) == {"version": 1, "n": 2}
    assert os.listdir(tmp_path) == ["report.json"]


def test_write_json_atomic_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_json_atomic(path, {"n": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"n": object()})
    assert json.loads(path.read_text()) == {"n": 1}
    assert os.listdir(tmp_path) == ["report.json"]


def test_write_json_atomic_cleans_up_when_the_rename_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "report.json"
    write_json_atomic(path, {"n": 1})

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        write_json_atomic(path, {"n": 2})
    assert json.loads(path.read_text()) == {"n": 1}
    assert os.listdir(tmp_path) == ["report.json"]


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX permissions")
def test_write_json_atomic_makes_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_json_atomic(path, {})
    assert path.stat().st_mode & 0o777 == 0o644


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
