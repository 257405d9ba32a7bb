import math

import torch

from asr.hmm.gmm import DiagGmmSet
from asr.hmm.gmm_update import GmmUpdateOptions, mixup_targets, split_gaussians, update_gmm_ml


def _random_model(gen, num_pdfs=4, dim=3):
    counts = [1, 3, 2, 4][:num_pdfs]
    pdf = torch.cat([torch.full((c,), p) for p, c in enumerate(counts)])
    g = len(pdf)
    means = torch.randn(g, dim, generator=gen, dtype=torch.float64)
    variances = torch.rand(g, dim, generator=gen, dtype=torch.float64) + 0.2
    w = torch.rand(g, generator=gen, dtype=torch.float64) + 0.1
    wsum = torch.zeros(num_pdfs, dtype=torch.float64).index_add_(0, pdf, w)
    return DiagGmmSet(means, variances, (w / wsum[pdf]).log(), pdf)


def test_log_likelihood_matches_direct_computation():
    gen = torch.Generator().manual_seed(1)
    model = _random_model(gen)
    x = torch.randn(7, 3, generator=gen, dtype=torch.float64) * 2
    got = model.log_likelihoods(x)
    for p in range(model.num_pdfs):
        sel = model.pdf_of_gauss == p
        comps = []
        for m, v, lw in zip(model.means[sel], model.variances[sel], model.log_weights[sel]):
            dist = torch.distributions.Normal(m, v.sqrt())
            comps.append(lw + dist.log_prob(x).sum(1))
        want = torch.logsumexp(torch.stack(comps), 0)
        torch.testing.assert_close(got[:, p].double(), want, rtol=1e-4, atol=1e-4)


def test_accumulate_matches_direct_posteriors():
    gen = torch.Generator().manual_seed(2)
    model = _random_model(gen)
    x = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    pdfs = torch.randint(0, model.num_pdfs, (50,), generator=gen)
    stats = model.new_stats()
    model.accumulate(x, pdfs, stats)
    ll = model.gauss_log_likelihoods(x)[:, :-1].double()
    post = torch.zeros(50, model.num_gauss, dtype=torch.float64)
    for t in range(50):
        sel = model.pdf_of_gauss == pdfs[t]
        post[t, sel] = torch.softmax(ll[t, sel], 0)
    torch.testing.assert_close(stats.occ, post.sum(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stats.sum_x, post.T @ x, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(stats.sum_x2, post.T @ (x * x), rtol=1e-5, atol=1e-6)
    assert stats.num_frames == 50
    want_ll = model.log_likelihoods(x).double()[torch.arange(50), pdfs].sum()
    assert math.isclose(stats.log_like, float(want_ll), rel_tol=1e-5)


def test_em_with_splitting_recovers_known_means():
    gen = torch.Generator().manual_seed(3)
    true_means = torch.tensor([[-4.0, 0.0], [0.0, 4.0], [4.0, -1.0]], dtype=torch.float64)
    comp = torch.randint(0, 3, (3000,), generator=gen)
    x = true_means[comp] + 0.5 * torch.randn(3000, 2, generator=gen, dtype=torch.float64)
    model = DiagGmmSet.single_gaussian(1, x.mean(0), x.var(0))
    pdfs = torch.zeros(3000, dtype=torch.int64)
    opts = GmmUpdateOptions(min_gaussian_occupancy=3)
    prev = -math.inf
    for it in range(40):
        stats = model.new_stats()
        model.accumulate(x, pdfs, stats)
        # EM never decreases the likelihood between splits.
        if it not in (1, 6, 11):
            assert stats.log_like >= prev - 1e-6 * abs(prev)
        prev = stats.log_like
        model = update_gmm_ml(model, stats, opts)
        if it in (0, 5, 10) and model.num_gauss < 3:
            model = split_gaussians(model, torch.tensor([model.num_gauss + 1]), perturb_factor=0.5,
                                    generator=gen)
    assert model.num_gauss == 3
    got = model.means[torch.argsort(model.means[:, 0])]
    torch.testing.assert_close(got, true_means, atol=0.08, rtol=0)
    torch.testing.assert_close(model.variances, torch.full((3, 2), 0.25, dtype=torch.float64),
                               atol=0.04, rtol=0)
    torch.testing.assert_close(model.log_weights.exp().sum(), torch.tensor(1.0, dtype=torch.float64))


def test_variance_floor_and_unseen_pdf_kept():
    x = torch.zeros(100, 2, dtype=torch.float64)
    x[:, 0] = torch.linspace(-1, 1, 100)  # dimension 1 has zero variance
    model = DiagGmmSet.single_gaussian(2, torch.zeros(2), torch.ones(2) * 3)
    stats = model.new_stats()
    model.accumulate(x, torch.zeros(100, dtype=torch.int64), stats)
    new = update_gmm_ml(model, stats, GmmUpdateOptions(min_variance=1e-3, variance_floor_fraction=0.0))
    assert float(new.variances[0, 1]) == 1e-3
    torch.testing.assert_close(new.variances[1], torch.full((2,), 3.0, dtype=torch.float64))


def test_mixup_targets_respects_min_count_and_total():
    occ = torch.tensor([1000.0, 100.0, 0.0, 10000.0], dtype=torch.float64)
    cur = torch.ones(4, dtype=torch.int64)
    t = mixup_targets(occ, cur, target_total=20, power=0.25, min_count=20)
    assert int(t.sum()) == 20
    assert int(t[2]) == 1 and int(t[1]) <= 5
    assert int(t[3]) >= int(t[0]) >= int(t[1])
    # min_count limits the total when there is not enough data.
    t = mixup_targets(occ, cur, target_total=10_000, min_count=20)
    assert int(t[3]) == 500 and int(t[0]) == 50 and int(t[1]) == 5


def test_split_is_deterministic_and_preserves_weight():
    gen = torch.Generator().manual_seed(4)
    model = _random_model(gen)
    targets = model.gauss_counts() + torch.tensor([2, 0, 1, 3])
    a = split_gaussians(model, targets, generator=torch.Generator().manual_seed(7))
    b = split_gaussians(model, targets, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.means, b.means)
    torch.testing.assert_close(a.gauss_counts(), targets)
    wsum = torch.zeros(4, dtype=torch.float64).index_add_(0, a.pdf_of_gauss, a.log_weights.exp())
    torch.testing.assert_close(wsum, torch.ones(4, dtype=torch.float64))


def test_subset_and_per_frame_likelihoods_match_full():
    gen = torch.Generator().manual_seed(5)
    model = _random_model(gen)
    x = torch.randn(9, 3, generator=gen, dtype=torch.float64)
    full = model.log_likelihoods(x)
    pdfs = torch.tensor([3, 1])
    torch.testing.assert_close(model.pdf_log_likelihoods(x, pdfs), full[:, pdfs])
    frame_pdfs = torch.randint(0, 4, (9,), generator=gen)
    idx, ll = model.frame_gauss_log_likelihoods(x, frame_pdfs)
    torch.testing.assert_close(torch.logsumexp(ll, 1), full[torch.arange(9), frame_pdfs])
    assert bool((idx[ll == -math.inf] == model.num_gauss).all())
