"""Viterbi alignment of utterances to their linear left-to-right state chains.

A phone transcript expands to a chain of S emitting states (``TransitionModel.chain``);
each frame either stays in its state or moves to the next one. For a linear chain the
exact Viterbi search is a loop over frames of vector operations over states, batched
over utterances, so no beam is needed and no search error is possible: an utterance
fails to align only when it has fewer frames than its chain has states.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def equal_alignment(num_frames: int, num_states: int) -> np.ndarray | None:
    """Split ``num_frames`` frames as evenly as possible over ``num_states`` chain states.

    Returns:
        [num_frames] int64 chain position of each frame, or None if ``num_frames < num_states``.
    """
    if num_frames < num_states or num_states == 0:
        return None
    return (np.arange(num_frames, dtype=np.int64) * num_states) // num_frames


def viterbi_batch(emissions: list[torch.Tensor], log_loop: list[torch.Tensor],
                  log_forward: list[torch.Tensor]) -> list[tuple[np.ndarray, float] | None]:
    """Best state sequence of each utterance through its linear chain.

    The path starts in state 0 at frame 0 and ends in state S-1 at frame T-1.

    Args:
        emissions: per utterance, [T_b, S_b] log-likelihood of each frame in each chain state.
        log_loop: per utterance, [S_b] log self-loop probability of each chain state.
        log_forward: per utterance, [S_b] log probability of moving from state s to s+1.

    Returns:
        Per utterance, (positions [T_b] int64 chain state of each frame, path log score)
        or None when no path exists (T_b < S_b).
    """
    b = len(emissions)
    if b == 0:
        return []
    lengths = [int(e.shape[0]) for e in emissions]
    sizes = [int(e.shape[1]) for e in emissions]
    t_max, s_max = max(lengths), max(sizes)
    neg = -math.inf
    em = torch.full((b, t_max, s_max), neg, dtype=torch.float32)
    loop = torch.full((b, s_max), neg, dtype=torch.float32)
    fwd = torch.full((b, s_max), neg, dtype=torch.float32)
    for i, (e, lo, fo) in enumerate(zip(emissions, log_loop, log_forward)):
        em[i, : lengths[i], : sizes[i]] = e
        loop[i, : sizes[i]] = lo
        fwd[i, : sizes[i]] = fo
    ends: dict[int, list[int]] = {}
    for i, t in enumerate(lengths):
        ends.setdefault(t - 1, []).append(i)
    last_state = torch.tensor(sizes) - 1
    final = torch.full((b,), neg, dtype=torch.float64)

    came_from_prev = torch.zeros((b, t_max, s_max), dtype=torch.bool)
    delta = torch.full((b, s_max), neg, dtype=torch.float32)
    delta[:, 0] = em[:, 0, 0]
    pad = torch.full((b, 1), neg, dtype=torch.float32)
    for t in range(t_max):
        if t > 0:
            stay = delta + loop
            move = torch.cat([pad, (delta + fwd)[:, :-1]], 1)
            came_from_prev[:, t] = move > stay
            delta = torch.maximum(stay, move).add_(em[:, t])
        for i in ends.get(t, ()):
            final[i] = float(delta[i, last_state[i]])

    # Backtrace all utterances together, each starting from its own last frame.
    bp = came_from_prev.numpy()
    cur = last_state.numpy().copy()
    lens = np.array(lengths)
    positions = np.zeros((b, t_max), dtype=np.int64)
    rows = np.arange(b)
    for t in range(t_max - 1, -1, -1):
        positions[:, t] = cur
        if t > 0:
            active = t <= lens - 1
            cur = cur - (bp[rows, t, cur] & active)
    out: list[tuple[np.ndarray, float] | None] = []
    for i in range(b):
        ok = math.isfinite(float(final[i])) and positions[i, 0] == 0
        out.append((positions[i, : lengths[i]].copy(), float(final[i])) if ok else None)
    return out
