"""How a turn's numbers and flow id fit in a third of the memory they would take as Python objects.

A ledger holds ``max_sessions`` sessions of turns for days, so a turn packs
its nine numbers into one bytes object and its flow id into 16 bytes. This is
memory engineering only: ``turn.Turn`` reads the packed values back as plain
attributes, and nothing else needs to know.
"""

from __future__ import annotations

import re
import struct
from typing import Protocol

_FIGURES = struct.Struct("<6q3d")  # the six counts (-1: none), started_at, ttft_ms, duration_ms (NaN: none)
_COUNT = struct.Struct("<q")
COUNTS = struct.Struct("<6q")
_TIME = struct.Struct("<d")
NO_COUNT = -1
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MAX_COUNT = 2**63 - 1


class Packed(Protocol):
    """What carries packed figures (a ``turn.Turn``)."""

    _figures: bytes | tuple


class Figure[T: (int, float)]:
    """One of a turn's packed numbers, read as an attribute: a count (``Figure[int]``) or a time."""

    def __init__(self, index: int) -> None:
        self._index = index
        self._is_time = index >= 6

    def __get__(self, turn: Packed | None, owner: type | None = None) -> T | None:
        if turn is None:
            return self  # type: ignore[return-value]  # the class attribute itself
        figures = turn._figures
        if isinstance(figures, tuple):
            return figures[self._index]
        if self._is_time:
            value = _TIME.unpack_from(figures, 8 * self._index)[0]
            return None if value != value else value  # NaN: none
        value = _COUNT.unpack_from(figures, 8 * self._index)[0]
        return None if value == NO_COUNT else value


def pack(counts: tuple[int | None, ...], times: tuple[float | None, ...]) -> bytes | tuple:
    """Nine numbers in one 105-byte object instead of nine (~190 bytes with their slots).

    Only values that come back exactly are packed (ints and floats of the right
    type and range); anything else, like a count beyond 64 bits from an odd
    upstream, is kept as it came, in a tuple.
    """
    if all(c is None or (type(c) is int and 0 <= c <= _MAX_COUNT) for c in counts) and all(
        t is None or (type(t) is float and t == t) for t in times
    ):
        return _FIGURES.pack(*(NO_COUNT if c is None else c for c in counts),
                             *(float("nan") if t is None else t for t in times))
    return (*counts, *times)


def pack_flow_id(flow_id: str) -> bytes | str:
    """mitmproxy's flow ids are UUIDs: their 16 bytes (49 in memory) instead of 36 characters (77).

    Only the canonical form is packed, the one ``str(uuid.UUID(...))`` gives back.
    """
    if isinstance(flow_id, str) and _CANONICAL_UUID.fullmatch(flow_id):
        return bytes.fromhex(flow_id.replace("-", ""))
    return flow_id
