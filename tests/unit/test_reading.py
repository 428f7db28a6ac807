"""The audit's reading of a streamed response, kept on the flow for a replay: written plainly, read back only
exactly as written (a capture may have been edited by anyone)."""

from __future__ import annotations

import json

import pytest

from cachepin.response.diagnostics import Diagnosis
from cachepin.response.extract import Extracted
from cachepin.response.reading import READING_KEY, as_record, from_record
from cachepin.response.usage import Usage

SPLIT = Usage("anthropic", "claude-sonnet-4-6", 12, 1538, 9000, 85, 538, 1000)
READINGS = [
    pytest.param(Extracted(), id="nothing-read"),
    pytest.param(Extracted(SPLIT, response_id="msg_1", final=True), id="anthropic-split"),
    pytest.param(Extracted(Usage("openai", None, 204, None, 4096, 52)), id="no-model-writes-not-reported"),
    pytest.param(Extracted(Usage("gemini", "gemini-2.5-pro", None, None, None, None)), id="no-figures"),
    pytest.param(Extracted(error="overloaded_error", warning="stream ended before message_stop"), id="error"),
    pytest.param(Extracted(SPLIT, final=True, diagnosis=Diagnosis("system_changed", 41850)), id="diagnosis"),
]


def test_the_flow_metadata_key() -> None:
    assert READING_KEY == "cachepin_read"


@pytest.mark.parametrize("extracted", READINGS)
def test_a_reading_comes_back_as_it_was_through_a_flow_file(extracted: Extracted) -> None:
    """Plain JSON values only: what mitmproxy's flow files store (a JSON round trip loses nothing)."""
    record = as_record(extracted)
    assert json.loads(json.dumps(record)) == record
    assert from_record(record) == extracted
    assert from_record(json.loads(json.dumps(record))) == extracted


def test_the_record_names_every_figure() -> None:
    record = as_record(Extracted(SPLIT, response_id="msg_1", final=True))
    assert record == {
        "version": 1,
        "usage": {"provider": "anthropic", "model": "claude-sonnet-4-6", "input_tokens": 12,
                  "cache_creation_input_tokens": 1538, "cache_read_input_tokens": 9000, "output_tokens": 85,
                  "cache_creation_5m": 538, "cache_creation_1h": 1000},
        "error": None, "warning": None, "response_id": "msg_1", "final": True, "diagnosis": None,
    }


@pytest.mark.parametrize("diagnosis", [None, Diagnosis("pending"), Diagnosis("tools_changed", 41735)])
def test_a_capture_keeps_the_diagnosis(diagnosis: Diagnosis | None) -> None:
    extracted = Extracted(response_id="msg_1", final=True, diagnosis=diagnosis)
    assert from_record(as_record(extracted)) == extracted


@pytest.mark.parametrize("kept", [{"reason": "has space"}, {"reason": "x", "missed_tokens": -2}, "tools_changed",
                                  {"missed_tokens": 1}])
def test_a_reading_with_an_edited_diagnosis_is_refused_whole(kept: object) -> None:
    record = as_record(Extracted(final=True)) | {"diagnosis": kept}
    assert from_record(record) is None


def test_a_reading_of_an_earlier_version_has_no_diagnosis() -> None:
    record = as_record(Extracted(final=True))
    del record["diagnosis"]
    assert from_record(record) == Extracted(final=True)


def _edited(usage: dict | None = None, **fields: object) -> dict:
    """The record of a whole reading, with ``fields`` and the usage's figures in ``usage`` changed."""
    record = as_record(Extracted(SPLIT, response_id="msg_1", final=True))
    return record | fields | {"usage": record["usage"] | (usage or {})}


@pytest.mark.parametrize("record", [
    pytest.param(None, id="none"),
    pytest.param("cachepin_read", id="a-string"),
    pytest.param([1, 2], id="a-list"),
    pytest.param(_edited(version=2), id="another-version"),
    pytest.param(_edited(version="1"), id="version-a-string"),
    pytest.param({k: v for k, v in _edited().items() if k != "version"}, id="no-version"),
    pytest.param(_edited(final=None), id="final-missing"),
    pytest.param(_edited(final=1), id="final-not-a-bool"),
    pytest.param(_edited(error=529), id="error-not-text"),
    pytest.param(_edited(warning=["cut"]), id="warning-not-text"),
    pytest.param(_edited(response_id={"id": "msg_1"}), id="response-id-not-text"),
    pytest.param(_edited() | {"usage": "12 tokens"}, id="usage-not-an-object"),
    pytest.param(_edited({"provider": None}), id="no-provider"),
    pytest.param(_edited({"model": 7}), id="model-not-text"),
    pytest.param(_edited({"input_tokens": -1}), id="negative-count"),
    pytest.param(_edited({"output_tokens": True}), id="bool-count"),
    pytest.param(_edited({"cache_read_input_tokens": 9000.0}), id="float-count"),
    pytest.param(_edited({"cache_creation_1h": "1000"}), id="count-as-text"),
])
def test_a_record_it_did_not_write_is_refused_whole(record: object) -> None:
    assert from_record(record) is None


@pytest.mark.parametrize("record", [
    pytest.param(_edited({"model": None}), id="no-model"),
    pytest.param(_edited({"cache_creation_input_tokens": None, "cache_creation_5m": None, "cache_creation_1h": None}),
                 id="figures-not-reported"),
    pytest.param(_edited({"input_tokens": 0}), id="zero"),
])
def test_what_it_may_write_is_read_back(record: dict) -> None:
    extracted = from_record(record)
    assert extracted is not None and as_record(extracted) == record
