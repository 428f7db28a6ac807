"""views/metrics.py: the option's parser, the counters against the ledger's totals, the label caps, the missing
library, and the /metrics server on loopback."""

from __future__ import annotations

import socket
import sys
import urllib.request
from collections.abc import Iterator

import pytest
from ledgers import SID, record
from ports import is_free
from prometheus_client.parser import text_string_to_metric_families

from cachepin.turns.explain import Explanation, Reason
from cachepin.turns.ledger import Ledger
from cachepin.turns.pricing import cost
from cachepin.turns.turn import Turn, Verdict
from cachepin.views import metrics as metrics_module
from cachepin.views.metrics import MISSING, OTHER, UNKNOWN, Metrics, listen_address, reconfigured

LOOPBACK = ("127.0.0.1", 0)
LABELS = {"provider", "model", "verdict", "kind", "reason", "basis"}


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    served = Metrics()
    yield served
    served.stop()


def samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of counter ``name`` (without its _total), by its labels."""
    return {tuple(sorted(sample.labels.items())): sample.value for family in metrics.registry.collect()
            if family.name == name for sample in family.samples if sample.name == f"{name}_total"}


def total(metrics: Metrics, name: str, **labels: str) -> float:
    return sum(value for key, value in samples(metrics, name).items() if set(labels.items()) <= set(key))


def turn(model: str | None = "claude-sonnet-4-5", provider: str | None = "anthropic", **figures) -> Turn:
    return Turn(index=1, flow_id="flow", started_at=1_700_000_000.0, status=200, stream=False, verdict=Verdict.HIT,
                provider=provider, model=model, **{"input_tokens": 10, "cache_read_input_tokens": 90, **figures})


# --- the option ---

@pytest.mark.parametrize("value, address", [
    ("", None),
    ("127.0.0.1:9464", ("127.0.0.1", 9464)),
    ("0.0.0.0:65535", ("0.0.0.0", 65535)),
    ("localhost:0", ("localhost", 0)),
    ("[::1]:9464", ("::1", 9464)),
])
def test_the_option_takes_host_and_port(value: str, address: tuple[str, int] | None) -> None:
    assert listen_address(value) == address


@pytest.mark.parametrize("value", ["9464", ":9464", "localhost", "localhost:", "host:65536", "host:-1", "host:abc",
                                   "host:９４６４", "[]:9464"])
def test_a_bad_address_names_the_form(value: str) -> None:
    with pytest.raises(ValueError, match=r"cache_metrics must be HOST:PORT, e\.g\. 127\.0\.0\.1:9464") as raised:
        listen_address(value)
    assert repr(value) in str(raised.value)


# --- without the library ---

def test_without_the_library_the_message_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # what `import` does for a missing package
    with pytest.raises(ValueError) as raised:
        reconfigured(None, LOOPBACK)
    assert str(raised.value) == MISSING
    assert "pip install 'cachepin[metrics]'" in MISSING and "pip install prometheus_client" in MISSING


def test_off_needs_no_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    assert reconfigured(None, None) is None


# --- the counters ---

def audited_ledger() -> Ledger:
    """Two sessions: cold, hit, miss, an error and a turn without usage; one miss explained."""
    ledger = Ledger(pricer=lambda turn: cost(turn.usage()))
    record(ledger, SID, 0, creation=1500)
    record(ledger, SID, 1500, input_tokens=40)
    record(ledger, SID, 0, creation=1600)
    record(ledger, "s-2", 0, creation=900)
    record(ledger, "s-2", 900, status=500)
    record(ledger, "s-2", None)
    return ledger


def turns_of(ledger: Ledger) -> list[Turn]:
    return [turn for session in ledger.sessions for turn in session.turns]


def test_the_counters_are_the_sums_of_the_turns(metrics: Metrics) -> None:
    ledger = audited_ledger()
    turns = turns_of(ledger)
    misses = [turn for turn in turns if turn.verdict is Verdict.MISS]
    misses[0].miss = Explanation(Reason.TTL_EXPIRED, "the entry expired", {})
    for each in turns:
        metrics.observe(each, ledger.pricer(each) if each.ok and ledger.pricer else None)
    totals = ledger.totals
    assert total(metrics, "cachepin_turns") == len(turns) == totals.requests + ledger.errors
    for verdict in Verdict:
        assert total(metrics, "cachepin_turns", verdict=verdict.value) == sum(t.verdict is verdict for t in turns)
    assert total(metrics, "cachepin_turns", verdict="error") == ledger.errors == 1
    assert total(metrics, "cachepin_tokens", kind="input") == totals.input_tokens
    assert total(metrics, "cachepin_tokens", kind="cache_read") == totals.cache_read_input_tokens
    assert total(metrics, "cachepin_tokens", kind="cache_creation") == totals.cache_creation_input_tokens
    assert total(metrics, "cachepin_tokens", kind="output") == totals.output_tokens
    assert total(metrics, "cachepin_cost_usd", basis="billed") == pytest.approx(totals.billed, abs=1e-12)
    assert total(metrics, "cachepin_cost_usd", basis="uncached") == pytest.approx(totals.uncached, abs=1e-12)
    assert totals.billed < totals.uncached
    assert samples(metrics, "cachepin_miss_reasons") == {(("reason", "ttl_expired"),): 1.0}


def test_an_error_turn_counts_as_a_turn_only(metrics: Metrics) -> None:
    error = Turn(index=1, flow_id="flow", started_at=0.0, status=500, stream=False, verdict=Verdict.ERROR,
                 provider="anthropic", model="claude-sonnet-4-5", input_tokens=10, output_tokens=3,
                 miss=Explanation(Reason.UNKNOWN, "", {}))
    metrics.observe(error, None)
    assert total(metrics, "cachepin_turns", verdict="error") == 1
    assert samples(metrics, "cachepin_tokens") == samples(metrics, "cachepin_miss_reasons") == {}


def test_a_count_not_reported_makes_no_series(metrics: Metrics) -> None:
    """OpenAI reports no cache writes: its models have no cache_creation series rather than a false 0."""
    metrics.observe(turn("gpt-5", "openai", cache_creation_input_tokens=None, output_tokens=4), None)
    assert {dict(key)["kind"] for key in samples(metrics, "cachepin_tokens")} == {"input", "cache_read", "output"}


def test_labels_are_capped_and_unnamed_ones_are_unknown(metrics: Metrics, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_module, "MAX_MODELS", 3)
    monkeypatch.setattr(metrics_module, "MAX_PROVIDERS", 2)
    capped = Metrics()
    for n in range(5):
        capped.observe(turn(f"model-{n}"), None)
    capped.observe(turn("model-0"), None)  # known before the cap: keeps its name
    capped.observe(turn(None), None)  # no name takes no place among the names
    for provider in ("openai", "gemini", None):
        capped.observe(turn("model-1", provider), None)
    by_model = {dict(key)["model"]: value for key, value in samples(capped, "cachepin_turns").items()
                if dict(key)["provider"] == "anthropic"}
    assert by_model == {"model-0": 2, "model-1": 1, "model-2": 1, OTHER: 2, UNKNOWN: 1}
    providers = {dict(key)["provider"] for key in samples(capped, "cachepin_turns")}
    assert providers == {"anthropic", "openai", OTHER, UNKNOWN}


def test_a_turn_without_a_response_model_counts_under_the_requested_one(metrics: Metrics) -> None:
    bedrock = Turn(index=1, flow_id="flow", started_at=0.0, status=200, stream=False, verdict=Verdict.COLD,
                   provider="bedrock", model=None, requested_model="anthropic.claude-sonnet-4-6", input_tokens=30)
    metrics.observe(bedrock, None)
    assert list(samples(metrics, "cachepin_turns")) == [
        (("model", "anthropic.claude-sonnet-4-6"), ("provider", "bedrock"), ("verdict", "cold"))]


def test_no_label_names_a_session(metrics: Metrics) -> None:
    ledger = audited_ledger()
    for each in turns_of(ledger):
        metrics.observe(each, None)
    names = {name for family in metrics.registry.collect() for sample in family.samples for name in sample.labels}
    assert names <= LABELS
    assert SID not in scrape_text(metrics, serve=True)


def test_each_metrics_has_its_own_registry() -> None:
    """A second instance (a test, the option off and on again) neither clashes with nor shares the first's."""
    first, second = Metrics(), Metrics()
    first.observe(turn(), None)
    assert total(first, "cachepin_turns") == 1 and total(second, "cachepin_turns") == 0


