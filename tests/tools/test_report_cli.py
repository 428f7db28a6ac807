"""scripts/report's command line: help, and input it refuses before reading anything (the rebuild itself:
tests/unit/test_events.py, tests/e2e/test_events_report_e2e.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachepin_tools.report import EXIT_BAD_INPUT, main


def test_help_says_what_it_does_and_how_it_exits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    assert "Rebuild the cachepin audit's report from cache_events files" in out
    assert "3 expectations\nfailed" in out and "--min-hit N" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--min-hit", "101"], "cachepin report: cache_min_hit must be 0-100, not 101"),
    (["--json", "{folder}"], "cachepin report: --json: '{folder}' is a folder; name a file in it"),
    (["--html", "{folder}/missing/report.html"],
     "cachepin report: --html: cannot write '{folder}/missing/report.html'"),
    (["--prices", "{folder}/none.json"], "cachepin report: cache_prices: "),
    (["--max-turns", "-1"], "cachepin report: cache_max_turns must be >= 0 (0 = unlimited)"),
])
def test_bad_arguments_are_refused_before_any_file_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          args: list[str], message: str) -> None:
    events = tmp_path / "events.jsonl"  # does not exist: the arguments are refused first
    assert main([str(events), *(arg.format(folder=tmp_path) for arg in args)]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.startswith(message.format(folder=tmp_path))


def test_an_empty_events_file_is_an_empty_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "events.jsonl").write_text("")
    assert main([str(tmp_path / "events.jsonl"), "--expect", "warm"]) == 3  # no evidence is no pass
    assert "no successful LLM response was audited" in capsys.readouterr().err
