import torch

from asr.hmm.gmm import DiagGmmSet
from asr.hmm.lda_mllt import accumulate_mllt, apply_affine, estimate_lda, estimate_mllt, transform_means


def test_lda_finds_discriminant_subspace_and_whitens_within_class():
    gen = torch.Generator().manual_seed(0)
    n, f = 6000, 6
    classes = torch.randint(0, 4, (n,), generator=gen)
    centres = torch.zeros(4, f, dtype=torch.float64)
    centres[:, 0] = torch.tensor([-6.0, -2.0, 2.0, 6.0])
    centres[:, 3] = torch.tensor([3.0, -3.0, -3.0, 3.0])
    x = centres[classes] + torch.randn(n, f, generator=gen, dtype=torch.float64) * torch.tensor([1, 2, 2, 1, 2, 2.0])
    mix = torch.linalg.qr(torch.randn(f, f, generator=gen, dtype=torch.float64))[0]
    x = x @ mix.T  # hide the discriminant directions
    w = estimate_lda(x, classes, 2)
    y = apply_affine(w, x).double()
    assert w.shape == (2, f + 1)
    within = sum(torch.cov(y[classes == c].T) * (classes == c).sum() for c in range(4)) / n
    torch.testing.assert_close(within, torch.eye(2, dtype=torch.float64), atol=0.05, rtol=0)
    means = torch.stack([y[classes == c].mean(0) for c in range(4)])
    # Every pair of classes is at least 3 within-class standard deviations apart.
    dist = torch.cdist(means, means) + torch.eye(4) * 100
    assert float(dist.min()) > 3.0
    torch.testing.assert_close(y.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-6, rtol=0)


def test_mllt_raises_diagonal_likelihood_monotonically():
    gen = torch.Generator().manual_seed(1)
    d, n = 4, 8000
    pdfs = torch.randint(0, 3, (n,), generator=gen)
    means_z = torch.randn(3, d, generator=gen, dtype=torch.float64) * 3
    var_z = torch.rand(3, d, generator=gen, dtype=torch.float64) * 2 + 0.1
    z = means_z[pdfs] + var_z[pdfs].sqrt() * torch.randn(n, d, generator=gen, dtype=torch.float64)
    r = torch.eye(d, dtype=torch.float64) + 0.5 * torch.randn(d, d, generator=gen, dtype=torch.float64)
    x = z @ torch.linalg.inv(r).T  # correlated dims: diagonal models fit badly

    def fit(feats):
        m = torch.stack([feats[pdfs == p].mean(0) for p in range(3)])
        v = torch.stack([feats[pdfs == p].var(0, unbiased=False) for p in range(3)])
        return DiagGmmSet(m, v, torch.zeros(3, dtype=torch.float64), torch.arange(3))

    def loglike(gmm, feats, logdet):
        return float(gmm.log_likelihoods(feats)[torch.arange(n), pdfs].double().sum()) / n + logdet

    gmm = fit(x)
    before = loglike(gmm, x, 0.0)
    g, beta = accumulate_mllt(gmm, x, pdfs)
    assert abs(beta - n) < 1e-6
    t, auxf = estimate_mllt(g, beta, num_iters=20)
    assert all(b >= a - 1e-9 * abs(a) for a, b in zip(auxf, auxf[1:]))
    moved = transform_means(gmm, t)
    torch.testing.assert_close(moved.means, gmm.means @ t.T)
    y = x @ t.T
    after = loglike(fit(y), y, float(torch.linalg.slogdet(t)[1]))
    best = loglike(fit(z), z, float(torch.linalg.slogdet(r)[1]))
    assert after > before + 0.1
    assert after > best - 0.05  # close to the true decorrelating transform
