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
# Log-values are clamped here before exp: exp(-80) is still a normal float32, and
# denormal results make exp about 15 times slower on x86 CPUs.
EXP_FLOOR = -80.0


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
        self._inv_var: torch.Tensor | None = None
        self._build_cache()

    @classmethod
    def single_gaussian(cls, num_pdfs: int, mean: torch.Tensor, variance: torch.Tensor) -> "DiagGmmSet":
        """``num_pdfs`` one-Gaussian pdfs, all with the given ``mean`` / ``variance`` [D]."""
        return cls(mean.expand(num_pdfs, -1).clone(), variance.expand(num_pdfs, -1).clone(),
                   torch.zeros(num_pdfs, dtype=torch.float64), torch.arange(num_pdfs))

    @property
    def inv_variances(self) -> torch.Tensor:
        """[G, D] float64 1 / variances (cached)."""
        if self._inv_var is None:
            self._inv_var = 1.0 / self.variances
        return self._inv_var

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
        # Row G of each padded table is a dummy Gaussian with log weight -inf, the target
        # of the padding entries of ``gauss_index``.
        pad = lambda t, v: torch.cat([t, t.new_full((1,) + t.shape[1:], v)])  # noqa: E731
        self._lin_rows = pad(self.means * inv_var, 0.0).to(torch.float32).contiguous()  # [G+1, D]
        self._quad_rows = pad(-0.5 * inv_var, 0.0).to(torch.float32).contiguous()  # [G+1, D]
        self._gconst_pad = pad(gconst, -math.inf).to(torch.float32)  # [G+1]
        self._lin = self._lin_rows[:-1].T.contiguous()  # [D, G]
        self._quad = self._quad_rows[:-1].T.contiguous()  # [D, G]
        self._gconst = self._gconst_pad[:-1]
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
        x = x.to(torch.float32)
        ll = torch.addmm(self._gconst, x, self._lin).addmm_(x * x, self._quad)  # [T, G]
        # Log-sum-exp per pdf by scatter over the G columns: O(T * G), where gathering a
        # padded [T, P, K] block costs O(T * P * max K).
        index = self.pdf_of_gauss.expand(ll.shape[0], -1)
        m = ll.new_full((ll.shape[0], self.num_pdfs), -math.inf).scatter_reduce_(1, index, ll, "amax")
        p = ll.sub_(m.gather(1, index)).clamp_min_(EXP_FLOOR).exp_()
        return ll.new_zeros(m.shape).scatter_add_(1, index, p).log_().add_(m)

    def pdf_log_likelihoods(self, x: torch.Tensor, pdfs: torch.Tensor) -> torch.Tensor:
        """Log-likelihood of each frame under a few pdfs (cheaper than all of them).

        Args:
            x: [T, D] frames.
            pdfs: [U] int64 pdf ids.

        Returns:
            [T, U] float32.
        """
        idx = self.gauss_index[pdfs].T  # [K, U]
        flat = idx.reshape(-1)
        x = x.to(torch.float32)
        ll = torch.addmm(self._gconst_pad[flat], x, self._lin_rows[flat].T)
        ll = ll.addmm_(x * x, self._quad_rows[flat].T).view(x.shape[0], *idx.shape)  # [T, K, U]
        # Reducing over the middle axis keeps the inner loops contiguous (much faster
        # than a logsumexp over a short last axis). Slot 0 is always a real Gaussian.
        m = ll.amax(1, keepdim=True)
        return ll.sub_(m).clamp_min_(EXP_FLOOR).exp_().sum(1).log_().add_(m.squeeze(1))

    def frame_gauss_log_likelihoods(self, x: torch.Tensor, pdfs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log of weight times density of the Gaussians of each frame's own pdf.

        Args:
            x: [T, D] frames.
            pdfs: [T] int64 pdf of each frame.

        Returns:
            (idx [T, K] Gaussian ids, padded with ``num_gauss``; ll [T, K] float32, -inf at padding).
        """
        idx = self.gauss_index[pdfs]  # [T, K]
        x = x.to(torch.float32)
        ll = self._gconst_pad[idx]
        ll = ll + torch.einsum("td,tkd->tk", x, self._lin_rows[idx])
        ll = ll + torch.einsum("td,tkd->tk", x * x, self._quad_rows[idx])
        return idx, ll

    def accumulate(self, x: torch.Tensor, pdfs: torch.Tensor, stats: GmmStats,
                   weights: torch.Tensor | None = None) -> None:
        """Add the statistics of frames ``x`` aligned to ``pdfs`` to ``stats``.

        Frames are grouped by pdf internally, so pass as many frames per call as memory
        allows (a copy of ``x`` is made).

        Args:
            x: [T, D] frames.
            pdfs: [T] int64 pdf of each frame.
            stats: accumulator (shape of this model) updated in place.
            weights: optional [T] frame weights (default 1).
        """
        # Frames grouped by pdf: each group is a few small matmuls against its own Gaussians.
        order = torch.argsort(pdfs, stable=True)
        xs = x[order].to(torch.float32)
        w = None if weights is None else weights[order].to(torch.float64)
        counts = torch.bincount(pdfs, minlength=self.num_pdfs).tolist()
        gcounts = self.gauss_counts().tolist()
        gfirst = 0
        start = 0
        total = 0.0
        for p in range(self.num_pdfs):
            n, k = counts[p], gcounts[p]
            if n:
                g = slice(gfirst, gfirst + k)
                xp = xs[start: start + n]
                ll = torch.addmm(self._gconst[g], xp, self._lin[:, g]).addmm_(xp * xp, self._quad[:, g])
                m = ll.amax(1, keepdim=True)
                frame_ll = (ll - m).clamp_min_(EXP_FLOOR).exp_().sum(1).log_().add_(m.squeeze(1))
                post = (ll - frame_ll[:, None]).clamp_min_(EXP_FLOOR).exp_().to(torch.float64)  # [n, k]
                xp64 = xp.to(torch.float64)
                if w is not None:
                    post = post * w[start: start + n, None]
                    total += float((frame_ll.double() * w[start: start + n]).sum())
                else:
                    total += float(frame_ll.double().sum())
                stats.occ[g] += post.sum(0)
                stats.sum_x[g] += post.T @ xp64
                stats.sum_x2[g] += post.T @ (xp64 * xp64)
            start += n
            gfirst += k
        stats.log_like += total
        stats.num_frames += int(x.shape[0])

    def new_stats(self) -> GmmStats:
        return GmmStats.zeros(self.num_gauss, self.dim)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"means": self.means, "variances": self.variances,
                "log_weights": self.log_weights, "pdf_of_gauss": self.pdf_of_gauss}

    @classmethod
    def from_state_dict(cls, d: dict[str, torch.Tensor]) -> "DiagGmmSet":
        return cls(d["means"], d["variances"], d["log_weights"], d["pdf_of_gauss"])
