"""Kaldi delta features (``add-deltas``): regression deltas with edge frames replicated."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=8)
def delta_windows(order: int, window: int = 2) -> tuple[np.ndarray, ...]:
    """Filters of orders 0..``order``; filter i has ``1 + 2 * i * window`` taps.

    Order 1 is the least-squares slope ``j / sum(k^2)`` over ``-window..window``; each
    higher order convolves the previous one with it (Kaldi's ``DeltaFeatures``).
    """
    first = np.arange(-window, window + 1, dtype=np.float64)
    first /= np.square(first).sum()
    filters = [np.ones(1)]
    for _ in range(order):
        filters.append(np.convolve(filters[-1], first))
    return tuple(filters)


def add_deltas(feats: np.ndarray, order: int = 2, window: int = 2) -> np.ndarray:
    """Append delta (and delta-delta, ...) features.

    Args:
        feats: [frames, dim].
        order: highest delta order (0 returns ``feats`` unchanged; Kaldi default 2).
        window: regression half-width in frames (Kaldi default 2).

    Returns:
        [frames, dim * (order + 1)] float32: blocks [x, delta, delta-delta, ...].
    """
    if order == 0:
        return feats
    num_frames = feats.shape[0]
    filters = delta_windows(order, window)
    reach = order * window
    # Out-of-range frames are the first / last frame (Kaldi clamps indices).
    padded = np.pad(np.asarray(feats, dtype=np.float32), ((reach, reach), (0, 0)), mode="edge")
    blocks = [np.asarray(feats, dtype=np.float32)]
    for taps in filters[1:]:
        half = len(taps) // 2
        acc = np.zeros(feats.shape, dtype=np.float64)
        for j, w in enumerate(taps):
            if w != 0.0:
                start = reach - half + j
                acc += w * padded[start : start + num_frames]
        blocks.append(acc.astype(np.float32))
    return np.concatenate(blocks, axis=1)
