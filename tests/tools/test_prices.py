"""scripts/update-prices: LiteLLM's price database, in its own format, to cachepin's dated price file.

Run on a small sample written here in the database's format (no network: the download is pip's, faked)."""

from __future__ import annotations

import json
import re
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cachepin.turns.models import PRICES_FILE, Price, PriceTable
from cachepin.turns.price_files import load_prices
from cachepin_tools.prices import update

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
M = 1e-6  # LiteLLM prices per token

SAMPLE: dict[str, object] = {
    "sample_spec": {"litellm_provider": "one of https://docs.litellm.ai/docs/providers", "mode": "one of: chat",
                    "input_cost_per_token": 0.0, "output_cost_per_token": 0.0},
    # Anthropic: 5 min and 1 h writes; a dated id at its family's price is left out
    "claude-opus-4-8": {"litellm_provider": "anthropic", "mode": "chat", "input_cost_per_token": 5 * M,
                        "output_cost_per_token": 25 * M, "cache_read_input_token_cost": 0.5 * M,
                        "cache_creation_input_token_cost": 6.25 * M,
                        "cache_creation_input_token_cost_above_1hr": 10 * M,
                        "input_cost_per_token_batches": 2.5 * M},
    "claude-opus-4-8-20261101": {"litellm_provider": "anthropic", "mode": "chat", "input_cost_per_token": 5 * M,
                                 "output_cost_per_token": 25 * M, "cache_read_input_token_cost": 0.5 * M,
                                 "cache_creation_input_token_cost": 6.25 * M,
                                 "cache_creation_input_token_cost_above_1hr": 10 * M},
    # OpenAI GPT-5.6: writes billed (30 min, 12 h), a tier above 272k whose 12 h write the database leaves out
    "gpt-5.6": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 4 * M,
                "output_cost_per_token": 20 * M, "cache_read_input_token_cost": 0.4 * M,
                "cache_creation_input_token_cost": 5 * M, "cache_creation_input_token_cost_above_12hr": 10 * M,
                "input_cost_per_token_above_272k_tokens": 8 * M, "output_cost_per_token_above_272k_tokens": 30 * M,
                "cache_read_input_token_cost_above_272k_tokens": 0.8 * M,
                "cache_creation_input_token_cost_above_272k_tokens": 10 * M,
                "input_cost_per_token_priority": 8 * M},
    "gpt-4o-2024-05-13": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 5 * M,
                          "output_cost_per_token": 15 * M},
    "ft:gpt-4o-2024-08-06": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 3.75 * M,
                             "output_cost_per_token": 15 * M},
    "gpt-image-2": {"litellm_provider": "openai", "mode": "image_generation", "input_cost_per_token": 5 * M,
                    "output_cost_per_token": 40 * M},
    # Gemini: a 200k tier, no write surcharge; Vertex only for what AI Studio does not list, and only Gemini
    "gemini/gemini-2.5-pro": {"litellm_provider": "gemini", "mode": "chat", "input_cost_per_token": 1.25 * M,
                              "output_cost_per_token": 10 * M, "cache_read_input_token_cost": 0.125 * M,
                              "input_cost_per_token_above_200k_tokens": 2.5 * M,
                              "output_cost_per_token_above_200k_tokens": 15 * M},
    "gemini-2.5-pro": {"litellm_provider": "vertex_ai-language-models", "mode": "chat",
                       "input_cost_per_token": 9 * M, "output_cost_per_token": 9 * M},
    "gemini-2.0-flash": {"litellm_provider": "vertex_ai-language-models", "mode": "chat",
                         "input_cost_per_token": 0.15 * M, "output_cost_per_token": 0.6 * M},
    "vertex_ai/claude-opus-4-8": {"litellm_provider": "vertex_ai-language-models", "mode": "chat",
                                  "input_cost_per_token": 9 * M, "output_cost_per_token": 9 * M},
    "gemini/lyria-3.5": {"litellm_provider": "gemini", "mode": "chat", "input_cost_per_token": 0.0,
                         "output_cost_per_token": 0.0, "output_cost_per_second": 0.002},
    # xAI, DeepSeek (a 0 write price is no surcharge), Moonshot: under the ids their APIs answer with
    "xai/grok-4.3": {"litellm_provider": "xai", "mode": "chat", "input_cost_per_token": 1.25 * M,
                     "output_cost_per_token": 2.5 * M, "cache_read_input_token_cost": 0.2 * M},
    "deepseek/deepseek-chat": {"litellm_provider": "deepseek", "mode": "chat", "input_cost_per_token": 0.28 * M,
                               "output_cost_per_token": 0.42 * M, "cache_creation_input_token_cost": 0.0,
                               "input_cost_per_token_cache_hit": 0.028 * M},
    "moonshot/kimi-k3": {"litellm_provider": "moonshot", "mode": "chat", "input_cost_per_token": 3 * M,
                         "output_cost_per_token": 15 * M, "cache_read_input_token_cost": 0.3 * M},
    # Bedrock: Claude models Anthropic's own list dropped, under their family; no regional or legacy ids
    "anthropic.claude-opus-4-1-20250805-v1:0": {"litellm_provider": "bedrock_converse", "mode": "chat",
                                                "input_cost_per_token": 15 * M, "output_cost_per_token": 75 * M,
                                                "cache_read_input_token_cost": 1.5 * M,
                                                "cache_creation_input_token_cost": 18.75 * M},
    "us.anthropic.claude-opus-4-1-20250805-v1:0": {"litellm_provider": "bedrock_converse", "mode": "chat",
                                                   "input_cost_per_token": 16.5 * M,
                                                   "output_cost_per_token": 82.5 * M},
    "anthropic.claude-v2:1": {"litellm_provider": "bedrock", "mode": "chat", "input_cost_per_token": 8 * M,
                              "output_cost_per_token": 24 * M},
    "ollama/llama3": {"litellm_provider": "ollama", "mode": "chat", "input_cost_per_token": 0.0,
                      "output_cost_per_token": 0.0},
}

