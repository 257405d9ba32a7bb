"""Tuning decoding values on the dev set: one generic sweep over a bounded grid.

Every decoder tunes the same way: each utterance's score matrix is computed once, each
grid point decodes it, and the grid point with the lowest error rate on the tuning set
wins (ties go to the first listed). The grid is whatever the decoder exposes (acoustic
scale for GMMs; acoustic scale with prior scale and insertion or blank penalty for
networks). Only the dev set is ever passed here; the chosen values are then applied
unchanged to every test set.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from asr.errors import AsrError

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    """Outcome of :func:`sweep`.

    Attributes:
        best: the winning grid point (name -> value).
        table: every grid point with its error rate (percent), in grid order.
        best_hyps: utt -> tokens decoded at the best point.
    """

    best: dict[str, float]
    table: list[tuple[dict[str, float], float]]
    best_hyps: dict[str, list[str]]


def grid_points(grid: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    """All combinations of a grid, first name varying slowest.

    >>> grid_points({"a": [1, 2], "b": [0]})
    [{'a': 1, 'b': 0}, {'a': 2, 'b': 0}]
    """
    if not grid or any(len(v) == 0 for v in grid.values()):
        raise AsrError(f"tuning: empty grid {dict(grid)}")
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]


def sweep(grid: Mapping[str, Sequence[float]], utts: Iterable[str], prepare: Callable[[str], Any],
          decode: Callable[[Any, dict[str, float]], list[str] | None],
          error_rate: Callable[[dict[str, list[str]]], float]) -> SweepResult:
    """Decode the tuning set at every grid point and keep the best.

    Args:
        grid: name -> candidate values.
        utts: the tuning set's utterances.
        prepare: utt -> its score matrix (computed once per utterance).
        decode: (matrix, grid point) -> tokens, or None when the search found no path.
        error_rate: utt -> tokens of a whole set -> error rate in percent.

    Returns:
        the best point, the table and the best point's hypotheses.
    """
    points = grid_points(grid)
    hyps: list[dict[str, list[str]]] = [{} for _ in points]
    for utt in utts:
        matrix = prepare(utt)
        for i, p in enumerate(points):
            tokens = decode(matrix, p)
            if tokens is not None:
                hyps[i][utt] = tokens
    table = []
    for p, h in zip(points, hyps):
        err = error_rate(h)
        table.append((p, err))
        log.info("tuning: %s: error rate %.2f%% on the tuning set",
                 ", ".join(f"{k} {v:g}" for k, v in p.items()), err)
    best = min(range(len(points)), key=lambda i: table[i][1])
    return SweepResult(points[best], table, hyps[best])
