"""End to end: a real mitmdump with addons/inject.py in reverse mode, driven by the official SDKs."""

from __future__ import annotations

import json
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

import anthropic
import openai
import pytest
from llm_upstream import FakeUpstream
from sdk_conversation import converse

from cachepin_tools.harness.processes import _MITM_LISTENING, ADDONS, Mitmdump, Process

pytestmark = pytest.mark.e2e

def pairs(upstream: FakeUpstream) -> list[tuple[str | None, str | None]]:
    return [(r.header("x-session-id"), r.header("x-session-affinity")) for r in upstream.records]


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_sdk_conversations_are_pinned(upstream: FakeUpstream, mitmdump, stream: bool) -> None:
    proxy = mitmdump(upstream.url)
    client = anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-test", max_retries=0)
    converse(client, "anthropic", "Summarise the design.", 3, stream)
    converse(client, "anthropic", "Write a haiku.", 2, stream)

    ids = pairs(upstream)
    assert len(ids) == 5
    assert all(a is not None and a == b for a, b in ids), ids
    first, second = {a for a, _ in ids[:3]}, {a for a, _ in ids[3:]}
    assert len(first) == 1 and len(second) == 1 and first != second
    proxy.stop()
    assert proxy.output.count("cachepin inject new session=") == 2
    assert "sk-ant-test" not in proxy.output and "Summarise" not in proxy.output


@pytest.mark.parametrize("stream", [False, True])
def test_openai_sdk_conversations_are_pinned(upstream: FakeUpstream, mitmdump, stream: bool) -> None:
    proxy = mitmdump(upstream.url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0)
    converse(client, "chat", "Hello", 3, stream)
    converse(client, "chat", "Bonjour", 2, stream)

    ids = [a for a, b in pairs(upstream) if a == b and a]
    assert len(ids) == 5
    assert len(set(ids[:3])) == 1 and len(set(ids[3:])) == 1 and ids[0] != ids[3]


@pytest.mark.parametrize(
    "header, value",
    [("X-Claude-Code-Session-Id", "5f0c2d9e-8a41-4b7e-9c3d-1e2f3a4b5c6d"),
     ("x-session-affinity", "ses_0a1b2c3d4e5fAbCdEfGhIjKlMn")],
)
def test_client_session_ids_are_honoured_and_mirrored(upstream: FakeUpstream, mitmdump, header: str,
                                                      value: str) -> None:
    proxy = mitmdump(upstream.url)
    client = anthropic.Anthropic(base_url=proxy.url, api_key="k", max_retries=0, default_headers={header: value})
    converse(client, "anthropic", "hi", 2, stream=True)
    assert pairs(upstream) == [(value, value), (value, value)]


def test_out_of_scope_requests_are_untouched(upstream: FakeUpstream, mitmdump) -> None:
    proxy = mitmdump(upstream.url)
    sent = {"x-custom": "1", "accept": "application/json"}
    urllib.request.urlopen(urllib.request.Request(f"{proxy.url}/v1/models", headers=sent)).read()
    embeddings = urllib.request.Request(f"{proxy.url}/v1/embeddings", data=json.dumps({"input": "x"}).encode(),
                                        headers=sent, method="POST")
    with pytest.raises(urllib.error.HTTPError):  # the fake upstream has no embeddings: 404, passed through
        urllib.request.urlopen(embeddings)
    for record in upstream.records:
        names = {k.lower() for k, _ in record.headers}
        assert "x-session-id" not in names and "x-session-affinity" not in names
        assert record.header("x-custom") == "1"
    assert len(upstream.records) == 2


def test_a_restarted_proxy_derives_the_same_ids(upstream: FakeUpstream, mitmdump, tmp_path: Path) -> None:
    for _ in range(2):
        proxy = mitmdump(upstream.url, confdir=str(tmp_path / "confdir"))  # the salt kept there is the same
        client = anthropic.Anthropic(base_url=proxy.url, api_key="k", max_retries=0)
        converse(client, "anthropic", "Same conversation", 2, stream=False)
        proxy.stop()
    ids = [a for a, _ in pairs(upstream)]
    assert len(ids) == 4 and len(set(ids)) == 1 and ids[0].startswith("fp_")


def test_runs_from_a_plain_copy_without_the_installed_package(upstream: FakeUpstream, tmp_path: Path) -> None:
    """What a user with the standalone mitmproxy does: -s a script of a plain clone, nothing installed."""
    clone = tmp_path / "clone"
    shutil.copytree(ADDONS, clone / "addons", ignore=shutil.ignore_patterns("__pycache__"))
    launcher = (
        "import sys; sys.path[:] = [p for p in sys.path if not p.rstrip('/').endswith('addons')]; "
        "sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, '__module__', '').startswith('__editable__')]; "
        "import importlib.util; assert importlib.util.find_spec('cachepin') is None, 'cachepin is importable'; "
        "from mitmproxy.tools.main import mitmdump; sys.exit(mitmdump())"
    )
    argv = [sys.executable, "-c", launcher, "--mode", f"reverse:{upstream.url}", "-p", "0", "--listen-host",
            "127.0.0.1", "--set", f"confdir={tmp_path / 'confdir'}", "-s", str(clone / "addons" / "inject.py")]
    with Process(argv, _MITM_LISTENING) as proxy:
        port = int(proxy.match.group(2))
        with anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="k", max_retries=0) as client:
            converse(client, "anthropic", "standalone", 1, stream=False)
    (session_id, affinity), = pairs(upstream)
    assert session_id is not None and session_id == affinity
    assert "Traceback" not in proxy.output


def test_bad_option_fails_at_startup(upstream: FakeUpstream, tmp_path: Path) -> None:
    proxy = Mitmdump(upstream.url, options={"affinity_scope": "~~nope("}, confdir=str(tmp_path))
    assert proxy.proc.wait(timeout=20) == 1
    proxy.stop()
    assert "affinity_scope: invalid filter expression '~~nope('" in proxy.output