# --- the server ---

def scrape_text(metrics: Metrics, *, serve: bool = False) -> str:
    if serve:
        metrics.serve(LOOPBACK)
    assert metrics.url is not None
    with urllib.request.urlopen(metrics.url, timeout=10) as response:
        assert response.status == 200
        return response.read().decode()


def port_of(metrics: Metrics) -> int:
    assert metrics.url is not None
    return int(metrics.url.rsplit(":", 1)[1].split("/")[0])



def test_metrics_are_served_in_prometheus_text_format(metrics: Metrics) -> None:
    metrics.observe(turn(output_tokens=7), cost(turn(output_tokens=7).usage()))
    text = scrape_text(metrics, serve=True)
    assert metrics.url is not None and metrics.url.startswith("http://127.0.0.1:") and metrics.url.endswith("/metrics")
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert {"cachepin_turns", "cachepin_tokens", "cachepin_miss_reasons", "cachepin_cost_usd"} <= set(families)
    assert all(families[name].type == "counter" for name in ("cachepin_turns", "cachepin_tokens"))
    read = [sample for sample in families["cachepin_tokens"].samples
            if sample.name == "cachepin_tokens_total" and sample.labels["kind"] == "cache_read"]
    assert [(sample.labels["model"], sample.value) for sample in read] == [("claude-sonnet-4-5", 90.0)]
    assert "python_gc_objects_collected_total" not in text  # its own registry: not the process's default collectors


