import numpy as np
import torch

from asr.hmm.fmllr import FmllrStats, accumulate_fmllr, apply_fmllr, compose_fmllr, estimate_fmllr, fmllr_auxf
from asr.hmm.gmm import DiagGmmSet


def _model_and_data(num_pdfs=12, gauss_per_pdf=1, dim=5, frames=6000, seed=0):
    gen = torch.Generator().manual_seed(seed)
    g = num_pdfs * gauss_per_pdf
    means = torch.randn(g, dim, generator=gen, dtype=torch.float64) * 2
    variances = torch.rand(g, dim, generator=gen, dtype=torch.float64) * 0.8 + 0.2
    pdf = torch.arange(num_pdfs).repeat_interleave(gauss_per_pdf)
    gmm = DiagGmmSet(means, variances, torch.full((g,), -np.log(gauss_per_pdf), dtype=torch.float64), pdf)
    pdfs = torch.randint(0, num_pdfs, (frames,), generator=gen)
    comp = pdfs * gauss_per_pdf + torch.randint(0, gauss_per_pdf, (frames,), generator=gen)
    y = gmm.means[comp] + gmm.variances[comp].sqrt() * torch.randn(frames, dim, generator=gen, dtype=torch.float64)
    a = torch.eye(dim, dtype=torch.float64) + 0.3 * torch.randn(dim, dim, generator=gen, dtype=torch.float64)
    b = torch.randn(dim, generator=gen, dtype=torch.float64)
    w_true = torch.cat([a, b[:, None]], 1)
    # Observed frames: the model-space frames put through the inverse transform.
    x = torch.linalg.solve(a, (y - b).T).T
    return gmm, pdfs, x, y, w_true


def test_fmllr_recovers_known_affine_transform():
    gmm, pdfs, x, y, w_true = _model_and_data()
    stats = FmllrStats.zeros(x.shape[1])
    accumulate_fmllr(gmm, x, pdfs, stats, chunk=1000)
    assert abs(stats.beta - x.shape[0]) < 1e-6
    w, auxf = estimate_fmllr(stats, num_iters=20)
    err = float(torch.linalg.norm(w - w_true) / torch.linalg.norm(w_true))
    assert err < 0.05, err
    assert all(b >= a - 1e-9 * abs(a) for a, b in zip(auxf, auxf[1:]))
    assert auxf[-1] > auxf[0]
    torch.testing.assert_close(apply_fmllr(w, x).double(), y, atol=0.25, rtol=0)
    # At the optimum the auxiliary function cannot be raised by a small perturbation.
    for _ in range(5):
        assert fmllr_auxf(w + 1e-3 * torch.randn_like(w), stats) <= auxf[-1] + 1e-9


def test_fmllr_with_mixtures_iterating_posteriors():
    gmm, pdfs, x, y, w_true = _model_and_data(gauss_per_pdf=2, seed=1, frames=8000)
    w = torch.eye(x.shape[1], x.shape[1] + 1, dtype=torch.float64)
    for _ in range(4):  # re-estimate on adapted frames and compose, as SAT does
        stats = FmllrStats.zeros(x.shape[1])
        accumulate_fmllr(gmm, apply_fmllr(w, x), pdfs, stats)
        delta, auxf = estimate_fmllr(stats, num_iters=10)
        assert all(b >= a - 1e-9 * abs(a) for a, b in zip(auxf, auxf[1:]))
        w = compose_fmllr(delta, w)
    err = float(torch.linalg.norm(w - w_true) / torch.linalg.norm(w_true))
    assert err < 0.05, err


def test_too_few_frames_returns_initial():
    stats = FmllrStats.zeros(3)
    w, auxf = estimate_fmllr(stats, min_count=10)
    torch.testing.assert_close(w, torch.eye(3, 4, dtype=torch.float64))
    assert len(auxf) == 1


def test_frame_weights_scale_the_statistics():
    """Weight 0 drops a frame, weight 2 counts it twice (Kaldi's silence weighting)."""
    gmm, pdfs, x, _, _ = _model_and_data(gauss_per_pdf=2, frames=600, seed=2)
    weights = torch.ones(600, dtype=torch.float64)
    weights[:200] = 0.0
    weights[200:300] = 2.0
    weighted = FmllrStats.zeros(x.shape[1])
    accumulate_fmllr(gmm, x, pdfs, weighted, chunk=128, weights=weights)
    rows = torch.cat([torch.arange(200, 600), torch.arange(200, 300)])
    copied = FmllrStats.zeros(x.shape[1])
    accumulate_fmllr(gmm, x[rows], pdfs[rows], copied)
    assert abs(weighted.beta - 500.0) < 1e-4
    torch.testing.assert_close(weighted.k, copied.k)
    torch.testing.assert_close(weighted.g, copied.g)
