"""LDA on spliced frames and MLLT (semi-tied covariance), as Kaldi's ``train_lda_mllt.sh``.

LDA: classes are the pdfs of an alignment; the projection keeps the ``dim`` directions
of largest between-class to within-class variance, scaled so the within-class
covariance of the output is the identity.

MLLT: a square matrix T maximising the likelihood of diagonal-covariance Gaussians on
``T x``. With ``G_i = sum_t sum_g gamma_tg (x_t - mu_g)(x_t - mu_g)^T / var_gi`` the
auxiliary function is ``beta log|det T| - 0.5 sum_i t_i G_i t_i^T``, raised one row at
a time in closed form (Gales 1999).
"""

from __future__ import annotations

import math

import torch

from asr.errors import AsrError
from asr.hmm.gmm import DiagGmmSet


def estimate_lda(x: torch.Tensor, classes: torch.Tensor, dim: int, within_floor: float = 1e-6) -> torch.Tensor:
    """LDA projection.

    Args:
        x: [N, F] frames (e.g. spliced MFCCs, F = 13 * 7).
        classes: [N] int64 class (pdf) of each frame; negative entries are ignored.
        dim: output dimension (<= F).
        within_floor: relative floor on within-class eigenvalues (keeps it invertible).

    Returns:
        [dim, F + 1] float64 affine transform ``[M | -M mean]``: output = M (x - mean).
    """
    keep = classes >= 0
    x, classes = x[keep].to(torch.float64), classes[keep]
    n, f = x.shape
    if dim > f:
        raise AsrError(f"LDA dimension {dim} exceeds the input dimension {f}")
    num_c = int(classes.max()) + 1
    count = torch.bincount(classes, minlength=num_c).to(torch.float64)
    sums = torch.zeros(num_c, f, dtype=torch.float64).index_add_(0, classes, x)
    mean = x.mean(0)
    total_scatter = x.T @ x / n - torch.outer(mean, mean)
    seen = count > 0
    class_means = sums[seen] / count[seen, None]
    between = (class_means - mean).T @ ((class_means - mean) * (count[seen, None] / n))
    within = total_scatter - between
    evals, evecs = torch.linalg.eigh(within)
    evals = evals.clamp_min(within_floor * float(evals.max()))
    whiten = (evecs / evals.sqrt()).T  # W within W^T = I
    b = whiten @ between @ whiten.T
    _, bvecs = torch.linalg.eigh((b + b.T) / 2)
    m = bvecs[:, -dim:].flip(1).T @ whiten  # [dim, F], largest ratio first
    return torch.cat([m, (-m @ mean)[:, None]], 1)


def apply_affine(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``A x + b`` for w = [A | b] ([D_out, D_in + 1]) on x [N, D_in] -> [N, D_out] float32."""
    w = w.to(torch.float64)
    return (x.to(torch.float64) @ w[:, :-1].T + w[:, -1]).to(torch.float32)


def accumulate_mllt(gmm: DiagGmmSet, x: torch.Tensor, pdfs: torch.Tensor, chunk: int = 4000,
                    min_post: float = 0.05) -> tuple[torch.Tensor, float]:
    """MLLT statistics ``G`` [D, D, D] and ``beta`` (frames).

    Gaussian posteriors within each frame's pdf below ``min_post`` are dropped (and the
    rest renormalised), as Kaldi prunes them, to bound the cost.
    """
    d = x.shape[1]
    g_stats = torch.zeros(d, d * d, dtype=torch.float64)
    beta = 0.0
    for s in range(0, x.shape[0], chunk):
        xs, ps = x[s: s + chunk], pdfs[s: s + chunk]
        idx, lg = gmm.frame_gauss_log_likelihoods(xs, ps)
        post = torch.softmax(lg, 1).to(torch.float64)
        post = torch.where(post >= min_post, post, torch.zeros_like(post))
        post = post / post.sum(1, keepdim=True)
        t_idx, k_idx = torch.nonzero(post > 0, as_tuple=True)
        g = idx[t_idx, k_idx]
        e = xs[t_idx].to(torch.float64) - gmm.means[g]  # [M, D]
        w = post[t_idx, k_idx, None] / gmm.variances[g]  # [M, D]
        outer = (e[:, :, None] * e[:, None, :]).reshape(len(g), -1)  # [M, D*D]
        g_stats += w.T @ outer
        beta += float(post.sum())
    return g_stats.reshape(d, d, d), beta


def mllt_auxf(t: torch.Tensor, g: torch.Tensor, beta: float) -> float:
    """Auxiliary function of MLLT matrix ``t`` (constant terms left out)."""
    sign, logdet = torch.linalg.slogdet(t)
    if sign == 0:
        return -math.inf
    return float(beta * logdet - 0.5 * torch.einsum("ij,ijk,ik->", t, g, t))


def estimate_mllt(g: torch.Tensor, beta: float, num_iters: int = 10) -> tuple[torch.Tensor, list[float]]:
    """Row-by-row MLLT update from identity.

    Returns:
        (T [D, D] float64, auxiliary function before and after each sweep).
    """
    d = g.shape[0]
    t = torch.eye(d, dtype=torch.float64)
    g_inv = torch.linalg.inv(g)
    auxf = [mllt_auxf(t, g, beta)]
    for _ in range(num_iters):
        for i in range(d):
            c = torch.linalg.inv(t).T[i]  # cofactor row up to det(T)
            gc = g_inv[i] @ c
            t[i] = gc * math.sqrt(beta / float(c @ gc))
        auxf.append(mllt_auxf(t, g, beta))
    return t, auxf


def transform_means(gmm: DiagGmmSet, t: torch.Tensor) -> DiagGmmSet:
    """The model in the MLLT-rotated space: means ``T mu``, variances kept (Kaldi's
    ``gmm-transform-means``; the next ML update re-estimates the variances)."""
    return DiagGmmSet(gmm.means @ t.T, gmm.variances, gmm.log_weights, gmm.pdf_of_gauss)

