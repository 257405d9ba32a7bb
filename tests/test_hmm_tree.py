import numpy as np
import torch

from asr.hmm.model import GmmHmm
from asr.hmm.questions import cluster_phones
from asr.hmm.topology import TransitionModel
from asr.hmm.trainer import GmmTrainOptions, accumulate_set
from asr.hmm.training_set import TrainingSet
from asr.hmm.tree import TreeOptions, TreePdfMap, build_tree
from asr.hmm.tree_stats import accumulate_tree_stats, gaussian_log_like
from asr.hmm.triphone import build_triphone_model, train_triphone

PHONES = ["a", "e", "i", "o", "p", "t", "k", "s"]
VOWELS = frozenset({0, 1, 2, 3})


def _context_data(num_utts=80, dim=3, seed=0):
    """State 2 of every phone is shifted when the next phone is a vowel; vowels have
    middle states close together, far from the consonants'. Returns the true alignments."""
    gen = np.random.default_rng(seed)
    tm = TransitionModel.create(PHONES)
    base = gen.normal(size=(len(PHONES), 3, dim)) * 0.5
    base[:4, 1] += 6.0  # vowels' middle states cluster apart from consonants'
    feats, text, true_pos = {}, {}, {}
    for u in range(num_utts):
        ids = gen.integers(0, len(PHONES), size=int(gen.integers(5, 12)))
        frames, pos = [], []
        for j, p in enumerate(ids):
            right_vowel = j + 1 < len(ids) and ids[j + 1] in VOWELS
            for s in range(3):
                n = int(gen.integers(2, 6))
                mean = base[p, s] + (3.0 if (s == 2 and right_vowel) else 0.0)
                frames.append(mean + 0.3 * gen.normal(size=(n, dim)))
                pos += [3 * j + s] * n
        name = f"u{u:03d}"
        feats[name] = np.concatenate(frames).astype(np.float32)
        text[name] = " ".join(PHONES[i] for i in ids)
        true_pos[name] = np.asarray(pos)
    data = TrainingSet.build(feats, text, tm)
    return tm, data, [true_pos[u] for u in data.utts]


def test_tree_stats_questions_and_splits():
    tm, data, ali = _context_data()
    for i, pos in enumerate(ali):
        assert len(pos) == data.offsets[i + 1] - data.offsets[i]
    stats = accumulate_tree_stats(tm, data, ali)
    assert stats.stats[:, 0].sum() == data.num_frames
    # Sum of x over events equals the sum over all frames.
    np.testing.assert_allclose(stats.stats[:, 1:4].sum(0), data.feats.double().sum(0).numpy(), rtol=1e-6)
    questions = cluster_phones(stats, tm.num_states)
    assert VOWELS in questions or frozenset(range(8)) - VOWELS in questions
    assert frozenset({len(PHONES)}) in questions
    base_leaves = tm.num_hmm_states
    tree = build_tree(stats, questions, tm, TreeOptions(max_leaves=base_leaves + len(PHONES), min_count=20))
    assert tree.num_pdfs == base_leaves + len(PHONES)
    for c in range(len(PHONES)):
        v, k = tree.lookup(5, c, 0, 2), tree.lookup(5, c, 6, 2)
        assert v != k, f"phone {PHONES[c]} state 2 should depend on the right vowel"
        assert tree.lookup(0, c, 0, 0) == tree.lookup(6, c, 6, 0)
    # The split gains what single Gaussians predict.
    pdfs = tree.event_pdfs(stats.events)
    leaf = np.zeros((tree.num_pdfs, stats.stats.shape[1]))
    np.add.at(leaf, pdfs, stats.stats)
    mono = np.zeros((tm.num_hmm_states, stats.stats.shape[1]))
    np.add.at(mono, tm.state_offset[stats.events[:, 1]] + stats.events[:, 3], stats.stats)
    assert gaussian_log_like(leaf).sum() > gaussian_log_like(mono).sum() + 1.0 * data.num_frames * 0.1
    again = TreePdfMap.from_state_dict(tree.state_dict())
    np.testing.assert_array_equal(again.event_pdfs(stats.events), pdfs)


def test_triphone_model_beats_monophone_likelihood(tmp_path):
    tm, data, ali = _context_data(seed=0)
    tri = build_triphone_model(tm, data, ali, TreeOptions(max_leaves=40, min_count=20))
    opts = GmmTrainOptions(num_iters=4, realign_iters=(2,), max_iter_inc=3, total_gauss=60, mixup_min_count=10)
    model, result, hist = train_triphone(tm, data, ali, TreeOptions(max_leaves=40, min_count=20), opts)
    assert model.pdf_map.num_pdfs == 40 and not result.failed
    stats, _, _ = accumulate_set(model, data, result.positions)
    from asr.hmm.mono import init_monophone
    from asr.hmm.trainer import update_model

    mono = init_monophone(tm, data)
    for _ in range(3):
        s, lo, fo = accumulate_set(mono, data, ali)
        mono = update_model(mono, s, lo, fo, opts, 0, torch.Generator())
    s, _, _ = accumulate_set(mono, data, ali)
    assert stats.log_like / stats.num_frames > s.log_like / s.num_frames + 0.3
    model.save(tmp_path / "tri.mdl")
    loaded = GmmHmm.load(tmp_path / "tri.mdl")
    np.testing.assert_array_equal(loaded.chain(data.phone_ids[0]).pdfs, model.chain(data.phone_ids[0]).pdfs)
    assert tri.gmm.num_gauss == 40


def test_phone_pdfs_are_the_leaves_of_each_phone():
    tm, data, ali = _context_data()
    stats = accumulate_tree_stats(tm, data, ali)
    tree = build_tree(stats, cluster_phones(stats, tm.num_states), tm,
                      TreeOptions(max_leaves=tm.num_hmm_states + len(PHONES), min_count=20))
    for p in range(len(PHONES)):
        pdfs = tree.phone_pdfs(tm, p)
        assert len(pdfs) > tm.num_states[p]  # state 2 depends on whether a vowel follows
        assert {tree.lookup(a, p, b, s) for a in (0, 5, 8) for b in (0, 6, 8)
                for s in range(3)} == set(pdfs.tolist())
    # Every pdf belongs to exactly one phone.
    owners = np.concatenate([tree.phone_pdfs(tm, p) for p in range(len(PHONES))])
    assert sorted(owners.tolist()) == list(range(tree.num_pdfs))


def test_frame_pdfs_can_leave_out_phones():
    from asr.hmm.trainer import frame_pdfs

    tm, data, ali = _context_data(num_utts=10)
    model = build_triphone_model(tm, data, ali, TreeOptions(max_leaves=30, min_count=20))
    every = frame_pdfs(model, data, ali).numpy()
    speech = frame_pdfs(model, data, ali, exclude_phones=[PHONES.index("s")]).numpy()
    assert (every >= 0).all()
    s_pdfs = model.pdf_map.phone_pdfs(model.tm, PHONES.index("s"))
    is_s = np.isin(every, s_pdfs)
    assert is_s.any() and (speech[is_s] == -1).all()
    np.testing.assert_array_equal(speech[~is_s], every[~is_s])
