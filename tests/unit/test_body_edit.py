"""The prompt_cache_key splice: the key is added and every other byte is kept."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from cachepin.request.body_edit import coding_round_trips, with_prompt_cache_key


@pytest.mark.parametrize(
    "raw",
    [b'{"model":"gpt-5","messages":[]}', b'  {\n  "model": "x"\n}\n', b"{}", b"{ }", b'{"a":"\\u00e9"}'],
)
def test_key_is_added_and_the_rest_kept(raw: bytes) -> None:
    edited = with_prompt_cache_key(raw, "fp_abc")
    assert edited is not None
    parsed = json.loads(edited)
    assert parsed.pop("prompt_cache_key") == "fp_abc"
    assert parsed == json.loads(raw)
    assert edited.replace(b'"prompt_cache_key":"fp_abc"', b"").replace(b"{,", b"{") == raw


@pytest.mark.parametrize("raw", [b"[1]", b"", b"null", b'"text"'])
def test_non_objects_are_left_alone(raw: bytes) -> None:
    assert with_prompt_cache_key(raw, "k") is None


@pytest.mark.parametrize(("coding", "body", "round_trips"), [
    ("gzip", gzip.compress(b"{}"), True),
    (" GZIP ", gzip.compress(b"{}"), True),
    ("gzip", zlib.compress(b"{}"), False),  # mitmproxy decodes it, but would re-encode it as real gzip
    ("gzip", b"{}", False),
    ("deflate", zlib.compress(b"{}"), True),
    ("br", b"anything", True),  # strict decoders: what decodes is what it says
    ("", b"{}", True),
])
def test_coding_round_trips(coding: str, body: bytes, round_trips: bool) -> None:
    assert coding_round_trips(coding, body) is round_trips
