"""The hot paths' JSON parser: with orjson and without it, every input gives what ``json.loads`` gives.

Both ways run whatever is installed: the module is loaded afresh as a bare
mitmproxy would load it (orjson hidden) and as the ``fast`` extra would (the
orjson case is skipped, saying so, where orjson is not installed). Results are
compared by ``repr``, which tells an int from a float of the same value, -0.0
from 0.0, NaN from anything, and key order; errors by type and message.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Callable
from types import ModuleType
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachepin.request import json_parse

ORJSON_INSTALLED = importlib.util.find_spec("orjson") is not None


def _fresh(*, orjson: bool, env: str | None = None) -> ModuleType:
    """json_parse loaded anew, as a module of its own: orjson importable or not, ``CACHEPIN_JSON`` set or not."""
    spec = importlib.util.spec_from_file_location("json_parse_under_test", json_parse.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    hidden = {} if orjson else {"orjson": None}  # None in sys.modules: ``import orjson`` raises ImportError
    with mock.patch.dict(sys.modules, hidden), mock.patch.dict(os.environ, clear=False) as environ:
        environ.pop("CACHEPIN_JSON", None)
        if env is not None:
            environ["CACHEPIN_JSON"] = env
        spec.loader.exec_module(module)
    return module


STDLIB = _fresh(orjson=False)
FAST = _fresh(orjson=True)
PARSERS = [
    pytest.param(FAST, id="orjson", marks=pytest.mark.skipif(not ORJSON_INSTALLED, reason="orjson is not installed")),
    pytest.param(STDLIB, id="stdlib"),
]


def outcome(parse: Callable[[bytes | str], object], data: bytes | str) -> tuple[object, str]:
    """What parsing ``data`` gives: the result's repr, or the error's type and message; any other error fails."""
    try:
        return "parsed", repr(parse(data))
    except (ValueError, RecursionError) as error:
        return type(error), str(error)


def test_orjson_is_used_exactly_when_it_can_be_imported() -> None:
    assert FAST.FAST is ORJSON_INSTALLED and FAST.PARSER == ("orjson" if ORJSON_INSTALLED else "json")
    assert not STDLIB.FAST and STDLIB.PARSER == "json"
    assert json_parse.FAST is (ORJSON_INSTALLED and os.environ.get("CACHEPIN_JSON") != "stdlib")


@pytest.mark.skipif(not ORJSON_INSTALLED, reason="orjson is not installed")
def test_cachepin_json_stdlib_leaves_orjson_unused() -> None:
    assert not _fresh(orjson=True, env="stdlib").FAST
    assert _fresh(orjson=True, env="orjson").FAST


EDGES = [
    # where orjson raises and json parses: json answers
    b"NaN", b"[Infinity, -Infinity]", b"[1e400]", b"-1e400", b"1" + b"0" * 400 + b".0", b"1.7976931348623159e308",
    b'"\\ud800"', b'"\\udc00\\ud800"', b'"\xed\xa0\x80"', '"\ud800"', b"\xef\xbb\xbf{}", b"\xef\xbb\xbf\"x\"",
    '{"a": 1}'.encode("utf-16"), '{"a": 1}'.encode("utf-16-le"), '{"a": 1}'.encode("utf-32"), b"1\x00",
    b"[" * 1025 + b"]" * 1025,
    # where orjson answers with a float: json's integer
    b"-9223372036854775809", b"18446744073709551616", b"[99999999999999999999]", b'{"n": -' + b"9" * 40 + b"}",
    b"9223372036854775807", b"-9223372036854775808", b"18446744073709551615", b"[1e19, -9.3e18]",
    # alike in both
    b" {} ", "\t[]\n", b"-0", b"-0.0", b"1E2", b"0.1000000000000000055511151231257827021181583404541015625",
    b"2.4703282292062327e-324", b"2.4703282292062328e-324", b"9007199254740993", b"9007199254740993.0",
    b'{"a":1,"b":2,"a":3}', b'"\\ud83d\\ude00"', b'"\\uD83D\\uDE00"', b'{"\\u0000":"\\/"}', b'"\x7f"',
    # errors: json's own, in both
    b"", b" ", "\ufeff{}", b" \xef\xbb\xbf{}", b"\x0c{}", "\u00a0{}", b"[1,]", b"01", b'"\x1f"', b"nul",
    b'{"a":1}garbage', b'"\xff"', b"\xff\xfe\xff",
]


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("data", EDGES, ids=lambda data: repr(data)[:40])
def test_where_orjson_and_json_differ_json_answers(parser: ModuleType, data: bytes | str) -> None:
    assert outcome(parser.loads, data) == outcome(json.loads, data)


def parses(parse: Callable[[bytes], object], data: bytes) -> bool:
    try:
        parse(data)
    except RecursionError:
        return False
    return True


@pytest.mark.parametrize("parser", PARSERS)
def test_nesting_as_deep_as_json_can_go_parses_alike(parser: ModuleType) -> None:
    """json's limit (about 1500 arrays in CPython 3.12) is past orjson's 1024: it decides at it and one past it."""
    low, high = 1, 1 << 16  # json parses ``low`` levels and fails at ``high``
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if parses(json.loads, b"[" * middle + b"]" * middle) else (low, middle)
    assert low > 1024
    assert parses(parser.loads, b"[" * low + b"]" * low)
    assert not parses(parser.loads, b"[" * high + b"]" * high)


NUMBERS = st.one_of(
    st.integers(), st.integers(-(2**65), 2**65), st.floats(),
    st.integers(-(2**64), 2**65).map(lambda n: float(n) if n % 3 else n),
)
VALUES = st.recursive(
    st.none() | st.booleans() | NUMBERS | st.text(st.characters(exclude_categories=())),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=40,
)


@pytest.mark.parametrize("parser", PARSERS)
@given(value=VALUES, ascii_only=st.booleans(), indent=st.sampled_from([None, 0, 2]), as_bytes=st.booleans(),
       padding=st.sampled_from(["", " ", "\n", "\r\n\t "]))
def test_any_json_document_parses_as_json_parses_it(parser: ModuleType, value: object, ascii_only: bool,
                                                    indent: int | None, as_bytes: bool, padding: str) -> None:
    text = padding + json.dumps(value, ensure_ascii=ascii_only, indent=indent) + padding
    data = text.encode("utf-8", "surrogatepass") if as_bytes else text
    assert outcome(parser.loads, data) == outcome(json.loads, data)


FRAGMENTS = [
    b"{", b"}", b"[", b"]", b":", b",", b'"', b'"k"', b" ", b"\t", b"\n", b"\x0c", b"\x00", b"1", b"-", b"0", b".",
    b"e", b"1" * 20, b"9" * 19, b"NaN", b"Infinity", b"-Infinity", b"true", b"null", b"\\", b"\\u", b"d800", b"dc00",
    b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\xff", b"\xfe", b"\xc3\xa9", b"\xe2\x86\x92", b"\xf0\x9f\x98\x80", b"\xc3",
]
NEAR_JSON = st.one_of(st.binary(max_size=64), st.lists(st.sampled_from(FRAGMENTS), max_size=24).map(b"".join))


@pytest.mark.parametrize("parser", PARSERS)
@given(data=NEAR_JSON, as_text=st.booleans())
def test_near_json_bytes_parse_or_fail_as_json_does(parser: ModuleType, data: bytes, as_text: bool) -> None:
    document: bytes | str = data.decode("utf-8", "surrogateescape") if as_text else data
    assert outcome(parser.loads, document) == outcome(json.loads, document)
