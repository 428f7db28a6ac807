"""The body splices (prompt_cache_key, the providers' diagnostics fields): the member is added and every other byte
is kept."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from cachepin.request.body_edit import (
    coding_round_trips,
    exact_body,
    prompt_cache_key_edit,
    with_member,
    with_nested_member,
    with_prompt_cache_key,
)


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


@pytest.mark.parametrize(("decoded", "coding", "raw", "exact"), [
    (b"{}", "", b"{}", b"{}"),
    (b"{}", "gzip", gzip.compress(b"{}"), b"{}"),
    (b"{}", "deflate", zlib.compress(b"{}"), b"{}"),
    (b"{}", "gzip", zlib.compress(b"{}"), None),  # zlib labelled gzip: the edit would go upstream as real gzip
    (None, "br", b"not brotli", None),  # did not decode
])
def test_exact_body(decoded: bytes | None, coding: str, raw: bytes, exact: bytes | None) -> None:
    assert exact_body(decoded, coding, raw) == exact


KEYED = b'{"prompt_cache_key":"fp_abc","model":"gpt-5"}'
LABELLED_GZIP = ("prompt_cache_key not added: the body is labelled 'gzip' but is not in that format, "
                 "and re-encoding it would change more than the key")


@pytest.mark.parametrize(("decoded", "coding", "raw", "body", "session_id", "edit"), [
    (b'{"model":"gpt-5"}', "", b'{"model":"gpt-5"}', None, "fp_abc", (KEYED, [])),
    (b'{"model":"gpt-5"}', "gzip", gzip.compress(b'{"model":"gpt-5"}'), {"model": "gpt-5"}, "fp_abc", (KEYED, [])),
    (b'{"model":"gpt-5"}', "gzip", zlib.compress(b'{"model":"gpt-5"}'), None, "fp_abc", (None, [LABELLED_GZIP])),
    (b'{"model":"gpt-5"}', "", b'{"model":"gpt-5"}', None, "k" * 65,
     (None, ["session id is 65 characters, over OpenAI's 64 for prompt_cache_key; not added"])),
    (b'{"model":"gpt-5"}', "gzip", zlib.compress(b'{"model":"gpt-5"}'), None, "k" * 65,
     (None, [LABELLED_GZIP])),  # the first problem only
    (b'{"model":"gpt-5"}', "", b'{"model":"gpt-5"}', None, "k" * 64,
     (b'{"prompt_cache_key":"' + b"k" * 64 + b'","model":"gpt-5"}', [])),
    (KEYED, "", KEYED, None, "fp_other", (None, [])),  # the client's own key stays
    (b'{"model":"gpt-5"}', "", b'{"model":"gpt-5"}', {"prompt_cache_key": "x"}, "fp_abc",
     (None, [])),  # the parse given is what counts
    (b"[1]", "gzip", zlib.compress(b"[1]"), None, "fp_abc", (None, [])),  # no object: not a word
    (b"", "", b"", None, "fp_abc", (None, [])),
    (None, "br", b"not brotli", {"model": "gpt-5"}, "fp_abc", (None, [])),  # did not decode
])
def test_prompt_cache_key_edit(decoded: bytes | None, coding: str, raw: bytes, body: dict | None, session_id: str,
                               edit: tuple[bytes | None, list[str]]) -> None:
    assert prompt_cache_key_edit(decoded, coding, raw, body, session_id) == edit


# --- members of nested objects (cache_diagnostics: prompt_cache_options.comparison_response_id) -----------------

@pytest.mark.parametrize("raw", [
    b'{"model":"gpt-5.6","prompt_cache_options":{"ttl":"30m"},"input":"hi"}',
    b'{\n  "prompt_cache_options" : { },\n  "input": [{"content": "caf\xc3\xa9 {\\"prompt_cache_options\\": {}}"}]\n}',
    b'{"input":"\\u00e9\xe2\x82\xac","prompt_cache_options":{"mode":"explicit","ttl":"30m"}} \n',
    b'{"a":{"prompt_cache_options":{}},"prompt_cache_options":{"x":[1,{"y":null}]}}',
])
def test_a_nested_member_is_added_and_the_rest_kept(raw: bytes) -> None:
    edited = with_nested_member(raw, "prompt_cache_options", "comparison_response_id", "resp_1")
    assert edited is not None
    parsed, original = json.loads(edited), json.loads(raw)
    assert parsed["prompt_cache_options"].pop("comparison_response_id") == "resp_1"
    assert parsed == original
    assert edited.replace(b'"comparison_response_id":"resp_1"', b"", 1).replace(b"{,", b"{") == raw


@pytest.mark.parametrize("raw", [
    b'{"prompt_cache_options":null}',  # no object to add to
    b'{"prompt_cache_options":"30m"}',
    b'{"input":"hi"}',  # no such member
    b'{"prompt_cache_options":{},"prompt_cache_options":{}}',  # twice: which one counts is the parser's guess
    b'{"prompt_cache_options":{}',  # no JSON at all
    b'{"prompt_cache_options":{}} trailing',
    b'[{"prompt_cache_options":{}}]',
    b'\xef\xbb\xbf{"prompt_cache_options":{}}',  # a BOM: not the text we could splice in exactly
    b'{"prompt_cache_options":{"ttl":"\xff"}}',  # not UTF-8
    b"",
])
def test_no_nested_member_where_the_place_is_in_doubt(raw: bytes) -> None:
    assert with_nested_member(raw, "prompt_cache_options", "comparison_response_id", "resp_1") is None


@pytest.mark.parametrize("value", [None, {"previous_message_id": None}, {"previous_message_id": "msg_\u00e9"}, [1]])
def test_any_json_value_is_spliced_compact_and_ascii(value: object) -> None:
    edited = with_member(b'{"model": "claude-opus-4-8"}', "diagnostics", value)
    assert edited is not None and edited.isascii()
    assert json.loads(edited) == {"diagnostics": value, "model": "claude-opus-4-8"}
    assert edited.startswith(b'{"diagnostics":' + json.dumps(value, separators=(",", ":")).encode() + b",")
