import itertools

import numpy as np
import pytest
import torch

from asr.errors import AsrError
from asr.hmm.topology import TransitionModel, transition_counts
from asr.hmm.viterbi import equal_alignment, viterbi_batch


def _path_score(pos, em, lo, fo):
    s = float(em[0, pos[0]])
    for t in range(1, len(pos)):
        s += float(lo[pos[t]] if pos[t] == pos[t - 1] else fo[pos[t - 1]]) + float(em[t, pos[t]])
    return s


def _brute_force(em, lo, fo):
    t, s = em.shape
    best, best_pos = -np.inf, None
    # A path is fixed by the frames at which it moves on (S-1 of the T-1 gaps).
    for moves in itertools.combinations(range(1, t), s - 1):
        pos = np.zeros(t, dtype=np.int64)
        for m in moves:
            pos[m:] += 1
        score = _path_score(pos, em, lo, fo)
        if score > best:
            best, best_pos = score, pos
    return best_pos, best


def test_viterbi_matches_brute_force_on_a_batch():
    gen = torch.Generator().manual_seed(0)
    shapes = [(7, 3), (9, 4), (5, 5), (8, 1), (3, 4)]
    ems, los, fos = [], [], []
    for t, s in shapes:
        ems.append(torch.randn(t, s, generator=gen) * 3)
        p = torch.rand(s, generator=gen) * 0.8 + 0.1
        los.append(p.log())
        fos.append((1 - p).log())
    got = viterbi_batch(ems, los, fos)
    for (t, s), e, lo, fo, g in zip(shapes, ems, los, fos, got):
        if t < s:
            assert g is None
            continue
        pos, score = _brute_force(e.numpy(), lo.numpy(), fo.numpy())
        np.testing.assert_array_equal(g[0], pos)
        assert g[1] == pytest.approx(score, rel=1e-5)
        assert g[1] == pytest.approx(_path_score(g[0], e, lo, fo), rel=1e-5)


def test_equal_alignment():
    np.testing.assert_array_equal(equal_alignment(7, 3), [0, 0, 0, 1, 1, 2, 2])
    assert equal_alignment(2, 3) is None
    pos = equal_alignment(100, 9)
    assert np.all(np.diff(pos) >= 0) and np.bincount(pos).min() >= 11


def test_transition_model_chain_and_update():
    tm = TransitionModel.create(["sil", "a", "b"], num_states=3, silence_phones=("sil",), num_silence_states=5)
    assert tm.num_hmm_states == 11
    chain = tm.chain(tm.phone_ids(["sil", "a", "a", "b"]))
    np.testing.assert_array_equal(chain, [0, 1, 2, 3, 4, 5, 6, 7, 5, 6, 7, 8, 9, 10])
    with pytest.raises(AsrError, match="utt1.*'zz'"):
        tm.phone_ids(["a", "zz"], utt="utt1")
    ph_chain = tm.chain(tm.phone_ids(["a", "a"]))
    positions = np.array([0, 0, 1, 2, 2, 2, 3, 4, 5])  # "a" twice: each visit counted
    loop, fwd = transition_counts(positions, ph_chain, tm.num_hmm_states)
    assert loop[5] == 1 and fwd[5] == 2 and loop[7] == 2 and fwd[7] == 2 and fwd[6] == 2
    tm.update(loop, fwd)
    assert tm.self_loop[5] == pytest.approx(1 / 3) and tm.self_loop[7] == pytest.approx(0.5)
    assert tm.self_loop[0] == 0.75  # unseen keeps its value
    assert tm.self_loop[6] == 0.01  # floored
    again = TransitionModel.from_state_dict(tm.state_dict())
    np.testing.assert_array_equal(again.self_loop, tm.self_loop)
