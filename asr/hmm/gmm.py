"""Diagonal-covariance GMMs for every pdf of an acoustic model, in torch.

All Gaussians of all pdfs live in flat tensors (``means [G, D]``, ``variances [G, D]``,
``log_weights [G]``) with ``pdf_of_gauss [G]`` saying which pdf owns each one, so the
log-likelihoods of a block of frames against every Gaussian are two matmuls.
Parameters are float64; likelihoods are computed in float32 (features are
mean-normalised, so the expanded quadratic form loses nothing that matters).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

_LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class GmmStats:
    """Zeroth, first and second order occupation statistics per Gaussian (float64).

    Attributes:
        occ: [G] summed posteriors (frames).
        sum_x: [G, D] posterior-weighted sum of frames.
        sum_x2: [G, D] posterior-weighted sum of squared frames.
        log_like: total log-likelihood of the accumulated frames (nats).
        num_frames: number of frames accumulated.
    """

    occ: torch.Tensor
    sum_x: torch.Tensor
    sum_x2: torch.Tensor
    log_like: float = 0.0
    num_frames: int = 0

    @classmethod
    def zeros(cls, num_gauss: int, dim: int) -> "GmmStats":
        z = torch.zeros
        return cls(z(num_gauss, dtype=torch.float64), z(num_gauss, dim, dtype=torch.float64),
                   z(num_gauss, dim, dtype=torch.float64))

    def add(self, other: "GmmStats") -> None:
        self.occ += other.occ
        self.sum_x += other.sum_x
        self.sum_x2 += other.sum_x2
        self.log_like += other.log_like
        self.num_frames += other.num_frames


class DiagGmmSet:
    """One diagonal GMM per pdf, stored flat.

    Args:
        means: [G, D] float64.
        variances: [G, D] float64, positive.
        log_weights: [G] float64; the weights of each pdf's Gaussians sum to 1.
        pdf_of_gauss: [G] int64, non-decreasing, every pdf in ``0..num_pdfs-1`` present.
    """

    def __init__(self, means: torch.Tensor, variances: torch.Tensor, log_weights: torch.Tensor,
                 pdf_of_gauss: torch.Tensor) -> None:
        order = torch.argsort(pdf_of_gauss, stable=True)  # keep each pdf's Gaussians contiguous
        self.means = means[order].to(torch.float64).contiguous()
        self.variances = variances[order].to(torch.float64).contiguous()
        self.log_weights = log_weights[order].to(torch.float64).contiguous()
        self.pdf_of_gauss = pdf_of_gauss[order].to(torch.int64).contiguous()
        self.num_pdfs = int(self.pdf_of_gauss.max()) + 1 if len(self.pdf_of_gauss) else 0
        self._build_cache()

    @classmethod
    def single_gaussian(cls, num_pdfs: int, mean: torch.Tensor, variance: torch.Tensor) -> "DiagGmmSet":
        """``num_pdfs`` one-Gaussian pdfs, all with the given ``mean`` / ``variance`` [D]."""
        return cls(mean.expand(num_pdfs, -1).clone(), variance.expand(num_pdfs, -1).clone(),
                   torch.zeros(num_pdfs, dtype=torch.float64), torch.arange(num_pdfs))

    @property
    def num_gauss(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def gauss_counts(self) -> torch.Tensor:
        """[P] number of Gaussians of each pdf."""
        return torch.bincount(self.pdf_of_gauss, minlength=self.num_pdfs)

    def _build_cache(self) -> None:
        inv_var = 1.0 / self.variances
        # log N(x; mu, var) = gconst + x.(mu/var) - 0.5 x^2.(1/var)
        gconst = self.log_weights - 0.5 * (
            self.dim * _LOG_2PI + torch.log(self.variances).sum(1) + (self.means**2 * inv_var).sum(1))
        self._lin = (self.means * inv_var).T.to(torch.float32).contiguous()  # [D, G]
        self._quad = (-0.5 * inv_var).T.to(torch.float32).contiguous()  # [D, G]
        self._gconst = gconst.to(torch.float32)
        # [P, K] index of each pdf's Gaussians, padded with G (a column of -inf).
        counts = self.gauss_counts()
        k = int(counts.max()) if self.num_pdfs else 0
        first = torch.cumsum(counts, 0) - counts
        slot = torch.arange(self.num_gauss) - first[self.pdf_of_gauss]
        index = torch.full((self.num_pdfs, k), self.num_gauss, dtype=torch.int64)
        index[self.pdf_of_gauss, slot] = torch.arange(self.num_gauss)
        self.gauss_index = index

    def gauss_log_likelihoods(self, x: torch.Tensor) -> torch.Tensor:
        """Log of weight times density of every Gaussian.

        Args:
            x: [T, D] frames.

        Returns:
            [T, G + 1] float32; the last column is -inf (padding target of ``gauss_index``).
        """
        x = x.to(torch.float32)
        ll = torch.addmm(self._gconst, x, self._lin).addmm_(x * x, self._quad)
        return torch.cat([ll, ll.new_full((ll.shape[0], 1), -math.inf)], 1)

    def log_likelihoods(self, x: torch.Tensor) -> torch.Tensor:
        """Log-likelihood of each frame under each pdf.

        Args:
            x: [T, D] frames.

        Returns:
            [T, P] float32 log p(x_t | pdf).
        """
        ll = self.gauss_log_likelihoods(x)
        return torch.logsumexp(ll[:, self.gauss_index], dim=2)

    def accumulate(self, x: torch.Tensor, pdfs: torch.Tensor, stats: GmmStats,
                   weights: torch.Tensor | None = None) -> None:
        """Add the statistics of frames ``x`` aligned to ``pdfs`` to ``stats``.

        Args:
            x: [T, D] frames.
            pdfs: [T] int64 pdf of each frame.
            stats: accumulator (shape of this model) updated in place.
            weights: optional [T] frame weights (default 1).
        """
        ll = self.gauss_log_likelihoods(x)
        idx = self.gauss_index[pdfs]  # [T, K]
        lg = torch.gather(ll, 1, idx)  # [T, K]
        frame_ll = torch.logsumexp(lg, 1)
        post = torch.exp(lg - frame_ll[:, None]).to(torch.float64)  # [T, K]
        if weights is not None:
            post = post * weights.to(torch.float64)[:, None]
        x64 = x.to(torch.float64)
        x2 = x64 * x64
        for k in range(idx.shape[1]):  # one column of each pdf's Gaussians at a time
            g, p = idx[:, k], post[:, k]
            real = g < self.num_gauss
            if not bool(real.all()):
                g, p, xk, xk2 = g[real], p[real], x64[real], x2[real]
            else:
                xk, xk2 = x64, x2
            stats.occ.index_add_(0, g, p)
            stats.sum_x.index_add_(0, g, xk * p[:, None])
            stats.sum_x2.index_add_(0, g, xk2 * p[:, None])
        w = weights.to(torch.float64) if weights is not None else None
        stats.log_like += float(frame_ll.double().sum() if w is None else (frame_ll.double() * w).sum())
        stats.num_frames += int(x.shape[0])

    def new_stats(self) -> GmmStats:
        return GmmStats.zeros(self.num_gauss, self.dim)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"means": self.means, "variances": self.variances,
                "log_weights": self.log_weights, "pdf_of_gauss": self.pdf_of_gauss}

    @classmethod
    def from_state_dict(cls, d: dict[str, torch.Tensor]) -> "DiagGmmSet":
        return cls(d["means"], d["variances"], d["log_weights"], d["pdf_of_gauss"])
