"""The HTML report of real traffic, opened in a real headless Chromium: it draws something, and says what matters.

Chromium comes from Debian's packages (scripts/test installs it when missing). Without
it the test skips with a message locally, but fails in CI: it is never skipped there.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import anthropic
import pytest
from llm_upstream import FakeUpstream

from cachepin_tools.wire.tokens import Tokens

pytestmark = pytest.mark.e2e

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
WHITE = (255, 255, 255)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = ("no chromium or chromium-browser on PATH: the HTML report is not checked in a browser "
               "(scripts/test installs Debian's chromium when it can; or: apt-get install chromium)")
    if os.environ.get("CI"):
        pytest.fail(f"{message}; never skipped in CI")
    pytest.skip(message)


def browse(page: Path, tmp_path: Path, *args: str) -> str:
    """Chromium's stdout for ``page`` with ``args`` (``--dump-dom``, ``--screenshot=...``), in a profile of its own."""
    argv = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000",
            *args, page.as_uri()]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def pixels(png: bytes) -> list[bytes]:
    """The RGB(A) pixels of an 8-bit truecolour PNG, decoded with zlib and the five PNG row filters."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    offset, idat, header = 8, b"", b""
    while offset < len(png):
        length, kind = struct.unpack(">I4s", png[offset:offset + 8])
        data = png[offset + 8:offset + 8 + length]
        header = data if kind == b"IHDR" else header
        idat += data if kind == b"IDAT" else b""
        offset += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), f"unexpected PNG format: depth {depth}, colour type {colour}"
    size = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * size
    rows: list[bytes] = []
    previous = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride) if kind else ():
            left = line[i - size] if i >= size else 0
            up = previous[i]
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            else:
                corner = previous[i - size] if i >= size else 0
                estimate = left + up - corner
                near = min((abs(estimate - left), 0, left), (abs(estimate - up), 1, up),
                           (abs(estimate - corner), 2, corner))
                line[i] = (line[i] + near[2]) & 0xFF
        previous = bytes(line)
        rows.append(previous)
    return [row[x:x + 3] for row in rows for x in range(0, stride, size)]


def converse(proxy_url: str, upstream: FakeUpstream, first: str, reads: list[int]) -> None:
    """One conversation through the proxy, a turn per read figure (the first writes 1538 tokens)."""
    history: list[dict] = []
    with anthropic.Anthropic(base_url=proxy_url, api_key="sk-test-key", max_retries=0) as client:
        for index, read in enumerate(reads):
            upstream.behaviour.anthropic = Tokens(12, read=read, creation=1538 - read, output=85)
            history.append({"role": "user", "content": first if index == 0 else f"and then {index}?"})
            reply = client.messages.create(model="claude-sonnet-4-6", max_tokens=64, system="Be brief.",
                                           messages=history)
            history.append({"role": "assistant", "content": reply.content[0].text})


def test_the_html_report_of_real_traffic_renders_in_chromium(upstream: FakeUpstream, mitmdump,
                                                             tmp_path: Path) -> None:
    chromium()  # skip (or fail in CI) before starting anything
    page, report = tmp_path / "report.html", tmp_path / "report.json"
    proxy = mitmdump(upstream.url, ("inject.py", "cache_audit.py"),
                     options={"cache_html": str(page), "cache_report": str(report), "cache_expect": "warm"})
    converse(proxy.url, upstream, "a warm conversation", [0, 1536, 1536])
    converse(proxy.url, upstream, "a cold conversation", [0, 0])
    assert proxy.stop() == 3, proxy.output  # the second conversation's miss fails warm
    written = json.loads(report.read_text())
    sessions = [session["session_id"] for session in written["sessions"]]
    failure, = written["failures"]
    miss, = [turn["notes"]["miss"] for session in written["sessions"] for turn in session["turns"] if "notes" in turn]
    assert len(sessions) == 2

    dom = browse(page, tmp_path, "--dump-dom")
    assert "Failures (1)" in dom and failure["message"] in dom
    assert all(f"Session <code>{session_id}</code>" in dom for session_id in sessions)
    assert ('<span class="verdict" style="color:#c62828">miss</span></td>'
            f'<td class="text">{html.escape(miss["reason"] + ": " + miss["detail"])}</td>') in dom  # the reason beside
    assert ">hit</span>" in dom and ">cold</span>" in dom
    assert "<svg" in dom and dom.count("<rect") == 3 * 5  # a bar of three parts for each of the five turns

    shot = tmp_path / "report.png"
    browse(page, tmp_path, f"--screenshot={shot}")
    drawn = pixels(shot.read_bytes())
    colours = {bytes(pixel) for pixel in drawn}
    not_white = sum(tuple(pixel) != WHITE for pixel in drawn)
    assert len(colours) > 20 and not_white > len(drawn) // 200, (len(colours), not_white, len(drawn))
    assert {bytes.fromhex("2e7d32"), bytes.fromhex("c62828"), bytes.fromhex("f9a825")} <= colours  # the bars' fills
