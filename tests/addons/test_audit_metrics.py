"""cache_metrics inside mitmproxy's test harness: /metrics scraped over loopback equals the report's totals, a hot
reload keeps the port and the counts, shutdown closes the port, bad values are OptionsErrors."""

from __future__ import annotations

import json
import socket
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from cache_audit import CacheAudit
from mitmproxy import exceptions, hooks, http
from mitmproxy.test import taddons, tflow
from ports import is_free
from prometheus_client.parser import text_string_to_metric_families

from cachepin import handover
from cachepin.views.metrics import MISSING, Metrics
from cachepin_tools.wire import anthropic, openai
from cachepin_tools.wire.tokens import Tokens

LOOPBACK = "127.0.0.1:0"
PROMPT = "Summarise the design document."


@pytest.fixture
def addon() -> Iterator[CacheAudit]:
    audit = CacheAudit()
    yield audit
    parked = [state for state in handover._parked.values() if isinstance(state, Metrics)]
    for metrics in [audit.metrics, *parked]:
        if metrics is not None:
            metrics.stop()  # no test leaves a server (and its port) behind
    handover._parked.clear()


def anthropic_flow(read: int, written: int, session: str = "s-1", status: int = 200) -> http.HTTPFlow:
    body = {"model": "claude-sonnet-4-6", "max_tokens": 64, "system": "Be brief.",
            "messages": [{"role": "user", "content": PROMPT}]}
    reply = (anthropic.message(anthropic.usage(Tokens(12, read=read, creation=written, output=85)), "Sure.",
                               "claude-sonnet-4-6") if status == 200 else anthropic.error("overloaded_error", "busy"))
    return _flow("/v1/messages", body, reply, session, status)


def chat_flow(read: int, session: str = "s-2") -> http.HTTPFlow:
    body = {"model": "gpt-5", "messages": [{"role": "user", "content": PROMPT}]}
    return _flow("/v1/chat/completions", body,
                 openai.completion(openai.chat_usage(Tokens(300, read=read, output=52)), "Sure.", "gpt-5"), session)


def _flow(path: str, body: dict, reply: dict, session: str, status: int = 200) -> http.HTTPFlow:
    request = http.Request.make("POST", f"https://api.example.com{path}", json.dumps(body).encode(),
                                {"content-type": "application/json", "x-session-id": session})
    response = http.Response.make(status, json.dumps(reply).encode(), {"content-type": "application/json"})
    return tflow.tflow(req=request, resp=response)


TRAFFIC = (lambda: anthropic_flow(0, 1538), lambda: anthropic_flow(1538, 0), lambda: anthropic_flow(0, 1600),
           lambda: anthropic_flow(0, 0, status=529), lambda: chat_flow(0), lambda: chat_flow(256))


async def run(tctx: taddons.context, addon: CacheAudit, *flows: http.HTTPFlow) -> None:
    for flow in flows:
        await tctx.cycle(addon, flow)


def scrape(addon: CacheAudit) -> dict[str, list]:
    """/metrics over loopback, as Prometheus reads it: the samples of each counter (its _total lines)."""
    assert addon.metrics is not None and addon.metrics.url is not None
    with urllib.request.urlopen(addon.metrics.url, timeout=10) as response:
        text = response.read().decode()
    return {family.name: [s for s in family.samples if s.name.endswith("_total")]
            for family in text_string_to_metric_families(text)}


def summed(scraped: dict[str, list], name: str, **labels: str) -> float:
    return sum(sample.value for sample in scraped.get(name, [])
               if all(sample.labels.get(key) == value for key, value in labels.items()))


def port_of(addon: CacheAudit) -> int:
    assert addon.metrics is not None and addon.metrics.url is not None
    return int(addon.metrics.url.rsplit(":", 1)[1].split("/")[0])



def assert_equal_to_the_report(scraped: dict[str, list], report: dict) -> None:
    totals = report["totals"]
    assert summed(scraped, "cachepin_turns") == totals["requests"] + totals["errors"]
    assert summed(scraped, "cachepin_turns", verdict="error") == totals["errors"]
    assert summed(scraped, "cachepin_tokens", kind="input") == totals["input_tokens"]
    assert summed(scraped, "cachepin_tokens", kind="cache_read") == totals["cache_read_input_tokens"]
    assert summed(scraped, "cachepin_tokens", kind="cache_creation") == totals["cache_creation_input_tokens"]
    assert summed(scraped, "cachepin_tokens", kind="output") == totals["output_tokens"]
    assert summed(scraped, "cachepin_cost_usd", basis="billed") == pytest.approx(totals["cost"]["billed"], abs=1e-6)
    assert summed(scraped, "cachepin_cost_usd", basis="uncached") == pytest.approx(totals["cost"]["uncached"],
                                                                                    abs=1e-6)
    turns = [turn for session in report["sessions"] for turn in session["turns"]]
    verdicts = Counter[str]()
    for sample in scraped["cachepin_turns"]:
        verdicts[sample.labels["verdict"]] += int(sample.value)
    assert verdicts == Counter(turn["verdict"] for turn in turns)
    reasons = Counter(turn["notes"]["miss"]["reason"] for turn in turns if "notes" in turn and "miss" in turn["notes"])
    assert {sample.labels["reason"]: sample.value for sample in scraped.get("cachepin_miss_reasons", [])} == reasons


