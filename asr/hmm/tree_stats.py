"""Single-Gaussian statistics of context-dependent states (Kaldi's ``acc-tree-stats``).

An *event* is one (left phone, centre phone, right phone, state) seen in an alignment;
its statistics are the frame count, sum and sum of squares of the frames aligned to it.
Utterance edges use the boundary context id ``num_phones``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from asr.hmm.topology import TransitionModel
from asr.hmm.training_set import Alignments, TrainingSet

_LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class TreeStats:
    """Statistics per event.

    Attributes:
        events: [E, 4] int64 rows (left, centre, right, state), sorted, unique.
        stats: [E, 2 D + 1] float64 rows (count, sum x [D], sum x^2 [D]).
        num_phones: phone-set size; context id ``num_phones`` is the utterance boundary.
    """

    events: np.ndarray
    stats: np.ndarray
    num_phones: int

    @property
    def dim(self) -> int:
        return (self.stats.shape[1] - 1) // 2


def context_of_frames(phone_ids: np.ndarray, phone_index: np.ndarray, boundary: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left, centre, right) phone of each entry of ``phone_index`` (positions in ``phone_ids``)."""
    padded = np.concatenate([[boundary], phone_ids, [boundary]])
    return padded[phone_index], padded[phone_index + 1], padded[phone_index + 2]


def accumulate_tree_stats(tm: TransitionModel, data: TrainingSet, ali: Alignments) -> TreeStats:
    """Gather event statistics from chain-position alignments of ``data``."""
    p = len(tm.phones)
    state_of = tm.state_of_hmm_state
    keys, rows = [], []
    for i, pos in enumerate(ali):
        if pos is None:
            continue
        ids = data.phone_ids[i]
        hmm = tm.chain(ids)
        phone_index = np.repeat(np.arange(len(ids)), np.asarray(tm.num_states)[ids])
        left, centre, right = context_of_frames(ids, phone_index[pos], p)
        state = state_of[hmm[pos]]
        keys.append(np.stack([left, centre, right, state], 1))
        rows.append(np.arange(data.offsets[i], data.offsets[i + 1]))
    key = np.concatenate(keys)
    frames = np.concatenate(rows)
    events, inverse = np.unique(key, axis=0, return_inverse=True)
    x = data.feats[frames].double().numpy()
    d = x.shape[1]
    stats = np.zeros((len(events), 2 * d + 1))
    np.add.at(stats[:, 0], inverse, 1.0)
    # Sort once and sum contiguous runs: much faster than np.add.at on matrices.
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(len(events)))
    stats[:, 1: d + 1] = np.add.reduceat(x[order], starts, axis=0)
    stats[:, d + 1:] = np.add.reduceat((x * x)[order], starts, axis=0)
    return TreeStats(events.astype(np.int64), stats, p)


def gaussian_log_like(stats: np.ndarray, var_floor: float = 0.01) -> np.ndarray:
    """Log-likelihood of data under its own ML diagonal Gaussian.

    Args:
        stats: [..., 2 D + 1] rows (count, sum, sum of squares).
        var_floor: variance floor per dimension.

    Returns:
        [...] total log-likelihood in nats (0 where the count is 0).
    """
    d = (stats.shape[-1] - 1) // 2
    n = stats[..., 0]
    safe = np.maximum(n, 1e-10)[..., None]
    mean = stats[..., 1: d + 1] / safe
    var = np.maximum(stats[..., d + 1:] / safe - mean**2, var_floor)
    return np.where(n > 0, -0.5 * n * (d * (1.0 + _LOG_2PI) + np.log(var).sum(-1)), 0.0)
