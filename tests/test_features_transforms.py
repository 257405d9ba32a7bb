"""CMVN, deltas and splicing against kaldi-native-fbank's ports of Kaldi's tools."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asr.features import add_deltas, apply_cmvn, cmvn_stats, splice_frames
from asr.features.config import MFCC_FIELDS, FeatureConfig
from asr.errors import AsrError

knf = pytest.importorskip("kaldi_native_fbank")


@pytest.fixture
def feats() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((57, 6)) * [1, 2, 3, 4, 5, 6] + [10, -3, 0, 1, 2, 3]).astype(np.float32)


def test_cmvn_stats_layout_and_sum(feats: np.ndarray) -> None:
    stats = cmvn_stats(feats)
    assert stats.shape == (2, 7) and stats.dtype == np.float64
    assert stats[0, -1] == 57 and stats[1, -1] == 0
    np.testing.assert_allclose(stats[0, :-1], feats.sum(0, dtype=np.float64), rtol=1e-6)
    np.testing.assert_allclose(stats[1, :-1], (feats.astype(np.float64) ** 2).sum(0), rtol=1e-6)
    # Speaker stats are sums of utterance stats.
    np.testing.assert_allclose(cmvn_stats(feats[:20]) + cmvn_stats(feats[20:]), stats, rtol=1e-9)


@pytest.mark.parametrize("norm_vars", [False, True])
def test_apply_cmvn_matches_kaldi(feats: np.ndarray, norm_vars: bool) -> None:
    stats = cmvn_stats(feats[:30])  # stats from other utterances of the speaker
    opts = knf.CmvnOptions()
    opts.norm_vars = norm_vars
    ref = knf.apply_cmvn(stats, opts, feats)
    np.testing.assert_allclose(knf.compute_cmvn_stats(feats[:30]), stats, rtol=1e-6)
    ours = apply_cmvn(feats, stats, norm_vars=norm_vars)
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    full = apply_cmvn(feats, cmvn_stats(feats), norm_vars=norm_vars)
    np.testing.assert_allclose(full.mean(0), 0, atol=1e-4)
    if norm_vars:
        np.testing.assert_allclose(full.std(0), 1, atol=1e-4)


def test_apply_cmvn_rejects_wrong_dim(feats: np.ndarray) -> None:
    with pytest.raises(ValueError):
        apply_cmvn(feats, cmvn_stats(feats[:, :3]))


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("frames", [1, 3, 57])
def test_deltas_match_kaldi(feats: np.ndarray, order: int, frames: int) -> None:
    x = np.ascontiguousarray(feats[:frames])
    ref = knf.compute_deltas(knf.DeltaOptions(order=order, window=2), x)
    ours = add_deltas(x, order=order)
    assert ours.shape == (frames, 6 * (order + 1))
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_delta_of_a_ramp_is_its_slope() -> None:
    x = np.arange(20, dtype=np.float32)[:, None] * 0.5
    d = add_deltas(x, order=2)
    np.testing.assert_allclose(d[4:-4, 1], 0.5, atol=1e-6)
    np.testing.assert_allclose(d[4:-4, 2], 0.0, atol=1e-6)


@pytest.mark.parametrize("left,right", [(0, 0), (1, 1), (5, 5), (3, 0), (0, 2), (11, 11)])
def test_splice_matches_kaldi_and_is_a_view(feats: np.ndarray, left: int, right: int) -> None:
    ours = splice_frames(feats, left, right)
    ref = knf.splice_frames(feats, knf.SpliceOptions(left_context=left, right_context=right))
    np.testing.assert_array_equal(ours, ref)
    if left or right:
        # One padded copy: (T + left + right) x dim, not T x (left + 1 + right) x dim.
        assert not ours.flags.owndata and not ours.flags.writeable
        low, high = np.lib.array_utils.byte_bounds(ours)
        assert high - low == (feats.shape[0] + left + right) * feats.shape[1] * ours.itemsize


def test_config_validation() -> None:
    with pytest.raises(AsrError, match="features.kind"):
        FeatureConfig(kind="plp")
    with pytest.raises(AsrError, match="features.scp"):
        FeatureConfig(kind="kaldi_scp")
    with pytest.raises(AsrError, match="features.deltas"):
        FeatureConfig(deltas=3)
    with pytest.raises(AsrError, match="unknown option"):
        FeatureConfig.from_dict({"num_mel_bin": 40})
    cfg = FeatureConfig(deltas=2, cmvn="none")
    assert "deltas" not in cfg.extraction_options() and "num_mel_bins" in cfg.extraction_options()


@pytest.mark.parametrize("name", ["fbank", "mfcc", "kaldi_scp"])
def test_hydra_group_files_match_the_options(name: str) -> None:
    from dataclasses import fields

    from omegaconf import OmegaConf

    path = Path(__file__).resolve().parents[1] / "configs" / "features" / f"{name}.yaml"
    raw = OmegaConf.load(path)
    values = {k: v for k, v in OmegaConf.to_container(raw).items() if k != "defaults"}  # the schema
    assert set(values) <= {f.name for f in fields(FeatureConfig)}
    assert values["kind"] == name
    if name == "kaldi_scp":
        assert OmegaConf.is_missing(raw, "scp")
        values["scp"] = "/x/feats.scp"
    else:
        mfcc_only = set() if name == "mfcc" else set(MFCC_FIELDS)  # fbank carries no dead MFCC keys
        assert set(values) == {f.name for f in fields(FeatureConfig)} - {"scp"} - mfcc_only
        assert values["seed"] == "${seed}"  # the top-level seed unless features.seed is set
        values["seed"] = 0
    cfg = FeatureConfig.from_dict(values)
    assert cfg.kind == name


def test_subsampling_keeps_every_kth_spliced_frame(feats: np.ndarray) -> None:
    from asr.features.store import transform_features, transformed_frames

    cfg = FeatureConfig(cmvn="none", splice_left=1, splice_right=1, subsample=3)
    out = transform_features(feats, cfg, None)
    spliced = splice_frames(feats, 1, 1)
    assert out.shape == (transformed_frames(len(feats), cfg), feats.shape[1] * 3)
    assert np.array_equal(out, spliced[::3])  # frame i stacks 10 ms frames 3i-1, 3i, 3i+1
    for n in (1, 2, 3, 4, 7):
        assert transformed_frames(n, cfg) == len(transform_features(feats[:n], cfg, None))
    assert transformed_frames(10, FeatureConfig()) == 10
    for bad in (0, -1):
        with pytest.raises(AsrError, match="features.subsample"):
            FeatureConfig(subsample=bad)
