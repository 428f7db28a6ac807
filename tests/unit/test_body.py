"""The request body parsed once: a stashed parse is reused only for the very bytes it was made from."""

from __future__ import annotations

import pytest

from cachepin.request.body import parse_json_object, reuse


def fresh(data: bytes) -> bytes:
    """A new bytes object with this content (literals are shared constants)."""
    return bytes(bytearray(data))


def test_a_stashed_parse_serves_the_same_bytes_object() -> None:
    raw = fresh(b'{"model": "m", "messages": []}')
    first = parse_json_object(raw)
    assert first == {"model": "m", "messages": []}
    assert reuse((raw, first), raw) is first


def test_equal_content_in_another_object_is_parsed_again() -> None:
    raw, other = fresh(b'{"a": 1}'), fresh(b'{"a": 1}')
    first = parse_json_object(raw)
    assert reuse((raw, first), other) is None  # another object: the body was edited since
    second = parse_json_object(other)
    assert second == first and second is not first


@pytest.mark.parametrize("data", [None, b"", b"not json", b"[1, 2]"])
def test_reuse_never_parses_and_never_invents(data: bytes | None) -> None:
    raw = fresh(data) if data else data
    assert reuse((raw, parse_json_object(raw)), raw) is None
    assert parse_json_object(raw) is None
    assert reuse(None, raw) is None and reuse((raw,), raw) is None


@pytest.mark.parametrize(
    "data, expected",
    [(b'{"a": 1}', {"a": 1}), (b"[1, 2]", None), (b"not json", None), (b"", None), (None, None),
     (b"\xff\xfe garbage", None), (b"[" * 100_000, None)],
)
def test_parse_json_object(data: bytes | None, expected: dict | None) -> None:
    assert parse_json_object(data) == expected
