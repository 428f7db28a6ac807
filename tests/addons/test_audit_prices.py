"""The audit addon's prices: a model without one is named once in the log and counted in the report's totals."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from cache_audit import CacheAudit
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from cachepin import handover
from cachepin_tools.wire import anthropic
from cachepin_tools.wire.tokens import Tokens


def flow_of(model: str | None, session: str = "s-1", output: object = 85) -> http.HTTPFlow:
    """An Anthropic turn on ``model`` (None: named nowhere) that read 1538 cached tokens."""
    body = {"model": model, "max_tokens": 64, "system": "Be brief.", "messages": [{"role": "user", "content": "hi"}]}
    request = http.Request.make("POST", "https://api.example.com/v1/messages", json.dumps(body).encode(),
                                {"content-type": "application/json", "x-session-id": session})
    answer = anthropic.message(anthropic.usage(Tokens(12, read=1538, creation=0, output=85)), "hello", model or "")
    answer["usage"]["output_tokens"] = output  # type: ignore[index]
    if model is None:
        del answer["model"]
    response = http.Response.make(200, json.dumps(answer).encode(), {"content-type": "application/json"})
    return tflow.tflow(req=request, resp=response)


@pytest.fixture
def addon() -> Iterator[CacheAudit]:
    audit = CacheAudit()
    yield audit
    handover._parked.clear()


def unpriced_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "has no price" in r.getMessage()]


async def test_a_model_without_a_price_is_named_once_and_counted(addon: CacheAudit, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    report = tmp_path / "report.json"
    models = ["claude-opus-4-8", "house-llm-1", "house-llm-1", "other-llm", "house-llm-1", "claude-opus-4-8"]
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_report=str(report))
        for n, model in enumerate(models):
            await tctx.cycle(addon, flow_of(model, session=f"s-{n % 2}"))
        addon.report()
    assert unpriced_warnings(caplog) == [
        "cachepin audit: model 'house-llm-1' has no price: its turns are left out of the cost totals "
        "(totals.cost_unpriced_turns counts them); give its prices in a cache_prices file",
        "cachepin audit: model 'other-llm' has no price: its turns are left out of the cost totals "
        "(totals.cost_unpriced_turns counts them); give its prices in a cache_prices file",
    ]
    totals = json.loads(report.read_text())["totals"]
    assert totals["requests"] == 6 and totals["cost_unpriced_turns"] == 4
    assert totals["cost"]["billed"] == pytest.approx(2 * (12 * 5 + 1538 * 0.5 + 85 * 25) / 1e6)


@pytest.mark.parametrize("format", ["cachepin", "litellm"])
async def test_cache_prices_gives_the_missing_price(addon: CacheAudit, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture, format: str) -> None:
    prices = tmp_path / "prices.json"
    if format == "cachepin":
        prices.write_text(json.dumps({"house-llm-1": {"input": 1.0, "output": 2.0}}))
    else:  # a copy of LiteLLM's own database, as a user would download it
        prices.write_text(json.dumps({"anthropic/house-llm-1": {
            "litellm_provider": "anthropic", "mode": "chat", "input_cost_per_token": 1e-06,
            "output_cost_per_token": 2e-06}}))
    report = tmp_path / "report.json"
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_report=str(report), cache_prices=str(prices))
        await tctx.cycle(addon, flow_of("house-llm-1"))
        addon.report()
    assert unpriced_warnings(caplog) == []
    totals = json.loads(report.read_text())["totals"]
    assert totals["cost_unpriced_turns"] == 0
    assert totals["cost"]["billed"] == pytest.approx((12 + 1538 + 85 * 2) / 1e6)


async def test_the_warning_waits_for_a_turn_without_one_of_its_own(addon: CacheAudit,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """At most one WARNING a flow (guarantee 2): a turn whose usage already warned names its model at the next."""
    with taddons.context(addon) as tctx:
        await tctx.cycle(addon, flow_of("house-llm-1", output="85"))  # a string count: dropped, with a warning
        assert unpriced_warnings(caplog) == []
        await tctx.cycle(addon, flow_of(None))  # no model named: nothing to name, counted in the totals only
        assert unpriced_warnings(caplog) == []
        await tctx.cycle(addon, flow_of("house-llm-1"))
    assert len(unpriced_warnings(caplog)) == 1 and "'house-llm-1'" in unpriced_warnings(caplog)[0]
    assert addon.ledger.totals.requests - addon.ledger.totals.priced == 3
