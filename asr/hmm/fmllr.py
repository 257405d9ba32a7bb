"""Feature-space MLLR (constrained MLLR) for diagonal GMMs (Gales 1998).

A transform ``W = [A b]`` ([D, D+1]) maps a frame ``x`` to ``A x + b``. For a diagonal
model, the auxiliary function of W given Gaussian posteriors gamma is

    Q(W) = beta log|det A| + sum_i ( w_i . k_i - 0.5 w_i G_i w_i^T ),

with ``xi = [x; 1]`` and, per output dimension i,
``G_i = sum_t sum_g gamma_tg xi xi^T / var_gi``  ([D+1, D+1]),
``k_i = sum_t sum_g gamma_tg mu_gi / var_gi xi``  ([D+1]), ``beta = sum gamma``.
Q is maximised one row ``w_i`` at a time in closed form (row i's cofactors fix det A
as a linear function of ``w_i``, leaving a quadratic in one scalar); each row update
cannot decrease Q.

Smaller transforms for speakers with few frames (Kaldi's ``--fmllr-update-type``):

* ``diag``: ``W = [diag(a) b]``. Then ``log|det A| = sum_i log a_i`` and row i only has
  entries ``a_i`` (column i) and ``b_i`` (column D), so Q splits into one term per dimension,

      q_i(a, b) = beta log a + a k_ii + b k_iD - 0.5 (a^2 G_i[i,i] + 2 a b G_i[i,D] + b^2 G_i[D,D]).

  ``dq/db = 0`` gives ``b = (k_iD - a G_i[i,D]) / G_i[D,D]``; substituting it leaves
  ``beta log a + c a - 0.5 s a^2`` (+ const) with ``c = k_ii - k_iD G_i[i,D] / G_i[D,D]``
  and the Schur complement ``s = G_i[i,i] - G_i[i,D]^2 / G_i[D,D]`` (> 0 unless
  feature i is constant). Its stationary points solve ``s a^2 - c a - beta = 0``; the
  positive root ``a = (c + sqrt(c^2 + 4 s beta)) / (2 s)`` is the unique maximum over
  ``a > 0`` (the term is concave there). Scales are kept positive: a sign flip of a
  feature is no speaker change, and the identity (a = 1, b = 0) is in the family, so
  the exact maximum is never below Q(identity).
* ``offset``: ``W = [I b]``, i.e. ``a = 1`` above: ``b_i = (k_iD - G_i[i,D]) / G_i[D,D]``,
  the occupancy- and precision-weighted mean of ``mu_i - x_i``.
* ``none``: the identity (or the starting transform).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from asr.errors import AsrError
from asr.hmm.gmm import DiagGmmSet

log = logging.getLogger(__name__)

# Transform shapes by decreasing size (parameters per dimension: D + 1, 2, 1, 0).
FMLLR_UPDATES = ("full", "diag", "offset", "none")


@dataclass
class FmllrStats:
    """Sufficient statistics of one speaker (float64).

    Attributes:
        beta: total occupancy (frames).
        k: [D, D+1] rows k_i.
        g: [D, D+1, D+1] matrices G_i.
    """

    beta: float
    k: torch.Tensor
    g: torch.Tensor

    @classmethod
    def zeros(cls, dim: int) -> "FmllrStats":
        return cls(0.0, torch.zeros(dim, dim + 1, dtype=torch.float64),
                   torch.zeros(dim, dim + 1, dim + 1, dtype=torch.float64))


def accumulate_fmllr(gmm: DiagGmmSet, x: torch.Tensor, pdfs: torch.Tensor, stats: FmllrStats,
                     chunk: int = 2000, weights: torch.Tensor | None = None) -> None:
    """Add frames ``x`` [T, D] aligned to ``pdfs`` [T] to ``stats`` (Gaussian posteriors
    within each frame's pdf, computed on ``x`` itself), each frame scaled by ``weights`` [T]
    if given (e.g. Kaldi's silence weight)."""
    for s in range(0, x.shape[0], chunk):
        xs, ps = x[s: s + chunk], pdfs[s: s + chunk]
        idx, lg = gmm.frame_gauss_log_likelihoods(xs, ps)  # [T, K]
        post = torch.softmax(lg, 1).to(torch.float64)  # [T, K]
        real = idx < gmm.num_gauss
        gi = idx.clamp_max(gmm.num_gauss - 1)
        post = post * real
        if weights is not None:
            post = post * weights[s: s + chunk, None].to(torch.float64)
        inv_var = gmm.inv_variances[gi]  # [T, K, D]
        w = torch.einsum("tk,tkd->td", post, inv_var)  # sum_g gamma / var   [T, D]
        m = torch.einsum("tk,tkd->td", post, gmm.means[gi] * inv_var)  # sum_g gamma mu / var
        xi = torch.cat([xs.to(torch.float64), torch.ones(xs.shape[0], 1, dtype=torch.float64)], 1)
        stats.beta += float(post.sum())
        stats.k += m.T @ xi
        d1 = xi.shape[1]
        stats.g += ((w[:, :, None] * xi[:, None, :]).reshape(xi.shape[0], -1).T @ xi).reshape(-1, d1, d1)


def fmllr_auxf(w: torch.Tensor, stats: FmllrStats) -> float:
    """Q(W) (without the constant Gaussian terms), in nats."""
    det_sign, logdet = torch.linalg.slogdet(w[:, :-1])
    if det_sign <= 0:
        return -math.inf
    quad = torch.einsum("ij,ijk,ik->", w, stats.g, w)
    return float(stats.beta * logdet + (w * stats.k).sum() - 0.5 * quad)


def estimate_fmllr(stats: FmllrStats, w_init: torch.Tensor | None = None, num_iters: int = 10,
                   min_count: float = 0.0, update: str = "full") -> tuple[torch.Tensor, list[float]]:
    """Maximise Q(W) over transforms of the shape ``update``.

    Args:
        stats: speaker statistics.
        w_init: [D, D+1] starting transform (default identity, zero offset). ``full``
            starts its row updates from it; ``diag`` and ``offset`` are exact maxima that
            do not depend on it; ``none`` returns it.
        num_iters: sweeps over all rows (``full`` only).
        min_count: with fewer frames than this, return ``w_init`` unchanged.
        update: one of :data:`FMLLR_UPDATES` (``full`` [A b], ``diag`` [diag(a) b],
            ``offset`` [I b], ``none``); see the module docstring.

    Returns:
        (W [D, D+1] float64, Q in nats: first entry Q of ``w_init``, then after each
        sweep (``full``) or of the closed-form estimate (``diag``, ``offset``)).

    Raises:
        AsrError: an unknown ``update``, singular statistics, or an estimate that is not
            finite or ends on a reflection (det A <= 0).
    """
    if update not in FMLLR_UPDATES:
        raise AsrError(f"fMLLR update type '{update}' is not one of {', '.join(FMLLR_UPDATES)}")
    d = stats.k.shape[0]
    w = torch.eye(d, d + 1, dtype=torch.float64) if w_init is None else w_init.to(torch.float64).clone()
    auxf = [fmllr_auxf(w, stats)]
    if stats.beta < max(min_count, 1e-10) or update == "none":
        return w, auxf
    if update in ("diag", "offset"):
        w = estimate_fmllr_diag(stats, offset_only=update == "offset")
        auxf.append(fmllr_auxf(w, stats))
        return w, auxf
    try:
        g_inv = torch.linalg.inv(stats.g)  # [D, D+1, D+1]
    except RuntimeError:
        raise AsrError("fMLLR statistics are singular (too few frames or constant features)") from None
    beta = stats.beta
    zero = torch.zeros(1, dtype=torch.float64)
    for _ in range(num_iters):
        a_inv = torch.linalg.inv(w[:, :-1])
        for i in range(d):
            # Row i of the cofactor matrix, up to the factor det A: inv(A)^T row i.
            p = torch.cat([a_inv[:, i], zero])
            old_row = w[i, :-1].clone()
            gp = g_inv[i] @ p
            a = float(p @ gp)
            b = float(stats.k[i] @ gp)
            disc = math.sqrt(b * b + 4.0 * a * beta)
            best, best_alpha = -math.inf, 0.0
            for alpha in ((-b + disc) / (2 * a), (-b - disc) / (2 * a)):
                val = beta * math.log(abs(alpha * a + b)) - 0.5 * alpha * alpha * a
                if val > best:
                    best, best_alpha = val, alpha
            w[i] = (best_alpha * p + stats.k[i]) @ g_inv[i]
            # Only row i of A changed: update its inverse by Sherman-Morrison, O(D^2).
            v = (w[i, :-1] - old_row) @ a_inv
            a_inv = a_inv - torch.outer(a_inv[:, i], v) / (1.0 + float(v[i]))
        auxf.append(fmllr_auxf(w, stats))
    if not bool(torch.isfinite(w).all()) or not math.isfinite(auxf[-1]):
        # The row updates maximise log|det A| and can end on a reflection (det A < 0).
        raise AsrError("fMLLR estimate is not finite or has a non-positive determinant")
    return w, auxf


def estimate_fmllr_diag(stats: FmllrStats, offset_only: bool = False) -> torch.Tensor:
    """The exact maximum of Q(W) over ``W = [diag(a) b]`` with a > 0 (or over ``[I b]``
    if ``offset_only``), in closed form per dimension (derivation: module docstring).

    Args:
        stats: speaker statistics (only ``k[i, i]``, ``k[i, D]`` and the entries
            ``(i, i)``, ``(i, D)``, ``(D, D)`` of ``G_i`` are used).
        offset_only: fix the scales at 1.

    Returns:
        W [D, D+1] float64.

    Raises:
        AsrError: no frames, or a feature dimension with no spread (diag only).
    """
    d = stats.k.shape[0]
    idx = torch.arange(d)
    k_x, k_1 = stats.k[idx, idx], stats.k[:, d]  # sum gamma mu_i/var_i x_i, sum gamma mu_i/var_i
    g_xx, g_x1, g_11 = stats.g[idx, idx, idx], stats.g[idx, idx, d], stats.g[:, d, d]
    if stats.beta <= 0 or not bool((g_11 > 0).all()):
        raise AsrError("fMLLR statistics have no frames: cannot estimate an offset")
    if offset_only:
        a = torch.ones(d, dtype=torch.float64)
    else:
        c = k_x - k_1 * g_x1 / g_11
        s = g_xx - g_x1 * g_x1 / g_11  # weighted variance of x_i (times occupancy / var)
        # Relative test: s is a difference of large terms when a feature is nearly constant.
        flat = s <= 1e-10 * g_xx
        if bool(flat.any()):
            i = int(torch.nonzero(flat)[0])
            raise AsrError(f"fMLLR statistics are singular: feature dimension {i} is constant "
                           "over the speaker's frames, so its scale cannot be estimated")
        r = torch.sqrt(c * c + 4.0 * s * stats.beta)
        # The positive root; for c < 0 as 2 beta / (r - c) (same value, no cancellation).
        a = torch.where(c >= 0, (c + r) / (2.0 * s), 2.0 * stats.beta / (r - c))
    b = (k_1 - a * g_x1) / g_11
    w = torch.zeros(d, d + 1, dtype=torch.float64)
    w[idx, idx] = a
    w[:, d] = b
    if not bool(torch.isfinite(w).all()):
        raise AsrError("fMLLR diagonal estimate is not finite")
    return w


def apply_fmllr(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``A x + b`` for each frame: x [T, D] -> [T, D] float32."""
    w = w.to(torch.float64)
    return (x.to(torch.float64) @ w[:, :-1].T + w[:, -1]).to(torch.float32)


def compose_fmllr(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """The transform of applying ``inner`` then ``outer`` (both [D, D+1])."""
    a = outer[:, :-1] @ inner[:, :-1]
    b = outer[:, :-1] @ inner[:, -1] + outer[:, -1]
    return torch.cat([a, b[:, None]], 1)
