import logging

import numpy as np
import pytest
import torch

from asr.decode import fmllr_adapt
from asr.decode.fmllr_adapt import adapt_fmllr, fmllr_update_type
from asr.decode.gmm_model import hmm_view
from asr.errors import AsrError
from asr.graph.hclg import build_graph
from asr.graph.phone_lm import estimate_bigram
from asr.graph.search import SearchOptions
from asr.hmm.fmllr import FmllrStats, accumulate_fmllr, apply_fmllr, compose_fmllr, estimate_fmllr, fmllr_auxf
from asr.hmm.gmm import DiagGmmSet
from asr.hmm.model import GmmHmm, MonophonePdfMap
from asr.hmm.topology import TransitionModel


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


# --- Smaller transforms for speakers with few frames (diag, offset, none) ---

def _diag_distorted(scale, shift, frames=4000, seed=3, gauss_per_pdf=1):
    """Stats of frames ``x = (y - shift) / scale`` (y drawn from the model), whose ideal
    transform is ``[diag(scale) shift]``; also returns that transform [D, D+1]."""
    dim = len(scale)
    gmm, pdfs, _, y, _ = _model_and_data(dim=dim, frames=frames, seed=seed, gauss_per_pdf=gauss_per_pdf)
    scale = torch.tensor(scale, dtype=torch.float64)
    shift = torch.tensor(shift, dtype=torch.float64)
    x = (y - shift) / scale
    stats = FmllrStats.zeros(dim)
    accumulate_fmllr(gmm, x, pdfs, stats)
    return stats, torch.cat([torch.diag(scale), shift[:, None]], 1)


def test_diag_recovers_known_diagonal_distortion():
    stats, w_true = _diag_distorted([1.5, 0.7, 2.0, 0.9, 1.2], [0.5, -1.0, 2.0, 0.0, -0.3])
    w, auxf = estimate_fmllr(stats, update="diag")
    assert len(auxf) == 2 and auxf[1] > auxf[0]
    off_diag = w[:, :-1] - torch.diag(torch.diagonal(w[:, :-1]))
    assert float(off_diag.abs().max()) == 0.0
    torch.testing.assert_close(w, w_true, atol=0.05, rtol=0.03)


def test_offset_recovers_known_mean_shift():
    shift = [0.8, -1.5, 0.3, 2.0]
    stats, w_true = _diag_distorted([1.0] * 4, shift)
    w, auxf = estimate_fmllr(stats, update="offset")
    torch.testing.assert_close(w[:, :-1], torch.eye(4, dtype=torch.float64), atol=0, rtol=0)
    torch.testing.assert_close(w, w_true, atol=0.05, rtol=0)
    assert auxf[1] > auxf[0]


def test_diag_and_offset_are_exact_maxima_of_their_family():
    """No small change within the family raises Q (the closed forms are the optimum)."""
    stats, _ = _diag_distorted([1.3, 0.8, 1.1], [0.2, -0.4, 1.0], frames=300, seed=4, gauss_per_pdf=2)
    gen = torch.Generator().manual_seed(0)
    w_diag, auxf_diag = estimate_fmllr(stats, update="diag")
    w_off, auxf_off = estimate_fmllr(stats, update="offset")
    mask_diag = torch.cat([torch.eye(3, dtype=torch.float64), torch.ones(3, 1, dtype=torch.float64)], 1)
    mask_off = torch.cat([torch.zeros(3, 3, dtype=torch.float64), torch.ones(3, 1, dtype=torch.float64)], 1)
    for w, q, mask in ((w_diag, auxf_diag[-1], mask_diag), (w_off, auxf_off[-1], mask_off)):
        for _ in range(20):
            step = 1e-3 * torch.randn(3, 4, generator=gen, dtype=torch.float64) * mask
            assert fmllr_auxf(w + step, stats) <= q + 1e-9 * abs(q)
    # Nested families: identity in offset in diag.
    assert auxf_diag[-1] >= auxf_off[-1] >= auxf_off[0]