async def test_scraped_counters_equal_the_reports_totals(addon: CacheAudit, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_metrics=LOOPBACK, cache_report=str(report))
        await run(tctx, addon, *(make() for make in TRAFFIC))
        scraped = scrape(addon)
        addon.report()
    written = json.loads(report.read_text())
    assert written["totals"]["errors"] == 1 and written["totals"]["requests"] == 5
    assert summed(scraped, "cachepin_turns", provider="openai", model="gpt-5") == 2
    assert summed(scraped, "cachepin_miss_reasons") >= 1  # the anthropic miss is explained
    assert_equal_to_the_report(scraped, written)


async def test_a_hot_reload_keeps_the_port_and_the_counts(addon: CacheAudit, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    with taddons.context(addon) as tctx:
        tctx.master.addons.invoke_addon_sync(addon, hooks.ConfigureHook(set(tctx.options.keys())))
        tctx.configure(addon, cache_metrics=LOOPBACK, cache_report=str(report))
        await run(tctx, addon, *(make() for make in TRAFFIC[:3]))
        metrics, port = addon.metrics, port_of(addon)
        tctx.master.addons.remove(addon)  # a script reload: done() on the old instance …
        assert not is_free(port) and summed(scrape(addon), "cachepin_turns") == 3  # served all along
        reloaded = CacheAudit()
        tctx.master.addons.add(reloaded)  # … then load() and configure() with every option, unchanged
        tctx.master.addons.invoke_addon_sync(reloaded, hooks.ConfigureHook(set(tctx.options.keys())))
        assert reloaded.metrics is metrics and port_of(reloaded) == port
        await run(tctx, reloaded, *(make() for make in TRAFFIC[3:]))
        scraped = scrape(reloaded)
        reloaded.report()
    assert summed(scraped, "cachepin_turns") == len(TRAFFIC)
    assert_equal_to_the_report(scraped, json.loads(report.read_text()))


async def test_shutdown_closes_the_port(addon: CacheAudit) -> None:
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_metrics=LOOPBACK)
        await run(tctx, addon, anthropic_flow(0, 1538))
        port = port_of(addon)
        tctx.master.should_exit.set()
        addon.done()
    assert addon.metrics is not None and addon.metrics.url is None
    assert is_free(port)
    assert not any(isinstance(state, Metrics) for state in handover._parked.values())


async def test_turned_off_it_closes_the_port_and_counts_nothing(addon: CacheAudit) -> None:
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_metrics=LOOPBACK)
        port = port_of(addon)
        tctx.configure(addon, cache_metrics="")
        assert addon.metrics is None and is_free(port)
        await run(tctx, addon, anthropic_flow(0, 1538))  # no server, no counters: nothing to fail on


async def test_an_address_change_moves_the_counts(addon: CacheAudit) -> None:
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_metrics=LOOPBACK)
        await run(tctx, addon, anthropic_flow(0, 1538))
        first = port_of(addon)
        tctx.configure(addon, cache_metrics="localhost:0")
        assert is_free(first) and summed(scrape(addon), "cachepin_turns") == 1


@pytest.mark.parametrize("value, message", [
    ("9464", "cache_metrics must be HOST:PORT, e.g. 127.0.0.1:9464"),
    ("127.0.0.1:70000", "cache_metrics must be HOST:PORT"),
])
def test_a_bad_value_is_an_options_error(addon: CacheAudit, value: str, message: str) -> None:
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match=message):
            tctx.configure(addon, cache_metrics=value)
        assert addon.metrics is None


def test_without_the_library_the_error_says_how_to_install_it(addon: CacheAudit,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError) as raised:
            tctx.configure(addon, cache_metrics=LOOPBACK)
    assert str(raised.value) == MISSING


async def test_a_port_in_use_is_an_options_error_and_the_counts_stay_served(addon: CacheAudit) -> None:
    with taddons.context(addon) as tctx, socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        tctx.configure(addon, cache_metrics=LOOPBACK)
        await run(tctx, addon, anthropic_flow(0, 1538))
        with pytest.raises(exceptions.OptionsError, match=rf"cannot listen on 127\.0\.0\.1:{taken}: .*in use"):
            tctx.configure(addon, cache_metrics=f"127.0.0.1:{taken}")
        assert tctx.options.cache_metrics == LOOPBACK  # rolled back: served again, on a port of its own
        assert summed(scrape(addon), "cachepin_turns") == 1
