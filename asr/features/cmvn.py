"""Cepstral mean and variance normalisation with Kaldi-format statistics.

Kaldi keeps CMVN statistics as a [2, dim + 1] float64 matrix: row 0 holds the per-dim
sums and, last, the frame count; row 1 the per-dim sums of squares and a 0. Stats of
several utterances (a speaker) are added together; ``compute-cmvn-stats`` and
``apply-cmvn`` read and write exactly this layout.
"""

from __future__ import annotations

import numpy as np

# Kaldi floors the variance before taking 1 / sqrt.
_VAR_FLOOR = 1.0e-20


def cmvn_stats(feats: np.ndarray) -> np.ndarray:
    """Statistics of one utterance.

    Args:
        feats: [frames, dim].

    Returns:
        [2, dim + 1] float64: (sums, count) and (sums of squares, 0).
    """
    x = np.asarray(feats, dtype=np.float64)
    stats = np.zeros((2, x.shape[1] + 1), dtype=np.float64)
    stats[0, :-1] = x.sum(axis=0)
    stats[0, -1] = x.shape[0]
    stats[1, :-1] = np.square(x).sum(axis=0)
    return stats


def apply_cmvn(feats: np.ndarray, stats: np.ndarray, norm_vars: bool = False) -> np.ndarray:
    """Normalise features with (speaker) statistics, as Kaldi ``apply-cmvn``.

    Args:
        feats: [frames, dim].
        stats: [2, dim + 1] from :func:`cmvn_stats` (summed over utterances).
        norm_vars: also scale to unit variance.

    Returns:
        [frames, dim] float32, a new array.
    """
    dim = feats.shape[1]
    if stats.shape != (2, dim + 1):
        raise ValueError(f"CMVN stats of shape {stats.shape} do not fit features of dim {dim}")
    count = stats[0, -1]
    if count < 1:
        raise ValueError("CMVN stats have a frame count below 1")
    mean = stats[0, :-1] / count
    if not norm_vars:
        return (feats - mean).astype(np.float32)
    var = np.maximum(stats[1, :-1] / count - np.square(mean), _VAR_FLOOR)
    scale = 1.0 / np.sqrt(var)
    return (feats * scale - mean * scale).astype(np.float32)