EXPECTED = {
    "claude-opus-4-1": {"input": 15.0, "output": 75.0, "cache_read": 1.5, "cache_write_5m": 18.75,
                        "cache_write_1h": 30.0},  # the database has no 1 h price: Anthropic's 2x
    "claude-opus-4-8": {"input": 5.0, "output": 25.0, "cache_read": 0.5, "cache_write_5m": 6.25,
                        "cache_write_1h": 10.0},
    "deepseek-chat": {"input": 0.28, "output": 0.42, "cache_read": 0.028, "cache_write_5m": 0.28,
                      "cache_write_1h": 0.28},
    "gemini-2.0-flash": {"input": 0.15, "output": 0.6, "cache_read": 0.15, "cache_write_5m": 0.15,
                         "cache_write_1h": 0.15},
    "gemini-2.5-pro": {"input": 1.25, "output": 10.0, "cache_read": 0.125, "cache_write_5m": 1.25,
                       "cache_write_1h": 1.25, "tiers": [{"above": 200000, "input": 2.5, "output": 15.0,
                                                          "cache_read": 0.25, "cache_write_5m": 2.5,
                                                          "cache_write_1h": 2.5}]},
    "gpt-4o-2024-05-13": {"input": 5.0, "output": 15.0, "cache_read": 5.0, "cache_write_5m": 5.0,
                          "cache_write_1h": 5.0},
    "gpt-5.6": {"input": 4.0, "output": 20.0, "cache_read": 0.4, "cache_write_5m": 5.0, "cache_write_1h": 10.0,
                "tiers": [{"above": 272000, "input": 8.0, "output": 30.0, "cache_read": 0.8, "cache_write_5m": 10.0,
                           "cache_write_1h": 20.0}]},  # the tier's 12 h write keeps the base's ratio to input
    "grok-4.3": {"input": 1.25, "output": 2.5, "cache_read": 0.2, "cache_write_5m": 1.25, "cache_write_1h": 1.25},
    "kimi-k3": {"input": 3.0, "output": 15.0, "cache_read": 0.3, "cache_write_5m": 3.0, "cache_write_1h": 3.0},
}


def database(tmp_path: Path, content: object = SAMPLE, name: str = "model_prices.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def wheel(folder: Path, content: object = SAMPLE, version: str = "9.8.7",
          member: str = "litellm/model_prices_and_context_window_backup.json") -> Path:
    path = folder / f"litellm-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, json.dumps(content))
        archive.writestr(f"litellm-{version}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: litellm\n"
                                                                  f"Version: {version}\n")
    return path


def run(*args: str) -> int:
    return update.main(list(args), now=lambda: NOW)


def test_the_database_becomes_a_dated_price_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "prices.json"
    assert run("--database", str(database(tmp_path)), "--output", str(output)) == 0
    written = json.loads(output.read_text(encoding="utf-8"))
    assert written["generated_at"] == "2026-12-03T12:00:00Z"
    assert written["source"] == {"database": "LiteLLM model_prices_and_context_window.json", "url": update.URL,
                                 "file": "model_prices.json"}
    assert written["models"] == EXPECTED
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"scripts/update-prices: read {len(SAMPLE)} entries (model_prices.json)"
    assert err[1].startswith("scripts/update-prices: 9 models priced, from anthropic 2, openai 2, ")
    assert err[-1] == f"scripts/update-prices: wrote {output}"
    assert any("WARNING: the database has no price for claude-sonnet-4-6, claude-haiku-4-5" in line for line in err)