def test_every_update_type_never_below_identity():
    """Q of each shape's estimate >= Q(identity), also on few frames, a full (not diagonal)
    distortion, mixtures and silence-like frame weights. (seed 2, 200 frames: the true
    transform is a reflection, which the full estimate rejects, but diag and offset still
    gain.)"""
    for seed, frames in ((0, 12), (1, 40), (3, 200), (2, 200), (1, 2000)):
        gmm, pdfs, x, _, _ = _model_and_data(gauss_per_pdf=2, frames=frames, seed=seed)
        weights = torch.ones(frames, dtype=torch.float64)
        weights[::4] = 0.01
        stats = FmllrStats.zeros(x.shape[1])
        accumulate_fmllr(gmm, x, pdfs, stats, weights=weights)
        q_identity = fmllr_auxf(torch.eye(x.shape[1], x.shape[1] + 1, dtype=torch.float64), stats)
        tol = 1e-9 * abs(q_identity)
        w_none, auxf_none = estimate_fmllr(stats, update="none")
        torch.testing.assert_close(w_none, torch.eye(x.shape[1], x.shape[1] + 1, dtype=torch.float64))
        assert auxf_none == [q_identity]
        q = {}
        if (seed, frames) == (2, 200):
            with pytest.raises(AsrError, match="non-positive determinant"):
                estimate_fmllr(stats, update="full")
        for kind in ("offset", "diag") + (("full",) if frames >= 40 and (seed, frames) != (2, 200) else ()):
            _, auxf = estimate_fmllr(stats, update=kind)
            assert auxf[0] == q_identity
            assert auxf[-1] >= q_identity - tol, (seed, kind, auxf)
            q[kind] = auxf[-1]
        assert q["diag"] >= q["offset"] - tol
        if "full" in q:
            assert q["full"] >= q["diag"] - tol  # the full optimum contains every diagonal one


def test_update_type_errors():
    stats, _ = _diag_distorted([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], frames=100)
    with pytest.raises(AsrError, match="update type 'dense'"):
        estimate_fmllr(stats, update="dense")
    # A constant feature dimension: its scale cannot be estimated, its offset can.
    gmm, pdfs, x, _, _ = _model_and_data(dim=3, frames=100, seed=6)
    x[:, 1] = 0.5
    flat = FmllrStats.zeros(3)
    accumulate_fmllr(gmm, x, pdfs, flat)
    with pytest.raises(AsrError, match="dimension 1 is constant"):
        estimate_fmllr(flat, update="diag")
    w, _ = estimate_fmllr(flat, update="offset")
    assert bool(torch.isfinite(w).all())
    # Too few frames: every shape returns the starting transform.
    for kind in ("full", "diag", "offset", "none"):
        w, auxf = estimate_fmllr(stats, update=kind, min_count=1000)
        torch.testing.assert_close(w, torch.eye(3, 4, dtype=torch.float64))
        assert len(auxf) == 1


def test_update_type_by_frame_count():
    assert fmllr_update_type(300.0) == "full"
    assert fmllr_update_type(299.9) == "diag"
    assert fmllr_update_type(60.0) == "diag"
    assert fmllr_update_type(59.0) == "offset"
    assert fmllr_update_type(10.0) == "offset"
    assert fmllr_update_type(9.5) == "none"
    assert fmllr_update_type(0.0, 0.0, 0.0, 0.0) == "none"  # no frames: nothing to estimate
    assert fmllr_update_type(100.0, min_count_full=50.0) == "full"


def test_failed_estimate_falls_back_to_a_smaller_transform(monkeypatch):
    stats, _ = _diag_distorted([1.2, 0.9, 1.1], [0.3, 0.0, -0.2], frames=400)
    thresholds = (300.0, 60.0, 10.0)
    failing: set[str] = set()

    def estimate(stats, update="full", **kw):
        if update in failing:
            raise AsrError("fMLLR estimate is not finite or has a non-positive determinant")
        return estimate_fmllr(stats, update=update, **kw)

    monkeypatch.setattr(fmllr_adapt, "estimate_fmllr", estimate)
    assert fmllr_adapt._speaker_fmllr(stats, 5, "s", thresholds)[1:] == ("full", False)
    failing.add("full")
    w, kind, fell_back = fmllr_adapt._speaker_fmllr(stats, 5, "s", thresholds)
    assert (kind, fell_back) == ("diag", True)
    torch.testing.assert_close(w, estimate_fmllr(stats, update="diag")[0])
    failing.add("diag")
    assert fmllr_adapt._speaker_fmllr(stats, 5, "s", thresholds)[1:] == ("offset", True)
    failing.add("offset")
    w, kind, fell_back = fmllr_adapt._speaker_fmllr(stats, 5, "s", thresholds)
    assert (kind, fell_back) == ("none", True)
    torch.testing.assert_close(w, torch.eye(3, 4, dtype=torch.float64))
    # The fallback never goes to a shape the frame count does not allow.
    assert fmllr_adapt._speaker_fmllr(stats, 5, "s", (300.0, 1e9, 1e9))[1:] == ("none", True)


