import json

import kaldiio
import numpy as np
import pytest
import torch

from asr.data.kaldi_dir import read_data_dir
from asr.data.timit import read_phn_scp
from asr.features.store import compute_feature_store
from asr.hmm.align_data import align_data_dir
from asr.hmm.alignment_io import read_frame_phones
from asr.hmm.frame_accuracy import phone_frame_accuracy
from asr.hmm.gmm_update import GmmUpdateOptions
from asr.hmm.model import GmmHmm
from asr.hmm.pipeline import GmmPipelineConfig, train_gmm_pipeline
from asr.hmm.trainer import GmmTrainOptions, equal_alignments
from asr.hmm.training_set import TrainingSet
from asr.hmm.tree import TreeOptions
from asr.recipe.features import gmm_feature_config


def _small_config(stages=("mono", "tri1", "tri2", "tri3"), tri_gauss=300):
    tri = dict(num_iters=8, realign_iters=(4,), max_iter_inc=6, total_gauss=tri_gauss)
    tree = TreeOptions(max_leaves=180, min_count=20)
    return GmmPipelineConfig(
        stages=stages,
        mono=GmmTrainOptions(total_gauss=300, update=GmmUpdateOptions(min_gaussian_occupancy=3)),
        tri1=GmmTrainOptions(**tri), tri2=GmmTrainOptions(**tri), tri3=GmmTrainOptions(**tri),
        tri1_tree=tree, tri2_tree=tree, tri3_tree=tree, mllt_iters=(1, 3), fmllr_iters=(1, 3))


