"""Feature store: Kaldi ark/scp round trips, CMVN stats, reuse, bad input, kaldi_scp."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch

from asr.data.kaldi_dir import DataDir, load_utterance, read_data_dir
from asr.errors import AsrError
from asr.features import FeatureConfig, FeatureStore, cmvn_stats, compute_feature_store, fbank
from asr.features.cmvn import apply_cmvn
from asr.features.extract import INT16_SCALE


def make_data_dir(root: Path, utts: dict[str, tuple[str, np.ndarray, int]]) -> DataDir:
    """Write WAVs; ``utts`` maps utt -> (speaker, samples in [-1, 1], sample rate)."""
    root.mkdir(parents=True, exist_ok=True)
    d = DataDir()
    for utt, (spk, x, rate) in utts.items():
        path = root / f"{utt}.wav"
        subtype = "FLOAT" if not np.all(np.isfinite(x)) else "PCM_16"
        sf.write(path, x, rate, subtype=subtype)
        d.wav[utt], d.utt2spk[utt] = str(path), spk
    return d


def tone(seconds: float, freq: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * noise).astype(np.float32)


@pytest.fixture
def good_dir(tmp_path: Path) -> DataDir:
    utts = {
        f"{spk}_u{i}": (spk, tone(0.5 + 0.2 * i, 200 + 100 * i + (50 if spk == "s2" else 0), seed=i), 16000)
        for spk in ("s1", "s2")
        for i in range(3)
    }
    return make_data_dir(tmp_path / "wav", utts)


def test_round_trip_with_kaldiio(good_dir: DataDir, tmp_path: Path) -> None:
    cfg = FeatureConfig(dither=0.0, cmvn="none")
    store = compute_feature_store(good_dir, tmp_path / "features" / "train", cfg, num_workers=1, progress=False)
    out = tmp_path / "features" / "train"
    assert {p.name for p in out.iterdir()} >= {
        "feats.ark", "feats.scp", "cmvn.ark", "cmvn.scp", "utt2num_frames", "utt2spk", "config.json"
    }
    ours = dict(kaldiio.load_scp(str(out / "feats.scp")))
    assert sorted(ours) == good_dir.utts == store.utts
    for utt in good_dir.utts:
        x, rate = load_utterance(good_dir, utt)
        expected = fbank(torch.from_numpy(x * INT16_SCALE), rate).numpy()
        np.testing.assert_array_equal(ours[utt], expected)  # bit-identical through the ark
        np.testing.assert_array_equal(store.load(utt), expected)
        assert store.num_frames[utt] == expected.shape[0]
    # The ark alone (read sequentially, as Kaldi's ark: readers do) holds the same matrices.
    for utt, mat in kaldiio.load_ark(str(out / "feats.ark")):
        np.testing.assert_array_equal(mat, ours[utt])
    # CMVN stats: per speaker, Kaldi layout, sum over that speaker's utterances only.
    cmvn = dict(kaldiio.load_scp(str(out / "cmvn.scp")))
    assert sorted(cmvn) == ["s1", "s2"]
    for spk in ("s1", "s2"):
        expected = sum(cmvn_stats(ours[u]) for u in good_dir.utts if good_dir.utt2spk[u] == spk)
        assert cmvn[spk].shape == (2, 41) and cmvn[spk].dtype == np.float64
        np.testing.assert_allclose(cmvn[spk], expected, rtol=1e-9)
    info = json.loads((out / "config.json").read_text())
    assert info["num_utts"] == 6 and info["num_skipped"] == 0 and info["raw_dim"] == 40
    # A moved store still reads its own arks.
    moved = out.rename(tmp_path / "moved")
    np.testing.assert_array_equal(FeatureStore(moved).raw(good_dir.utts[-1]), ours[good_dir.utts[-1]])


def test_transforms_on_reading(good_dir: DataDir, tmp_path: Path) -> None:
    out = tmp_path / "feats"
    cfg = FeatureConfig(kind="mfcc", dither=0.0, cmvn="speaker_meanvar", deltas=2, splice_left=2, splice_right=1)
    store = compute_feature_store(good_dir, out, cfg, num_workers=1, progress=False)
    assert store.raw_dim == 13 and store.dim == 13 * 3 * 4
    utt = good_dir.utts[0]
    feats = store.load(utt)
    assert feats.shape == (store.num_frames[utt], 156)
    raw = store.raw(utt)
    normed = apply_cmvn(raw, store.cmvn_stats("s1"), norm_vars=True)
    # Centre block of the splice (offset 2 of 4), static part: the normalised features.
    np.testing.assert_allclose(feats[:, 2 * 39 : 2 * 39 + 13], normed, atol=1e-6)
    # Over all of a speaker's frames, the normalised statics have zero mean and unit variance.
    allf = np.concatenate([store.load(u)[:, 78:91] for u in store.utts if store.utt2spk[u] == "s1"])
    np.testing.assert_allclose(allf.mean(0), 0, atol=1e-3)
    np.testing.assert_allclose(allf.std(0), 1, atol=1e-3)
    # Transform options of a reader override the stored ones without re-extraction.
    plain = FeatureStore(out, FeatureConfig(cmvn="none"))
    np.testing.assert_array_equal(plain.load(utt), raw)


def test_workers_and_seed_give_identical_stores(good_dir: DataDir, tmp_path: Path) -> None:
    cfg = FeatureConfig(dither=1.0, seed=3)
    one = compute_feature_store(good_dir, tmp_path / "a", cfg, num_workers=1, progress=False)
    two = compute_feature_store(good_dir, tmp_path / "b", cfg, num_workers=2, progress=False)
    other = compute_feature_store(good_dir, tmp_path / "c", FeatureConfig(dither=1.0, seed=4), 1, False)
    for utt in good_dir.utts:
        np.testing.assert_array_equal(one.raw(utt), two.raw(utt))
        assert not np.array_equal(one.raw(utt), other.raw(utt))


def test_up_to_date_store_is_reused(good_dir: DataDir, tmp_path: Path) -> None:
    out = tmp_path / "feats"
    cfg = FeatureConfig(dither=0.0)
    compute_feature_store(good_dir, out, cfg, num_workers=1, progress=False)
    stamp = (out / "config.json").stat().st_mtime_ns
    # Same inputs, only transforms changed: reused.
    store = compute_feature_store(good_dir, out, FeatureConfig(dither=0.0, deltas=2), 1, False)
    assert (out / "config.json").stat().st_mtime_ns == stamp and store.dim == 120
    # An extraction option changed: rebuilt.
    compute_feature_store(good_dir, out, FeatureConfig(dither=0.0, num_mel_bins=23), 1, False)
    assert FeatureStore(out).raw_dim == 23
    stamp = (out / "config.json").stat().st_mtime_ns
    # An audio file newer than the store: rebuilt.
    wav = Path(good_dir.wav[good_dir.utts[0]])
    future = (out / "config.json").stat().st_mtime + 10
    os.utime(wav, (future, future))
    compute_feature_store(good_dir, out, FeatureConfig(dither=0.0, num_mel_bins=23), 1, False)
    assert (out / "config.json").stat().st_mtime_ns != stamp
    # A different utterance list: rebuilt.
    compute_feature_store(good_dir.subset(good_dir.utts[:2]), out, FeatureConfig(dither=0.0), 1, False)
    assert FeatureStore(out).utts == good_dir.utts[:2]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_bad_utterances_are_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    nan = tone(0.5, 300)
    nan[100] = np.nan
    d = make_data_dir(tmp_path / "wav", {
        "s1_good": ("s1", tone(0.5, 300), 16000),
        "s1_short": ("s1", tone(0.02, 300), 16000),  # 20 ms < one 25 ms frame
        "s1_nan": ("s1", nan, 16000),
        "s2_8k": ("s2", tone(0.5, 300, rate=8000), 8000),
    })
    d.wav["s2_missing"], d.utt2spk["s2_missing"] = str(tmp_path / "nope.wav"), "s2"
    cfg = FeatureConfig(dither=0.0, resample=False)
    with caplog.at_level(logging.WARNING):
        store = compute_feature_store(d, tmp_path / "f", cfg, num_workers=1, progress=False)
    assert store.utts == ["s1_good"]
    info = store.info
    assert info["num_skipped"] == 4
    assert "shorter than one 25 ms frame" in info["skipped"]["s1_short"]
    assert "NaN or Inf" in info["skipped"]["s1_nan"]
    assert "8000 Hz" in info["skipped"]["s2_8k"] and "features.resample=true" in info["skipped"]["s2_8k"]
    assert "s2_missing" in info["skipped"]["s2_missing"]
    assert all(f"'{u}'" in line for u, line in info["skipped"].items())  # each line names its utterance
    assert "s1_nan" in caplog.text
    # With resampling on, the 8 kHz utterance is resampled (with a warning) and kept.
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        store = compute_feature_store(d, tmp_path / "g", FeatureConfig(dither=0.0), 1, False)
    assert "s2_8k" in store and store.info["num_resampled"] == 1 and "resampled 1" in caplog.text
    assert abs(store.num_frames["s2_8k"] - store.num_frames["s1_good"]) <= 1


def test_nothing_usable_is_an_error(tmp_path: Path) -> None:
    d = make_data_dir(tmp_path / "wav", {"u": ("s", tone(0.01, 300), 16000)})
    with pytest.raises(AsrError, match="no utterance"):
        compute_feature_store(d, tmp_path / "f", FeatureConfig(), num_workers=1, progress=False)
    assert not (tmp_path / "f").exists()


def test_kaldi_scp_wraps_an_ark_written_by_kaldiio(good_dir: DataDir, tmp_path: Path) -> None:
    # A Kaldi-style data dir with features from elsewhere (think fMLLR), paths relative
    # to the recipe dir as Kaldi writes them.
    recipe = tmp_path / "s5"
    (recipe / "fmllr").mkdir(parents=True)
    (recipe / "data-fmllr-tri3" / "train").mkdir(parents=True)
    rng = np.random.default_rng(0)
    mats = {u: rng.standard_normal((50 + i, 40)).astype(np.float32) for i, u in enumerate(good_dir.utts[:5])}
    cwd = os.getcwd()
    try:
        os.chdir(recipe)
        kaldiio.save_ark("fmllr/feats_train.1.ark", mats, scp="data-fmllr-tri3/train/feats.scp")
    finally:
        os.chdir(cwd)
    scp = str(recipe / "data-fmllr-tri3" / "{set}" / "feats.scp")
    cfg = FeatureConfig(kind="kaldi_scp", scp=scp, cmvn="speaker_mean")
    store = compute_feature_store(good_dir, tmp_path / "exp" / "features" / "train", cfg, progress=False)
    assert store.utts == sorted(mats) and store.info["num_skipped"] == 1  # one utt has no features
    assert not (store.path / "feats.ark").exists()  # nothing copied
    for utt, mat in mats.items():
        np.testing.assert_array_equal(store.raw(utt), mat)
        spk_stats = sum(cmvn_stats(m) for u, m in mats.items() if good_dir.utt2spk[u] == good_dir.utt2spk[utt])
        np.testing.assert_allclose(store.load(utt), apply_cmvn(mat, spk_stats), atol=1e-5)
    # Reused while the ark is unchanged.
    stamp = (store.path / "config.json").stat().st_mtime_ns
    compute_feature_store(good_dir, store.path, cfg, progress=False)
    assert (store.path / "config.json").stat().st_mtime_ns == stamp
    with pytest.raises(AsrError, match="not found"):
        compute_feature_store(good_dir, tmp_path / "x", FeatureConfig(kind="kaldi_scp", scp=str(tmp_path / "no.scp")))


def test_real_audio_store(mini_timit_dirs: dict, tmp_path: Path) -> None:
    d = read_data_dir(mini_timit_dirs["test"])
    store = compute_feature_store(mini_timit_dirs["test"], tmp_path / "test", FeatureConfig(), 2, False)
    assert store.utts == d.utts and store.info["num_skipped"] == 0
    for utt in d.utts:
        # 10 ms frames: about 100 per second of audio.
        assert abs(store.num_frames[utt] - d.utt2dur[utt] * 100) < 3
        assert np.isfinite(store.load(utt)).all()