def test_adapt_fmllr_chooses_the_update_type_by_frame_count(caplog):
    """Four test speakers, 432 / 162 / ~30 / 6 frames: full, diag, offset, none."""
    phones = ["a", "b", "c"]
    tm = TransitionModel.create(phones, num_states=3)
    n = tm.num_hmm_states
    base = DiagGmmSet.single_gaussian(n, torch.zeros(n), torch.ones(n))
    model = GmmHmm(tm, MonophonePdfMap(n), DiagGmmSet(6.0 * torch.eye(n, dtype=torch.float64), base.variances,
                                                       base.log_weights, base.pdf_of_gauss))
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.6, 1.6, size=n)
    speakers = {  # speaker: (utterances, frames per HMM state, distortion scale, shift)
        "full": ([["a", "b", "c"], ["c", "a", "b"]] * 4, 6, scale, 0.5),
        "diag": ([["b", "c", "a"], ["a", "c", "b"], ["c", "b", "a"]], 6, scale, -0.5),
        "offset": ([["a", "b", "c"]], 3, 1.0, rng.normal(size=n)),
        "none": ([["a"]], 2, 1.0, 1.0),
    }
    clean, distorted, utt2spk, frames = {}, {}, {}, {}
    for spk, (utts, dur, a, b) in speakers.items():
        for i, u in enumerate(utts):
            pdfs = np.repeat(model.chain(tm.phone_ids(u)).pdfs, dur)
            x = (6.0 * np.eye(n)[pdfs] + rng.normal(size=(len(pdfs), n))).astype(np.float32)
            name = f"{spk}_u{i}"
            clean[name], distorted[name], utt2spk[name] = x, (a * x + b).astype(np.float32), spk
            frames[spk] = frames.get(spk, 0) + len(pdfs)
    assert frames == {"full": 216 * 2, "diag": 162, "offset": 27, "none": 6}
    lm = estimate_bigram([u for utts, *_ in speakers.values() for u in utts], phones)
    graph = build_graph(hmm_view(model), lm)
    opts = SearchOptions(acoustic_scale=0.1)
    transforms: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    with caplog.at_level(logging.INFO, logger="asr.decode.fmllr_adapt"):
        adapted = adapt_fmllr(model, distorted, utt2spk, graph, opts, transforms=transforms, kinds=kinds)
    assert kinds == {"full": "full", "diag": "diag", "offset": "offset", "none": "none"}
    notes = [r.getMessage() for r in caplog.records if r.name == "asr.decode.fmllr_adapt"]
    assert len(notes) == 1 and "4 test speaker(s): 1 full, 1 diag, 1 offset, 1 none" in notes[0], notes
    eye = np.eye(n, n + 1)
    a_full, a_diag = transforms["full"][:, :-1], transforms["diag"][:, :-1]
    assert np.abs(a_full - np.diag(np.diag(a_full))).max() > 0  # a dense estimate
    np.testing.assert_array_equal(a_diag, np.diag(np.diag(a_diag)))
    np.testing.assert_array_equal(transforms["offset"][:, :-1], np.eye(n))
    np.testing.assert_array_equal(transforms["none"], eye)
    for u in clean:
        before = np.abs(distorted[u] - clean[u]).mean()
        after = np.abs(adapted[u] - clean[u]).mean()
        if utt2spk[u] == "none":
            np.testing.assert_array_equal(adapted[u], distorted[u])
        else:
            assert after < 0.4 * before, (u, before, after)
    # The former two-way rule (full from min_count frames, else identity) still holds.
    kinds = {}
    adapt_fmllr(model, distorted, utt2spk, graph, opts, num_passes=1, min_count=100, kinds=kinds)
    assert kinds == {"full": "full", "diag": "full", "offset": "none", "none": "none"}
    with pytest.raises(AsrError, match="min_count_diag must be >= 0"):
        adapt_fmllr(model, distorted, utt2spk, graph, opts, min_count_diag=-1.0)
