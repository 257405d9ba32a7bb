"""Automatic phone questions by top-down Gaussian clustering (Kaldi's ``cluster-phones``).

Each phone is summarised by the statistics of its middle state pooled over contexts.
The set of phones is split recursively in two by 2-means with a Gaussian likelihood
criterion; every set produced on the way is a question ("is the context phone in S?").
"""

from __future__ import annotations

import numpy as np

from asr.hmm.tree_stats import TreeStats


def phone_stats(stats: TreeStats, num_states: list[int]) -> np.ndarray:
    """[num_phones, 2 D + 1] statistics of each phone's middle state, pooled over contexts."""
    out = np.zeros((stats.num_phones, stats.stats.shape[1]))
    centre, state = stats.events[:, 1], stats.events[:, 3]
    middle = np.asarray(num_states)[centre] // 2
    sel = state == middle
    np.add.at(out, centre[sel], stats.stats[sel])
    return out


def _expected_log_like(phone: np.ndarray, cluster: np.ndarray, var_floor: float) -> np.ndarray:
    """[P, C] log-likelihood of each phone's frames under each cluster's ML Gaussian."""
    d = (phone.shape[1] - 1) // 2
    n_c = np.maximum(cluster[:, :1], 1e-10)
    mu = cluster[:, 1: d + 1] / n_c  # [C, D]
    var = np.maximum(cluster[:, d + 1:] / n_c - mu**2, var_floor)
    n, s, s2 = phone[:, :1], phone[:, 1: d + 1], phone[:, d + 1:]
    # sum_t (x - mu)^2 / var = (s2 - 2 mu s + n mu^2) / var, per dim
    quad = (s2 / 1.0) @ (1 / var).T - 2 * s @ (mu / var).T + n * ((mu**2 / var).sum(1))[None]
    return -0.5 * (n * (d * np.log(2 * np.pi) + np.log(var).sum(1))[None] + quad)


def _split_two(members: list[int], stats: np.ndarray, var_floor: float, max_iters: int = 20
               ) -> tuple[list[int], list[int]] | None:
    d = (stats.shape[1] - 1) // 2
    x = stats[members]
    means = x[:, 1: d + 1] / np.maximum(x[:, :1], 1e-10)
    # Initial split: halves along the principal axis of the phone means (deterministic).
    centred = means - means.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    proj = centred @ vt[0]
    if vt[0][np.argmax(np.abs(vt[0]))] < 0:
        proj = -proj  # fix the SVD sign so results do not depend on LAPACK
    assign = (proj > np.median(proj)).astype(int)
    if assign.min() == assign.max():
        assign = (np.argsort(np.argsort(proj)) >= len(members) // 2).astype(int)
    for _ in range(max_iters):
        clusters = np.stack([x[assign == c].sum(0) for c in (0, 1)])
        new = np.argmax(_expected_log_like(x, clusters, var_floor), 1)
        if new.min() == new.max() or np.array_equal(new, assign):
            break
        assign = new
    a = [m for m, c in zip(members, assign) if c == 0]
    b = [m for m, c in zip(members, assign) if c == 1]
    return (a, b) if a and b else None


def cluster_phones(stats: TreeStats, num_states: list[int], var_floor: float = 0.01) -> list[frozenset[int]]:
    """Questions (phone-id sets) from top-down clustering of the phones seen in ``stats``.

    Returns every set of the clustering tree below the root (singletons included), plus
    the singleton of the boundary context ``num_phones``, in a deterministic order.
    """
    ps = phone_stats(stats, num_states)
    seen = [p for p in range(stats.num_phones) if ps[p, 0] > 0]
    questions: list[frozenset[int]] = []
    todo = [seen]
    while todo:
        members = todo.pop(0)
        if len(members) < 2:
            continue
        split = _split_two(members, ps, var_floor)
        if split is None:
            continue
        for part in split:
            questions.append(frozenset(part))
            todo.append(part)
    questions.append(frozenset([stats.num_phones]))
    # Unique, keeping the first occurrence.
    return list(dict.fromkeys(questions))

