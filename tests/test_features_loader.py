"""Training batches: bucketing, padding, frame labels and token targets."""

from __future__ import annotations

from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch

from asr.data.kaldi_dir import DataDir
from asr.errors import AsrError
from asr.features import (
    BucketBatchSampler, FeatureConfig, FeatureDataset, FeatureStore, build_data_loader, compute_feature_store,
)
from asr.features.loader import IGNORE_INDEX


@pytest.fixture
def store(tmp_path: Path) -> FeatureStore:
    """A kaldi_scp store of 20 utterances of 30..220 frames whose values encode (utt, frame)."""
    mats = {}
    d = DataDir()
    for i in range(20):
        utt = f"spk{i % 3}_u{i:02d}"
        frames = 30 + (i * 37) % 191
        mats[utt] = (i * 1000 + np.arange(frames, dtype=np.float32))[:, None].repeat(4, axis=1)
        d.wav[utt], d.utt2spk[utt] = "unused.wav", f"spk{i % 3}"
    kaldiio.save_ark(str(tmp_path / "in.ark"), mats, scp=str(tmp_path / "in.scp"))
    cfg = FeatureConfig(kind="kaldi_scp", scp=str(tmp_path / "in.scp"), cmvn="none")
    return compute_feature_store(d, tmp_path / "store", cfg, progress=False)


def frame_labels(store: FeatureStore) -> dict[str, np.ndarray]:
    return {u: (np.arange(store.num_frames[u]) % 7).astype(np.int32) for u in store.utts}


def test_batches_cover_all_once_within_max_frames(store: FeatureStore) -> None:
    sampler = BucketBatchSampler([store.num_frames[u] for u in store.utts], max_frames=600, seed=1)
    batches = list(sampler)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(store)))
    lengths = np.array([store.num_frames[u] for u in store.utts])
    for b in batches:
        assert len(b) == 1 or len(b) * lengths[b].max() <= 600
    # Bucketing keeps padding low: similar lengths share a batch.
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert padded < 1.4 * lengths.sum()
    # Deterministic per (seed, epoch); a new epoch reshuffles.
    assert list(BucketBatchSampler(lengths, max_frames=600, seed=1)) == batches
    sampler.set_epoch(1)
    assert list(sampler) != batches
    assert all(len(b) <= 3 for b in BucketBatchSampler(lengths, batch_size=3))
    with pytest.raises(AsrError):
        BucketBatchSampler(lengths)


def test_frame_label_batches(store: FeatureStore, tmp_path: Path) -> None:
    labels = frame_labels(store)
    kaldiio.save_ark(str(tmp_path / "ali.ark"), labels, scp=str(tmp_path / "ali.scp"))
    ds = FeatureDataset(store, alignments=tmp_path / "ali.scp")
    loader = build_data_loader(ds, max_frames=500, seed=0)
    seen = 0
    for batch in loader:
        B, T, F = batch.feats.shape
        assert F == 4 and batch.feats.dtype == torch.float32 and batch.lengths.dtype == torch.int64
        assert batch.targets.shape == (B, T) and batch.target_lengths is None
        assert T == int(batch.lengths.max()) and bool((batch.lengths[:-1] >= batch.lengths[1:]).all())
        for b, utt in enumerate(batch.utts):
            n = int(batch.lengths[b])
            np.testing.assert_array_equal(batch.feats[b, :n].numpy(), store.raw(utt))
            assert bool((batch.feats[b, n:] == 0).all())
            np.testing.assert_array_equal(batch.targets[b, :n].numpy(), labels[utt])
            assert bool((batch.targets[b, n:] == IGNORE_INDEX).all())
        seen += B
    assert seen == len(store)
    # Padded labels are ignored by the loss.
    logits = torch.randn(2, 3, 7)
    y = torch.tensor([[1, 2, IGNORE_INDEX], [3, IGNORE_INDEX, IGNORE_INDEX]])
    full = torch.nn.functional.cross_entropy(logits.reshape(-1, 7), y.reshape(-1))
    part = torch.nn.functional.cross_entropy(logits[[0, 0, 1], [0, 1, 0]], torch.tensor([1, 2, 3]))
    torch.testing.assert_close(full, part)


def test_alignment_length_mismatch(store: FeatureStore) -> None:
    labels = frame_labels(store)
    a, b = store.utts[0], store.utts[1]
    labels[a] = labels[a][:-2]  # two frames short: trimmed, counted
    labels[b] = np.concatenate([labels[b], [1]])  # one frame long: trimmed
    del labels[store.utts[2]]  # no alignment: left out, counted
    ds = FeatureDataset(store, alignments=labels)
    assert ds.num_trimmed == 2 and ds.num_missing == 1 and len(ds) == len(store) - 1
    utt, feats, target = ds[ds.utts.index(a)]
    assert feats.shape[0] == target.shape[0] == store.num_frames[a] - 2
    assert ds.skipped == [(store.utts[2], "no alignment")]
    labels[a] = labels[a][:-1]  # three frames short: beyond the trim
    with pytest.raises(AsrError, match=f"utterance '{a}'"):
        FeatureDataset(store, alignments=labels, strict=True)
    ds = FeatureDataset(store, alignments=labels)  # not strict: skipped, named and counted
    assert a not in ds.utts and ds.num_mismatched == 1 and ds.num_missing == 1
    assert [u for u, _ in ds.skipped] == [a, store.utts[2]]


def test_token_batches_for_ctc(store: FeatureStore) -> None:
    rng = np.random.default_rng(0)
    tokens = {u: list(rng.integers(1, 40, size=int(rng.integers(1, 12)))) for u in store.utts}
    ds = FeatureDataset(store, tokens=tokens)
    for batch in build_data_loader(ds, batch_size=4, shuffle=False):
        assert batch.target_lengths is not None
        assert batch.targets.shape == (len(batch.utts), int(batch.target_lengths.max()))
        for b, utt in enumerate(batch.utts):
            n = int(batch.target_lengths[b])
            assert batch.targets[b, :n].tolist() == tokens[utt] and bool((batch.targets[b, n:] == 0).all())
        logp = torch.randn(batch.feats.shape[1], len(batch.utts), 40).log_softmax(-1)
        loss = torch.nn.functional.ctc_loss(logp, batch.targets, batch.lengths, batch.target_lengths)
        assert torch.isfinite(loss)


def test_worker_processes_give_the_same_batches(store: FeatureStore) -> None:
    ds = FeatureDataset(store, alignments=frame_labels(store))
    a = [(b.utts, b.feats) for b in build_data_loader(ds, max_frames=400, seed=5)]
    b = [(b.utts, b.feats) for b in build_data_loader(ds, max_frames=400, seed=5, num_workers=2)]
    assert [x[0] for x in a] == [x[0] for x in b]
    for (_, fa), (_, fb) in zip(a, b):
        torch.testing.assert_close(fa, fb)