def test_the_same_address_keeps_its_server_and_a_new_one_moves_it(metrics: Metrics) -> None:
    metrics.serve(LOOPBACK)
    first = port_of(metrics)
    metrics.serve(LOOPBACK)  # a reload configures every option again, unchanged
    assert port_of(metrics) == first
    metrics.observe(turn(), None)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        other = holder.getsockname()[1]
    metrics.serve(("127.0.0.1", other))
    assert port_of(metrics) == other and is_free(first)
    assert 'cachepin_turns_total{model="claude-sonnet-4-5",provider="anthropic",verdict="hit"} 1.0' in scrape_text(
        metrics)  # the counts moved with it


def test_a_port_in_use_is_a_clear_error(metrics: Metrics) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ValueError, match=rf"cache_metrics: cannot listen on 127\.0\.0\.1:{port}: .*in use"):
            metrics.serve(("127.0.0.1", port))
    assert metrics.url is None and metrics.address is None


def test_a_host_that_does_not_resolve_is_a_clear_error(metrics: Metrics) -> None:
    with pytest.raises(ValueError, match=r"cache_metrics: cannot listen on no-such-host\.invalid:0: "):
        metrics.serve(("no-such-host.invalid", 0))


def test_stop_releases_the_port_and_keeps_the_counts(metrics: Metrics) -> None:
    metrics.serve(LOOPBACK)
    port = port_of(metrics)
    metrics.observe(turn(), None)
    metrics.stop()
    assert metrics.url is None and is_free(port)
    assert total(metrics, "cachepin_turns") == 1
    metrics.stop()  # twice: nothing to do


def test_off_stops_the_server(metrics: Metrics) -> None:
    assert reconfigured(metrics, LOOPBACK) is metrics
    port = port_of(metrics)
    assert reconfigured(metrics, None) is None
    assert is_free(port)
