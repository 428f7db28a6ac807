"""The request tee: chunks pass unchanged and are kept; the body becomes the request's content once it passed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cachepin.request.dialects import Dialect
from cachepin.request.tee import WANT_THE_REQUEST, RequestTee, may_stream, settle


def request(stream: object, content: bytes | None = None) -> SimpleNamespace:
    return SimpleNamespace(stream=stream, data=SimpleNamespace(content=content))


@pytest.mark.parametrize("chunks", [[], [b"{}"], [b'{"a"', b": ", b"1}"], [b"x" * 100_000] * 5])
def test_chunks_pass_unchanged_and_the_body_is_kept(chunks: list[bytes]) -> None:
    tee = RequestTee()
    assert [tee(chunk) for chunk in chunks] == chunks
    assert not tee.ended
    assert tee(b"") == b"" and tee.ended
    flow_request = request(tee)
    settle(flow_request)
    assert flow_request.data.content == b"".join(chunks)
    assert tee.body() is flow_request.data.content  # joined once, held once


@pytest.mark.parametrize("stream, ended, content, expected", [
    (False, True, None, None),  # not streamed by the tee: nothing to settle
    (True, True, None, None),  # streamed by stream_large_bodies: mitmproxy keeps no body, nor does cachepin
    ("tee", False, None, None),  # not ended (the request hook of a stream that broke does not run; be safe)
    ("tee", True, b"stored", b"stored"),  # store_streamed_bodies kept it already
])
def test_only_an_ended_tee_settles_a_request_without_content(stream: object, ended: bool, content: bytes | None,
                                                            expected: bytes | None) -> None:
    tee = RequestTee()
    tee(b"body")
    if ended:
        tee(b"")
    flow_request = request(tee if stream == "tee" else stream, content)
    settle(flow_request)
    assert flow_request.data.content == expected


@pytest.mark.parametrize("options, streams", [
    ({"affinity_stream_requests": True}, True),
    ({"affinity_stream_requests": False}, False),
    *(({"affinity_stream_requests": True, name: value}, False) for name in WANT_THE_REQUEST
      for value in (True, ["|/x|y"], "10m")),
    ({"affinity_stream_requests": True, "modify_body": [], "server_replay": [], "stickyauth": None,
      "anticache": False, "body_size_limit": None, "cache_diagnostics": False}, True),
])
def test_streaming_waits_for_nobody(options: dict[str, object], streams: bool) -> None:
    assert may_stream(SimpleNamespace(**options), Dialect.ANTHROPIC) is streams


@pytest.mark.parametrize("dialect, streams", [(Dialect.ANTHROPIC, True), (Dialect.OPENAI_CHAT, False),
                                              (Dialect.OPENAI_RESPONSES, False), (None, False)])
def test_prompt_cache_key_keeps_openai_bodies_and_only_llm_requests_stream(dialect: Dialect | None,
                                                                         streams: bool) -> None:
    options = SimpleNamespace(affinity_stream_requests=True, affinity_prompt_cache_key=True)
    assert may_stream(options, dialect) is streams
