"""Context splicing (Kaldi ``splice-feats``) as a strided view of an edge-padded copy."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def splice_frames(feats: np.ndarray, left: int, right: int) -> np.ndarray:
    """Stack each frame with ``left`` previous and ``right`` following frames.

    Args:
        feats: [frames, dim].
        left, right: context frames; out-of-range frames repeat the first / last frame.

    Returns:
        [frames, dim * (left + 1 + right)], row t = [x[t-left], ..., x[t], ..., x[t+right]].
        A read-only view of one padded copy of ``feats`` ([frames + left + right, dim]),
        so memory grows by the context, not by the splice width.
    """
    if left == 0 and right == 0:
        return feats
    num_frames, dim = feats.shape
    padded = np.pad(np.ascontiguousarray(feats), ((left, right), (0, 0)), mode="edge")
    # Consecutive rows of a C-contiguous matrix are adjacent in memory, so the window
    # of (left + 1 + right) rows starting at row t is one flat run of numbers.
    item = padded.itemsize
    return as_strided(
        padded, shape=(num_frames, dim * (left + 1 + right)), strides=(dim * item, item), writeable=False
    )
