"""Per-stage features (read from the stage folder) match training's, and test-time fMLLR undoes a speaker distortion."""

from __future__ import annotations

import kaldiio
import numpy as np
import torch

from asr.decode.fmllr_adapt import adapt_fmllr
from asr.decode.gmm_decode import decode_gmm
from asr.decode.gmm_model import hmm_view
from asr.features.deltas import add_deltas
from asr.graph.hclg import build_graph
from asr.graph.phone_lm import estimate_bigram
from asr.graph.search import SearchOptions
from asr.hmm.gmm import DiagGmmSet
from asr.hmm.lda_mllt_training import transform_set
from asr.hmm.model import GmmHmm, MonophonePdfMap
from asr.hmm.stage_transform import deltas_transform, lda_transform, load_stage_transform
from asr.hmm.topology import TransitionModel
from asr.hmm.training_set import TrainingSet

PHONES = ["a", "b", "c"]


def test_stage_features_match_training(tmp_path) -> None:
    rng = np.random.default_rng(0)
    static = {f"u{i}": rng.normal(size=(20 + i, 13)).astype(np.float32) for i in range(3)}
    tm = TransitionModel.create(PHONES, num_states=1)
    data = TrainingSet.build(static, {u: "a b" for u in static}, tm)
    w = torch.from_numpy(rng.normal(size=(40, 13 * 5 + 1)))
    lda_transform(w, 2).save(tmp_path)  # the splice context is read back from the stage folder
    loaded = load_stage_transform(tmp_path)
    assert loaded.splice_context == 2
    np.testing.assert_array_equal(kaldiio.load_mat(str(tmp_path / "final.mat")), w.numpy())
    ours = loaded.apply_all(static)
    theirs = transform_set(data, w, 2)
    for i, u in enumerate(data.utts):
        np.testing.assert_allclose(ours[u], theirs.utt_feats(i).numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(loaded.apply_set(data).feats.numpy(), theirs.feats.numpy(), rtol=1e-6)
    (tmp_path / "mono").mkdir()
    deltas_transform().save(tmp_path / "mono")
    mono = load_stage_transform(tmp_path / "mono")
    np.testing.assert_array_equal(mono.apply_all(static)["u1"], add_deltas(static["u1"]))


def test_fmllr_undoes_a_per_speaker_affine_distortion() -> None:
    tm = TransitionModel.create(PHONES, num_states=3)
    n = tm.num_hmm_states
    base = DiagGmmSet.single_gaussian(n, torch.zeros(n), torch.ones(n))
    model = GmmHmm(tm, MonophonePdfMap(n), DiagGmmSet(6.0 * torch.eye(n, dtype=torch.float64), base.variances,
                                                       base.log_weights, base.pdf_of_gauss))
    utts = [["a", "b", "c"], ["c", "a", "b"], ["b", "c", "a", "c"], ["a", "c"]] * 3
    lm = estimate_bigram(utts, PHONES)
    graph = build_graph(hmm_view(model), lm)
    rng = np.random.default_rng(0)
    clean, distorted, utt2spk = {}, {}, {}
    for i, u in enumerate(utts):
        chain = model.chain(tm.phone_ids(u)).pdfs
        pdfs = np.repeat(chain, rng.integers(3, 8, size=len(chain)))
        x = (6.0 * np.eye(n)[pdfs] + rng.normal(size=(len(pdfs), n))).astype(np.float32)
        spk = f"s{i % 2}"
        scale, shift = (2.0, -1.0) if spk == "s0" else (0.7, 0.8)  # each speaker its own distortion
        name = f"{spk}_u{i}"
        clean[name], distorted[name], utt2spk[name] = x, (scale * x + shift).astype(np.float32), spk
    opts = SearchOptions(acoustic_scale=0.1)
    adapted = adapt_fmllr(model, distorted, utt2spk, graph, opts, min_count=50)
    for u in clean:
        before = np.abs(distorted[u] - clean[u]).mean()
        after = np.abs(adapted[u] - clean[u]).mean()
        assert after < 0.3 * before, (u, before, after)
    hyps = decode_gmm(model, adapted, graph, PHONES, opts)
    assert hyps == {f"s{i % 2}_u{i}": u for i, u in enumerate(utts)}
