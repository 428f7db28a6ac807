"""scripts/bench keeps working: a --quick run produces the table and the JSON, every figure a positive number.

Only the structure is checked, never a timing against a target: on a shared CI machine timings say little,
and the targets are judged by the benchmark itself (see docs/performance.md).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from cachepin_tools.harness.processes import ROOT

BENCH = ("-m", "cachepin_tools.bench")  # what scripts/bench runs, from the checkout's root
SECTIONS = ("streaming", "throughput", "inprocess", "ledger")
EXPECTED_KEYS = {
    "streaming.first_event_ms.direct", "streaming.first_event_ms.mitmdump", "streaming.first_event_ms.mitmdump_stream",
    "streaming.first_event_ms.addons", "streaming.last_event_ms.mitmdump", "streaming.first_event_ratio.addons",
    "streaming.first_event_ratio.addons_header", "streaming.first_event_worst_ms.addons",
    *(f"throughput.{kind}.{encoding}.{mode}.{name}" for kind in ("rps", "latency_ms")
      for encoding in ("identity", "gzip") for mode in ("sequential", "concurrent")
      for name in ("mitmdump", "mitmdump_stream", "addons", "addons_header", "addons_here", "addons_header_here")),
    *(f"throughput.ratio.{encoding}.{mode}.{name}" for encoding in ("identity", "gzip")
      for mode in ("sequential", "concurrent") for name in ("addons", "addons_header")),
    "inprocess.resolver_us", "inprocess.parse_us", "inprocess.resolve_parsed_us", "inprocess.snapshot_first_us",
    "inprocess.snapshot_later_us", "inprocess.read_us", "inprocess.read_worker_us", "inprocess.read_worker_cpu_us",
    *(f"inprocess.{kind}.{stream}.{encoding}" for kind in ("tee_mbps", "tee_peak_kb")
      for stream in ("anthropic", "openai") for encoding in ("identity", "gzip")),
    "ledger.turn_us", "ledger.session_bytes", "ledger.bounded_mb", "ledger.bounded_held", "ledger.bounded_evicted",
    "ledger.bounded_total_turns",
}

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    run = subprocess.run([sys.executable, *BENCH, "--quick", "--json", str(out)], cwd=ROOT, text=True,
                         capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    return run, json.loads(out.read_text())


def test_every_measurement_is_a_positive_number(quick_run: tuple[subprocess.CompletedProcess[str], dict]) -> None:
    _, document = quick_run
    results = document["results"]
    keys = [row["key"] for row in results]
    assert len(keys) == len(set(keys))
    assert EXPECTED_KEYS <= set(keys), sorted(EXPECTED_KEYS - set(keys))
    for row in results:
        assert set(row) == {"key", "section", "label", "value", "unit", "target", "met"}, row
        value = row["value"]
        assert isinstance(value, int | float) and not isinstance(value, bool), row
        assert math.isfinite(value) and value > 0, row
        assert row["section"] == row["key"].split(".")[0] and row["section"] in SECTIONS
        assert row["unit"] and row["label"]
        assert (row["met"] is None) == (row["target"] == ""), row  # a target is judged, a figure is not


def test_the_json_says_what_was_measured_on_what(quick_run: tuple[subprocess.CompletedProcess[str], dict]) -> None:
    _, document = quick_run
    assert document["quick"] is True and document["command"].startswith("scripts/bench --quick")
    machine = document["machine"]
    assert machine["nproc"] >= 1 and machine["cpu"] and machine["python"].startswith("3.")
    assert machine["mitmproxy"].startswith("12.")
    assert document["settings"]["rounds"] == 2


def test_the_table_shows_every_measurement(quick_run: tuple[subprocess.CompletedProcess[str], dict]) -> None:
    run, document = quick_run
    lines = run.stdout.splitlines()
    assert lines[0].startswith("cachepin bench (quick): ")
    assert [line for line in lines if line.startswith("== ")] == [f"== {section}" for section in SECTIONS]
    assert sum(line.split() == ["measurement", "value", "unit", "target"] for line in lines) == len(SECTIONS)
    for row in document["results"]:
        (line,) = [line for line in lines if line.startswith(row["label"] + "  ")]
        if row["met"] is not None:
            assert line.endswith("met" if row["met"] else "MISSED")
    assert "[bench" in run.stderr and "done" in run.stderr.splitlines()[-1]  # progress goes to stderr


def test_help_explains_each_measurement() -> None:
    run = subprocess.run([sys.executable, *BENCH, "--help"], text=True, capture_output=True, timeout=60)
    assert run.returncode == 0
    for words in ("time to first SSE event", "requests/s", "session resolver", "SSE tee", "100,000 sessions",
                  "--quick", "--json"):
        assert words in run.stdout, words


@pytest.mark.parametrize("args", [["--only", "nonsense"], ["--rounds", "0"]])
def test_bad_arguments_are_refused(args: list[str]) -> None:
    run = subprocess.run([sys.executable, *BENCH, *args], text=True, capture_output=True, timeout=60)
    assert run.returncode == 2 and "error:" in run.stderr