def test_the_file_reads_as_a_diff_of_prices_and_loads_as_the_runtime_reads_it(tmp_path: Path) -> None:
    output = tmp_path / "prices.json"
    run("--database", str(database(tmp_path)), "--output", str(output))
    lines = output.read_text(encoding="utf-8").splitlines()
    assert sum(line.startswith('    "') for line in lines) == len(EXPECTED)  # one line per model
    table = load_prices(output, PriceTable({}))
    assert table.get("claude-opus-4-8") == Price(5.0, 25.0, 0.5, 6.25, 10.0)
    assert table.get("us.anthropic.claude-opus-4-1-20250805-v1:0") == Price(15.0, 75.0, 1.5, 18.75, 30.0)
    assert table.get("gpt-5.6").at(300_000) == Price(8.0, 30.0, 0.8, 10.0, 20.0)  # type: ignore[union-attr]


def test_a_wheel_gives_the_version(tmp_path: Path) -> None:
    output = tmp_path / "prices.json"
    assert run("--wheel", str(wheel(tmp_path)), "--output", str(output)) == 0
    source = json.loads(output.read_text(encoding="utf-8"))["source"]
    assert source == {"database": "LiteLLM model_prices_and_context_window.json", "url": update.URL,
                      "file": "litellm/model_prices_and_context_window_backup.json", "package": "litellm",
                      "version": "9.8.7", "registry": "PyPI"}


def test_the_download_is_pips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    commands: list[list[str]] = []

    def pip(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        commands.append(command)
        wheel(Path(command[command.index("--dest") + 1]), version="1.2.3")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(update.subprocess, "run", pip)
    output = tmp_path / "prices.json"
    assert run("--version", "1.2.3", "--output", str(output)) == 0
    assert commands[0][1:6] == ["-m", "pip", "download", "litellm==1.2.3", "--no-deps"]
    assert json.loads(output.read_text(encoding="utf-8"))["source"]["version"] == "1.2.3"
    assert "downloading litellm==1.2.3 from PyPI" in capsys.readouterr().err


def test_a_failed_download_says_why_and_leaves_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(update.subprocess, "run", lambda command, **kwargs: subprocess.CompletedProcess(
        command, 1, "", "WARNING: retrying\nERROR: Could not find a version that satisfies the requirement"))
    output = tmp_path / "prices.json"
    output.write_text("old", encoding="utf-8")
    assert run("--output", str(output)) == 1
    assert output.read_text(encoding="utf-8") == "old"
    assert capsys.readouterr().err.splitlines()[-1] == (
        "scripts/update-prices: error: could not download litellm from PyPI: ERROR: Could not find a version that "
        "satisfies the requirement (pip exited 1)")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (lambda tmp: database(tmp, "{oops"), r"model_prices\.json: not valid JSON: .* line 1 column 2"),
        (lambda tmp: tmp / "missing.json", r"missing\.json: cannot read the price database"),
        (lambda tmp: database(tmp, {"gpt-4o": {"input": 2.5}}), r"not LiteLLM's price database"),
        (lambda tmp: database(tmp, {k: v for k, v in SAMPLE.items() if not k.startswith("xai/")}),
         r"no chat model of xai; LiteLLM's format may have changed"),
        (lambda tmp: database(tmp, {**SAMPLE, "claude-x": {"litellm_provider": "anthropic", "mode": "chat",
                                                           "input_cost_per_token": -1}}),
         r"model 'claude-x': field 'input_cost_per_token' must be a non-negative number"),
    ],
    ids=["syntax", "missing", "not-litellm", "provider-gone", "bad-price"],
)
def test_bad_databases_say_what_to_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str], given, message: str) -> None:
    output = tmp_path / "prices.json"
    assert run("--database", str(given(tmp_path)), "--output", str(output)) == 1
    assert not output.exists()
    assert re.search(message, capsys.readouterr().err.splitlines()[-1])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: wheel(tmp, member="litellm/elsewhere.json"), r"no litellm/model_prices_and_context_window"),
        (lambda tmp: database(tmp, "not a zip", "litellm-1-py3-none-any.whl"), r"cannot read the wheel"),
    ],
    ids=["moved", "not-a-zip"],
)
def test_bad_wheels_say_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str], make, message: str) -> None:
    assert run("--wheel", str(make(tmp_path)), "--output", str(tmp_path / "prices.json")) == 1
    assert re.search(message, capsys.readouterr().err.splitlines()[-1])


def test_an_unwritable_output_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--database", str(database(tmp_path)), "--output", str(tmp_path / "absent" / "prices.json")) == 1
    assert "error: cannot write" in capsys.readouterr().err


def test_help_names_the_source_and_the_default_output(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        run("--help")
    assert stopped.value.code == 0
    out = capsys.readouterr().out
    assert "LiteLLM" in out and "PyPI" in out and str(PRICES_FILE) in out