@pytest.fixture(scope="module")
def tiny_features(mini_timit_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp("hmm_feats")
    cfg = gmm_feature_config(seed=0)  # the recipe's GMM front end
    return compute_feature_store(mini_timit_dirs["train"], out / "train", cfg, num_workers=1, progress=False)


def test_pipeline_outputs_resume_and_accuracy(mini_timit_dirs, tiny_features, tmp_path, monkeypatch):
    torch.manual_seed(0)
    train = mini_timit_dirs["train"]
    results = train_gmm_pipeline(train, tiny_features, tmp_path, _small_config())
    d = read_data_dir(train)
    phn = read_phn_scp(train)
    for stage in ("mono", "tri1", "tri2", "tri3"):
        sd = tmp_path / stage
        r = results[stage]
        assert not r["reused"] and r["failed"] == 0
        model = GmmHmm.load(sd / "final.mdl")
        ali = {k: np.asarray(v) for k, v in kaldiio.load_scp(str(sd / "ali.scp")).items()}
        chain = {k: np.asarray(v) for k, v in kaldiio.load_scp(str(sd / "chain_ali.scp")).items()}
        assert sorted(ali) == d.utts
        counts = np.array(list(map(int, (sd / "pdf_counts.txt").read_text().split())))
        assert len(counts) == model.pdf_map.num_pdfs == r["num_pdfs"]
        assert counts.sum() == sum(len(a) for a in ali.values()) == r["num_frames"]
        for u in d.utts:
            assert len(ali[u]) == tiny_features.num_frames[u]
            # Every chain state visited in order: the alignment follows the transcript.
            ids = model.tm.phone_ids(d.phones[u].split())
            c = model.chain(ids)
            np.testing.assert_array_equal(np.unique(chain[u]), np.arange(len(c.pdfs)))
            assert np.all(np.diff(chain[u]) >= 0)
            np.testing.assert_array_equal(ali[u], c.pdfs[chain[u]])
        history = [json.loads(line) for line in (sd / "history.jsonl").read_text().splitlines()]
        assert history[-1]["log_like_per_frame"] > history[0]["log_like_per_frame"]
    assert results["tri1"]["num_pdfs"] > results["mono"]["num_pdfs"]
    mat = kaldiio.load_mat(str(tmp_path / "tri2" / "final.mat"))
    assert mat.shape == (40, 13 * 7 + 1)
    trans = dict(kaldiio.load_scp(str(tmp_path / "tri3" / "trans.scp")))
    assert sorted(trans) == sorted(d.spk2utt) and all(t.shape == (40, 41) for t in trans.values())
    fmllr = kaldiio.load_scp(str(tmp_path / "tri3" / "fmllr_feats.scp"))
    assert fmllr[d.utts[0]].shape == (tiny_features.num_frames[d.utts[0]], 40)

    # Viterbi training must beat the flat-start (equal) alignment it started from.
    mono = GmmHmm.load(tmp_path / "mono" / "final.mdl")
    feats = {u: tiny_features.load(u) for u in d.utts}
    data = TrainingSet.build(feats, d.phones, mono.tm, d.utt2spk)
    flat = {}
    for i, pos in enumerate(equal_alignments(mono, data).positions):
        ids = data.phone_ids[i]
        flat[data.utts[i]] = [mono.tm.phones[p] for p in ids[mono.chain(ids).phone_index[pos]]]
    flat_acc, _ = phone_frame_accuracy(flat, phn)
    acc = {s: phone_frame_accuracy(read_frame_phones(tmp_path / s), phn)[0] for s in results}
    print("frame accuracy on tiny:", acc, "flat start:", flat_acc)
    # Issue 4 asks mono >= 80 %; tiny measures 87.8 (mono) and 88.5 % (tri3). The small-corpus
    # figures (90 % asked of tri3) are printed by scripts/bench_align.py.
    assert acc["mono"] >= 0.85, (acc, flat_acc)
    assert acc["tri3"] >= 0.85, (acc, flat_acc)
    assert acc["mono"] > flat_acc + 0.05, (acc, flat_acc)

    # The dev set aligned with tri3 (first pass tri2, then per-speaker fMLLR).
    dev_cfg = gmm_feature_config(seed=0)
    dev_feats = compute_feature_store(mini_timit_dirs["dev"], tmp_path / "feats_dev", dev_cfg,
                                      num_workers=1, progress=False)
    import asr.hmm.align_data as align_module

    silence_args = []
    real_update = align_module.update_speaker_fmllr

    def spy(*args, **kwargs):
        silence_args.append(list(kwargs.get("silence_phones", ())))
        return real_update(*args, **kwargs)

    monkeypatch.setattr(align_module, "update_speaker_fmllr", spy)
    dev = align_data_dir(tmp_path, "tri3", mini_timit_dirs["dev"], dev_feats, tmp_path / "ali_dev")
    # Dev fMLLR follows SAT training's rule: silence frames give no statistics (the
    # dev alignments are the hybrid dev targets; they used to include silence).
    sil = GmmHmm.load(tmp_path / "tri3" / "final.mdl").tm.phone_id["sil"]
    assert silence_args and all(a == [sil] for a in silence_args), silence_args
    dev_d = read_data_dir(mini_timit_dirs["dev"])
    assert not dev.failed and dev.num_frames == sum(dev_feats.num_frames.values())
    assert sorted(kaldiio.load_scp(str(tmp_path / "ali_dev" / "ali.scp"))) == dev_d.utts
    assert sorted(kaldiio.load_scp(str(tmp_path / "ali_dev" / "trans.scp"))) == sorted(dev_d.spk2utt)
    dev_acc, _ = phone_frame_accuracy(read_frame_phones(tmp_path / "ali_dev"), read_phn_scp(mini_timit_dirs["dev"]))
    print("dev frame accuracy (tri3, fMLLR from a tri2 first pass):", dev_acc)
    # Dev utterances are unseen sentences and speakers, but with transcripts and fMLLR the
    # alignment should be nearly as good as train's. (The silence rule itself barely moves
    # the figure, 88.53 -> 88.48 % on small; the spy above is what checks it is applied.)
    assert dev_acc > acc["tri3"] - 0.05, (dev_acc, acc)

    # Unchanged inputs: every stage is reused. A changed tri1 option retrains tri1 onwards.
    again = train_gmm_pipeline(train, tiny_features, tmp_path, _small_config())
    assert all(r["reused"] for r in again.values())
    changed = train_gmm_pipeline(train, tiny_features, tmp_path, _small_config(stages=("mono", "tri1"), tri_gauss=320))
    assert changed["mono"]["reused"] and not changed["tri1"]["reused"]
