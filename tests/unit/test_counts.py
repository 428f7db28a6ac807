"""Counts and Sums: sums of turns, and sums of sums (how folded turns join the ones held) equal to one sum."""

from __future__ import annotations

import pytest

from cachepin.turns.counts import Counts, Sums
from cachepin.turns.pricing import Cost
from cachepin.turns.turn import Turn, Verdict

FIGURES: list[tuple[int | None, int | None, int | None, int | None]] = [
    (10, 900, 0, 7), (12, 0, 900, 8), (None, None, None, None), (9, None, None, 3), (1, 2, 3_000, None)]


def turn(figures: tuple[int | None, ...], *, opens: bool = False, status: int = 200) -> Turn:
    input_tokens, creation, read, output = figures
    verdict = Verdict.ERROR if status != 200 else Verdict.HIT if read else Verdict.MISS
    return Turn(index=1, flow_id="f", started_at=0.0, status=status, stream=False, verdict=verdict, provider="x",
                input_tokens=input_tokens, cache_creation_input_tokens=creation, cache_read_input_tokens=read,
                output_tokens=output, opens=opens)


def price(turn: Turn) -> Cost | None:
    return None if turn.output_tokens is None else Cost(turn.output_tokens / 3, turn.output_tokens / 2)


def turns() -> list[Turn]:
    made = [turn(figures, opens=n == 0) for n, figures in enumerate(FIGURES)]
    return [*made, turn((None, None, None, None), status=529), turn(FIGURES[1], opens=True)]


@pytest.mark.parametrize("cut", range(len(turns()) + 1))
def test_merged_counts_are_the_counts_of_all_the_turns(cut: int) -> None:
    ok = [t for t in turns() if t.ok]
    merged = Counts.of(ok[:cut], price)
    merged.merge(Counts.of(ok[cut:], price))
    assert merged == Counts.of(ok, price)


def test_a_figure_neither_side_reported_stays_na() -> None:
    counts = Counts.of([turn((None, None, None, 4))])
    counts.merge(Counts.of([turn((None, None, None, None))]))
    assert (counts.input_tokens, counts.cache_read_input_tokens, counts.output_tokens) == (None, None, 4)
    assert counts.hit_ratio is None and counts.cost is None


@pytest.mark.parametrize("cut", range(len(turns()) + 1))
def test_merged_sums_are_the_sums_of_all_the_turns(cut: int) -> None:
    every = turns()
    merged = Sums.of(every[:cut], price)
    merged.merge(Sums.of(every[cut:], price))
    whole = Sums.of(every, price)
    assert merged == whole
    assert (whole.turns, whole.errors, whole.counts.requests, whole.judged.requests) == (7, 1, 6, 4)
    assert whole.counts == Counts.of((t for t in every if t.ok), price)
    assert whole.judged == Counts.of((t for t in every if t.ok and not t.opens), price)
