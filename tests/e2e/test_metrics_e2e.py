"""End to end: a real mitmdump serves /metrics while it runs; the last scrape equals the JSON report it writes at
shutdown, and the port is closed once it exits."""

from __future__ import annotations

import http.client
import json
import re
import socket
import urllib.request
from pathlib import Path

import pytest
from llm_upstream import FakeUpstream
from prometheus_client.parser import text_string_to_metric_families

from cachepin_tools.harness.processes import Mitmdump, wait_until
from cachepin_tools.wire.tokens import Tokens

pytestmark = pytest.mark.e2e

SERVED = re.compile(r"Prometheus metrics at (http://127\.0\.0\.1:(\d+)/metrics)")
TURNS = [(0, 1538, False), (1538, 0, True), (0, 1600, False), (1600, 40, True)]  # read, written, streamed


def ask(proxy: Mitmdump, session: str, stream: bool) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    body = {"model": "claude-sonnet-4-6", "max_tokens": 64, "stream": stream, "system": "Be brief.",
            "messages": [{"role": "user", "content": "hello"}]}
    try:
        conn.request("POST", "/v1/messages", json.dumps(body),
                     {"content-type": "application/json", "x-session-id": session})
        response = conn.getresponse()
        response.read()
        assert response.status in (200, 529)
    finally:
        conn.close()


def scrape(url: str) -> dict[str, float]:
    """Each counter's samples summed by (metric name, the one label that matters here)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                label = sample.labels.get("kind") or sample.labels.get("basis") or sample.labels.get("verdict", "")
                for key in (sample.name, f"{sample.name}:{label}"):
                    sums[key] = sums.get(key, 0) + sample.value
    return sums


def test_metrics_scraped_while_running_equal_the_report(upstream: FakeUpstream, mitmdump, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    proxy = mitmdump(upstream.url, ("inject.py", "cache_audit.py"),
                     options={"cache_metrics": "127.0.0.1:0", "cache_report": str(report)})
    assert wait_until(lambda: SERVED.search(proxy.output) is not None), proxy.output
    match = SERVED.search(proxy.output)
    assert match is not None
    url, port = match.group(1), int(match.group(2))
    for read, written, stream in TURNS:
        upstream.behaviour.anthropic = Tokens(12, read=read, creation=written, output=85)
        ask(proxy, "s-1", stream)
    upstream.behaviour.status = 529
    ask(proxy, "s-1", False)
    assert wait_until(lambda: scrape(url).get("cachepin_turns_total") == len(TURNS) + 1), proxy.output
    scraped = scrape(url)
    assert proxy.stop() == 0, proxy.output
    totals = json.loads(report.read_text())["totals"]
    assert scraped["cachepin_turns_total"] == totals["requests"] + totals["errors"]
    assert scraped["cachepin_turns_total:error"] == totals["errors"] == 1
    assert scraped["cachepin_turns_total:hit"] == 2 and scraped["cachepin_turns_total:miss"] == 1
    for kind, field in [("input", "input_tokens"), ("cache_read", "cache_read_input_tokens"),
                        ("cache_creation", "cache_creation_input_tokens"), ("output", "output_tokens")]:
        assert scraped[f"cachepin_tokens_total:{kind}"] == totals[field], kind
    for basis in ("billed", "uncached"):
        assert scraped[f"cachepin_cost_usd_total:{basis}"] == pytest.approx(totals["cost"][basis], abs=1e-6)
    with socket.socket() as probe:  # the port was released at shutdown: a restarted proxy can listen on it again
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
        probe.listen()


def test_a_port_in_use_stops_mitmdump_at_startup(upstream: FakeUpstream, mitmdump) -> None:
    """mitmdump starts its proxy, then exits 1 on the error logged while it loaded the script."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        proxy = mitmdump(upstream.url, ("cache_audit.py",), options={"cache_metrics": f"127.0.0.1:{taken}"})
        assert proxy.proc.wait(30) == 1, proxy.output
    assert wait_until(lambda: "Error logged during startup" in proxy.output), proxy.output
    assert f"cache_metrics: cannot listen on 127.0.0.1:{taken}: Address already in use" in proxy.output


def test_a_bad_value_stops_mitmdump_at_startup_with_one_line(upstream: FakeUpstream, mitmdump) -> None:
    proxy = mitmdump(upstream.url, ("cache_audit.py",), options={"cache_metrics": "9464"})
    assert proxy.proc.wait(30) == 1, proxy.output
    assert wait_until(lambda: "cachepin: cache_metrics must be HOST:PORT, e.g. 127.0.0.1:9464" in proxy.output), \
        proxy.output
