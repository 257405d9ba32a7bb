"""Decoding graph + kaldi-decoder on hand-made models whose best path is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asr.decode.gmm_decode import decode_gmm
from asr.decode.gmm_model import hmm_view
from asr.errors import AsrError
from asr.graph.hclg import GraphOptions, build_graph
from asr.graph.phone_lm import estimate_bigram
from asr.graph.search import SearchOptions, best_path
from asr.hmm.gmm import DiagGmmSet
from asr.hmm.model import GmmHmm, MonophonePdfMap
from asr.hmm.topology import TransitionModel
from asr.hmm.tree import TreePdfMap
from fst_paths import path_cost

PHONES = ["a", "b", "c"]
UTTS = [["a", "b", "c"], ["c", "b", "a", "b", "c"], ["b"], ["a", "c", "a"]]


def _tree_model() -> GmmHmm:
    """2 states per phone; b's state 0 depends on 'left is a', c's state 1 on 'right is the boundary'."""
    tm = TransitionModel.create(PHONES, num_states=2)
    tm.self_loop = np.array([0.6, 0.7, 0.5, 0.8, 0.65, 0.55])
    questions = [frozenset({0}), frozenset({3})]  # {a}, {boundary}
    #        a0  a1  b0  b1  c0  c1  b0|a b0|~a c1|# c1|~#
    key = [-1, -1, 0, -1, -1, 2, -1, -1, -1, -1]
    question = [-1, -1, 0, -1, -1, 1, -1, -1, -1, -1]
    yes = [-1, -1, 6, -1, -1, 8, -1, -1, -1, -1]
    no = [-1, -1, 7, -1, -1, 9, -1, -1, -1, -1]
    pdf = [0, 1, -1, 4, 5, -1, 2, 3, 6, 7]
    pm = TreePdfMap(questions, key, question, yes, no, pdf, [[0, 1], [2, 3], [4, 5]], num_phones=3)
    gmm = DiagGmmSet.single_gaussian(pm.num_pdfs, torch.zeros(2), torch.ones(2))
    return GmmHmm(tm, pm, gmm)


def _frame_pdfs(model: GmmHmm, utt: list[str], rng: np.random.Generator) -> np.ndarray:
    ids = model.tm.phone_ids(utt)
    chain = model.pdf_map.chain_pdfs(model.tm, ids)
    return np.repeat(chain, rng.integers(1, 5, size=len(chain)))


def test_tree_graph_follows_the_context(tmp_path) -> None:
    model = _tree_model()
    view = hmm_view(model)
    assert view.context_dependent and view.num_pdfs == 8
    graph = build_graph(view, estimate_bigram(UTTS, PHONES))
    rng = np.random.default_rng(0)
    for utt in UTTS:
        pdfs = _frame_pdfs(model, utt, rng)
        # The right pdf scores 0, all others -20: only the exact triphone path is cheap.
        ll = np.full((len(pdfs), view.num_pdfs), -20.0, dtype=np.float32)
        ll[np.arange(len(pdfs)), pdfs] = 0.0
        path = best_path(ll, graph, SearchOptions(acoustic_scale=1.0))
        assert path is not None and path.reached_final
        np.testing.assert_array_equal(path.columns, pdfs)  # label i read column i - 1
        assert [PHONES[i - 1] for i in path.labels] == utt


def test_monophone_decode_gmm_recovers_phones() -> None:
    tm = TransitionModel.create(PHONES, num_states=3)
    n = tm.num_hmm_states
    # Pdf p is a unit Gaussian at 6 * e_p: frames at its mean are unambiguous.
    gmm = DiagGmmSet.single_gaussian(n, torch.zeros(n), torch.ones(n))
    gmm = DiagGmmSet(6.0 * torch.eye(n, dtype=torch.float64), gmm.variances, gmm.log_weights, gmm.pdf_of_gauss)
    model = GmmHmm(tm, MonophonePdfMap(n), gmm)
    view = hmm_view(model)
    assert not view.context_dependent
    graph = build_graph(view, estimate_bigram(UTTS, PHONES), GraphOptions(self_loop_scale=0.1))
    rng = np.random.default_rng(1)
    feats = {f"u{i}": 6.0 * np.eye(n, dtype=np.float32)[_frame_pdfs(model, u, rng)] for i, u in enumerate(UTTS)}
    hyp = decode_gmm(model, feats, graph, PHONES, SearchOptions(acoustic_scale=0.1))
    assert hyp == {f"u{i}": u for i, u in enumerate(UTTS)}
    with pytest.raises(AsrError, match="utterance 'bad'.*expects \\[frames, 9\\]"):
        decode_gmm(model, {"bad": np.zeros((4, 3), np.float32)}, graph, PHONES)


def test_lm_decides_when_acoustics_are_silent() -> None:
    """Flat likelihoods: the best path is the LM's (and topology's) favourite sequence."""
    model = _tree_model()
    view = hmm_view(model)
    lm = estimate_bigram([["a", "c"]] * 20 + [["b"]], PHONES)
    graph = build_graph(view, lm, GraphOptions(self_loop_scale=0.0))
    path = best_path(np.zeros((10, view.num_pdfs), np.float32), graph, SearchOptions())
    assert [PHONES[i - 1] for i in path.labels] == ["a", "c"]


def test_phone_set_mismatch() -> None:
    with pytest.raises(AsrError, match="phones differ"):
        build_graph(hmm_view(_tree_model()), estimate_bigram([["a", "b"]], ["a", "b"]))


@pytest.mark.parametrize("make_model", [_tree_model, lambda: GmmHmm(
    TransitionModel(PHONES, [3, 2, 1], np.array([0.9, 0.5, 0.3, 0.6, 0.8, 0.7])), MonophonePdfMap(6),
    DiagGmmSet.single_gaussian(6, torch.zeros(1), torch.ones(1)))], ids=["tree", "mono"])
def test_path_cost_is_lm_plus_scaled_transitions(make_model) -> None:
    model = make_model()
    view = hmm_view(model)
    lm = estimate_bigram(UTTS[:2], PHONES)  # leaves many bigrams unseen: back-off costs too
    sls = 0.3
    graph = build_graph(view, lm, GraphOptions(self_loop_scale=sls))
    rng = np.random.default_rng(2)
    log_loop, log_fwd = model.tm.log_probs()
    for utt in [*UTTS, ["c", "a", "c", "b", "a"]]:
        ids = model.tm.phone_ids(utt)
        chain = model.chain(ids)
        pos = np.repeat(np.arange(len(chain.pdfs)), rng.integers(1, 4, size=len(chain.pdfs)))
        stay = pos[1:] == pos[:-1]
        h = chain.hmm_states[pos]
        trans = -(np.where(stay, log_loop[h[:-1]], log_fwd[h[:-1]]).sum() + log_fwd[h[-1]])
        expected = -lm.sentence_log_prob(utt) + sls * trans
        got = path_cost(graph, list(chain.pdfs[pos] + 1), list(ids + 1))
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-3), utt
    # A pdf sequence the model cannot produce has no path.
    assert path_cost(graph, [int(chain.pdfs[-1]) + 1], [int(ids[0]) + 1]) == float("inf")
