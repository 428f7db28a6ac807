"""Incremental content decoding: every coding, any chunk cuts, and bad data as one DecodeError."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib
from itertools import pairwise

import brotli
import pytest
from codings import raw_deflate, zstd
from hypothesis import given, settings
from hypothesis import strategies as st

from cachepin.response.decoding import DecodeError, IncrementalDecoder

PLAIN = b"".join(
    b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"word %d"}}\n\n' % i
    for i in range(400)
)



ENCODED = {
    "gzip": gzip.compress(PLAIN),
    "x-gzip": gzip.compress(PLAIN),
    "GZip": gzip.compress(PLAIN),
    "deflate": zlib.compress(PLAIN),
    "br": brotli.compress(PLAIN),
    "zstd": zstd.compress(PLAIN),
    "identity": PLAIN,
    "": PLAIN,
    " ": PLAIN,
    "gzip, br": brotli.compress(gzip.compress(PLAIN)),
    "identity, zstd": zstd.compress(PLAIN),
}
CASES = [*ENCODED.items(), ("deflate", raw_deflate(PLAIN)), ("", gzip.compress(PLAIN))]
CASE_IDS = [*ENCODED, "deflate-raw", "sniffed-gzip"]


def decode_all(encoding: str, chunks: list[bytes], **kwargs: int) -> bytes:
    decoder = IncrementalDecoder(encoding, **kwargs)
    return b"".join(decoder.decode(chunk) for chunk in chunks) + decoder.finish()


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted({p % (len(data) + 1) for p in points}), len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]


@pytest.mark.parametrize("encoding, body", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("size", [1, 2, 3, 7, 100, 4096, 1 << 20])
def test_decodes_whatever_the_chunk_size(encoding: str, body: bytes, size: int) -> None:
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    assert decode_all(encoding, chunks) == PLAIN


@pytest.mark.parametrize("encoding, body", CASES, ids=CASE_IDS)
@settings(max_examples=40, deadline=None)
@given(points=st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=12))
def test_decodes_whatever_the_cuts(encoding: str, body: bytes, points: list[int]) -> None:
    assert decode_all(encoding, cut(body, points)) == PLAIN


@pytest.mark.parametrize("encoding", ["", "identity", "IDENTITY"])
def test_identity_passes_the_very_same_object(encoding: str) -> None:
    decoder = IncrementalDecoder(encoding)
    decoder.decode(b"data: first\n")  # the sniffer decides on the first two bytes
    chunk = b"data: {}\n\n"
    assert decoder.decode(chunk) is chunk


@pytest.mark.parametrize("first", [b"\x1f", b"x"])
def test_a_one_byte_body_without_header_is_given_back_at_the_end(first: bytes) -> None:
    decoder = IncrementalDecoder("")
    assert decoder.decode(first) == b""  # too short to tell gzip from plain yet
    assert decoder.finish() == first


def test_gzip_magic_split_over_two_chunks_is_sniffed() -> None:
    body = gzip.compress(PLAIN)
    decoder = IncrementalDecoder("")
    assert decoder.decode(body[:1]) == b""
    assert decoder.decode(body[1:]) + decoder.finish() == PLAIN


def test_plain_body_starting_like_half_a_gzip_magic_is_not_gzip() -> None:
    assert decode_all("", [b"\x1f", b"plain"]) == b"\x1fplain"


@pytest.mark.parametrize(
    "encoding, body",
    [
        ("gzip", gzip.compress(b"first member ") + gzip.compress(b"second member")),
        ("zstd", zstd.compress(b"first frame ") + zstd.compress(b"second frame")),
        ("deflate", zlib.compress(b"first stream ") + zlib.compress(b"second stream")),
    ],
)
def test_several_members_or_frames_in_a_row(encoding: str, body: bytes) -> None:
    expected = {"gzip": b"first member second member", "zstd": b"first frame second frame"}
    for size in (1, 5, len(body)):
        out = decode_all(encoding, [body[i : i + size] for i in range(0, len(body), size)])
        assert out == expected.get(encoding, b"first stream second stream")


def test_empty_bodies_are_fine_in_every_coding() -> None:
    for encoding in ("gzip", "deflate", "br", "zstd", "", "identity"):
        assert decode_all(encoding, []) == b""


@pytest.mark.parametrize(
    "encoding, body",
    [(e, b) for e, b in CASES if e.strip().lower() not in ("", "identity")],
    ids=[i for (e, _), i in zip(CASES, CASE_IDS, strict=True) if e.strip().lower() not in ("", "identity")],
)
@pytest.mark.parametrize(
    "keep",
    [lambda n: 1, lambda n: 2, lambda n: n // 2, lambda n: n - 1],
    ids=["1 byte", "2 bytes", "half", "all but the last byte"],
)
def test_a_truncated_body_is_a_decode_error_at_the_end(encoding: str, body: bytes, keep) -> None:
    decoder = IncrementalDecoder(encoding)
    decoder.decode(body[: keep(len(body))])
    with pytest.raises(DecodeError, match="truncated"):
        decoder.finish()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd", "gzip, br"])
@pytest.mark.parametrize(
    "garbage",
    [b"this is not compressed at all, it is plain text\n" * 4, bytes(range(256)) * 2],
    ids=["text", "binary"],
)
def test_garbage_is_a_decode_error(encoding: str, garbage: bytes) -> None:
    decoder = IncrementalDecoder(encoding)
    with pytest.raises(DecodeError):
        decoder.decode(garbage)
        decoder.finish()


def test_corruption_in_the_middle_is_a_decode_error() -> None:
    body = bytearray(gzip.compress(PLAIN))
    body[len(body) // 2 : len(body) // 2 + 16] = b"\xff" * 16
    with pytest.raises(DecodeError, match="gzip"):
        decode_all("gzip", [bytes(body)])


@pytest.mark.parametrize("encoding", ["compress", "gzip, snappy", "x-unknown"])
def test_unknown_codings_are_refused_up_front(encoding: str) -> None:
    with pytest.raises(DecodeError, match="unsupported content encoding"):
        IncrementalDecoder(encoding)


def test_decode_error_is_a_value_error() -> None:
    assert issubclass(DecodeError, ValueError)


BOMB_SIZE = 64 * 1024 * 1024
BOMBS = {
    "gzip": lambda: gzip.compress(bytes(BOMB_SIZE), 9),
    "deflate": lambda: zlib.compress(bytes(BOMB_SIZE), 9),
    "br": lambda: brotli.compress(bytes(BOMB_SIZE), quality=1),
    "zstd": lambda: zstd.compress(bytes(BOMB_SIZE)),
}


@pytest.mark.parametrize("encoding", sorted(BOMBS))
def test_a_bomb_chunk_stops_at_the_cap_with_bounded_memory(encoding: str) -> None:
    bomb = BOMBS[encoding]()
    assert len(bomb) < BOMB_SIZE // 100
    decoder = IncrementalDecoder(encoding, max_output=4 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match="decompression bomb"):
            decoder.decode(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024  # a quarter of what the chunk expands to


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd"])
def test_output_up_to_the_cap_is_fine(encoding: str) -> None:
    body = {"gzip": gzip.compress, "br": brotli.compress, "zstd": zstd.compress}[encoding](PLAIN)
    assert decode_all(encoding, [body], max_output=len(PLAIN)) == PLAIN
    with pytest.raises(DecodeError):
        decode_all(encoding, [body], max_output=len(PLAIN) - 1)


def test_without_a_zstd_module_zstd_is_a_decode_error_not_an_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """mitmproxy 12 releases before the backports.zstd switch: the addons still load, zstd bodies warn."""
    from cachepin.response import decoding

    monkeypatch.setattr(decoding, "zstd", None)
    with pytest.raises(DecodeError, match="no zstd decoder"):
        IncrementalDecoder("zstd")
    assert IncrementalDecoder("gzip").decode(gzip.compress(b"still fine")) == b"still fine"
