"""The audit addon's HTML report (``cache_html``): written on cache.report and at shutdown, exit 4 when it cannot be."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cache_audit import CacheAudit
from mitmproxy import exceptions, http
from mitmproxy.test import taddons, tflow

from cachepin import handover
from cachepin_tools.wire import anthropic
from cachepin_tools.wire.tokens import Tokens

REQUEST = {"model": "claude-sonnet-4-6", "max_tokens": 64, "system": "Be brief.",
           "messages": [{"role": "user", "content": "PROMPT-never-rendered"}]}
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


@pytest.fixture
def addon() -> Iterator[CacheAudit]:
    audit = CacheAudit()
    yield audit
    handover._parked.clear()  # nothing parked by a done() may reach a later test's master


def flow(session: str, read: int | None = None, status: int = 200) -> http.HTTPFlow:
    """An Anthropic turn of ``session`` reading ``read`` tokens (writing the rest of 1538), or an error response."""
    body = anthropic.message(anthropic.usage(Tokens(12, read=read, creation=1538 - read, output=85)), "REPLY",
                             "claude-sonnet-4-6") if read is not None else OVERLOADED
    request = http.Request.make("POST", "https://api.example.com/v1/messages", json.dumps(REQUEST).encode(),
                                {"content-type": "application/json", "x-session-id": session})
    response = http.Response.make(status, json.dumps(body).encode(), {"content-type": "application/json"})
    return tflow.tflow(req=request, resp=response, live=True)


async def run(tctx: taddons.context, addon: CacheAudit, *flows: http.HTTPFlow) -> None:
    for each in flows:
        await tctx.cycle(addon, each)


def sessions_in(page: Path) -> list[str]:
    return re.findall(r"<h2>Session <code>([^<]*)</code>", page.read_text())


async def test_the_html_report_is_written_on_cache_report_and_again_at_shutdown(addon: CacheAudit,
                                                                                tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_html=str(page))
        await run(tctx, addon, flow("first", 0), flow("first", 1536))
        tctx.command(addon.report)
        assert sessions_in(page) == ["first"] and ">hit</span>" in page.read_text()
        await run(tctx, addon, flow("second", 0))
        assert sessions_in(page) == ["first"]  # not rewritten per turn
        tctx.master.should_exit.set()
        addon.done()
    text = page.read_text()
    assert sessions_in(page) == ["first", "second"] and "<svg" in text and text.endswith("</html>\n")
    assert "PROMPT-never-rendered" not in text and "REPLY" not in text


def test_an_html_report_in_a_missing_folder_is_refused(addon: CacheAudit, tmp_path: Path) -> None:
    with taddons.context(addon) as tctx:
        with pytest.raises(exceptions.OptionsError, match="cache_html: cannot write"):
            tctx.configure(addon, cache_html=str(tmp_path / "missing" / "report.html"))


async def test_a_session_of_error_turns_renders_and_says_error(addon: CacheAudit, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    with taddons.context(addon) as tctx:
        tctx.configure(addon, cache_html=str(page), cache_expect="warm")
        await run(tctx, addon, flow("broken", status=529), flow("broken", status=529))
        tctx.command(addon.report)
    text = page.read_text()
    assert sessions_in(page) == ["broken"] and text.count(">error</span>") == 2
    assert "no successful response (2 error turns)" in text and "<tr><th>errors</th><td>2</td></tr>" in text
