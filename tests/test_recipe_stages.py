"""The recipe's data and feature stages on tiny mini-TIMIT: outputs, contamination, reuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asr.data.kaldi_dir import load_utterance, read_data_dir
from asr.data.noise import active_speech_power
from asr.errors import AsrError
from asr.features.config import FeatureConfig
from asr.recipe.run import run_recipe
from asr.recipe.settings import RecipeSettings


def _settings(root: Path, exp: Path, **kw) -> RecipeSettings:
    return RecipeSettings(corpus_root=root, exp_dir=exp, data_dir=exp / "data",
                          features=FeatureConfig(kind="fbank", num_mel_bins=23), **kw)


def test_data_and_feature_stages_write_every_set_and_are_reused(mini_timit_root: Path, tmp_path: Path) -> None:
    sets = ["test", "test_white_snr5", "test_reverb_t60_300"]
    s = _settings(mini_timit_root, tmp_path / "exp", test_sets=sets, stop_stage="features")
    assert run_recipe(s) == "features"
    for name in ["train", "dev", *sets]:
        store = tmp_path / "exp" / "features" / name
        assert (store / "feats.scp").is_file() and (store / "cmvn.scp").is_file(), name

    # The realised SNR on real (synthetic-speech) utterances, against the clean speech.
    clean, noisy = read_data_dir(s.data_dir / "test"), read_data_dir(s.data_dir / "test_white_snr5")
    assert noisy.utts == clean.utts and noisy.phones == clean.phones
    for utt in clean.utts:
        x, sr = load_utterance(clean, utt)
        y, _ = load_utterance(noisy, utt)
        snr = 10 * np.log10(active_speech_power(x, sr) / np.mean((y - x) ** 2))
        assert snr == pytest.approx(5.0, abs=0.5), utt

    feats = tmp_path / "exp" / "features" / "test_reverb_t60_300" / "feats.scp"
    mtime = feats.stat().st_mtime_ns
    run_recipe(s)
    assert feats.stat().st_mtime_ns == mtime


def test_unknown_base_set_and_unbuilt_stage_are_one_line_errors(mini_timit_root: Path, tmp_path: Path) -> None:
    with pytest.raises(AsrError, match="'eval_white_snr5' needs the set 'eval'"):
        run_recipe(_settings(mini_timit_root, tmp_path / "exp", test_sets=["eval_white_snr5"], stop_stage="data"))
    with pytest.raises(AsrError, match="stop_stage: 'nope'"):
        run_recipe(_settings(mini_timit_root, tmp_path / "exp", stop_stage="nope"))


def test_align_stage_gives_fmllr_features_of_every_set_and_gmm_baselines(
        mini_timit_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import json
    import logging

    from asr.decode.gmm_decode import GmmDecodeConfig
    from asr.features.store import FeatureStore

    from test_hmm_pipeline import _small_config  # the tiny corpus' GMM sizes

    sets = ["test", "test_white_snr10"]
    s = RecipeSettings(corpus_root=mini_timit_root, exp_dir=tmp_path / "exp", data_dir=tmp_path / "exp" / "data",
                       features=FeatureConfig(cmvn="speaker_mean"), features_kind="fmllr", test_sets=sets,
                       gmm_decode=True, stop_stage="align", gmm=_small_config(),
                       gmm_decoding=GmmDecodeConfig(acoustic_scales=(0.1,), beam=10.0, max_active=1000))
    with caplog.at_level(logging.INFO):
        assert run_recipe(s) == "align"
    for name in ["train", "dev", *sets]:
        store = FeatureStore(tmp_path / "exp" / "features" / name)
        d = read_data_dir(s.data_dir / name)
        assert sorted(store.utt2spk) == d.utts, name
        x = store.load(d.utts[0])
        assert x.shape[1] == 40 and np.isfinite(x).all(), name
        # Per-speaker mean normalisation was applied on top of the fMLLR frames.
        spk = d.utt2spk[d.utts[0]]
        frames = np.concatenate([store.load(u) for u in d.spk2utt[spk]])
        np.testing.assert_allclose(frames.mean(0), 0.0, atol=1e-3)
    # Dev and test were adapted without transcripts: one transform per speaker.
    for name in ["dev", *sets]:
        trans = tmp_path / "exp" / "gmm" / f"fmllr_{name}" / "trans.scp"
        assert len(trans.read_text().splitlines()) == len(read_data_dir(s.data_dir / name).spk2utt)
    for stage in ("mono", "tri1", "tri2", "tri3"):
        results = json.loads((tmp_path / "exp" / "gmm" / f"decode_{stage}" / "results.json").read_text())
        for name in ["dev", *sets]:
            assert 0.0 <= results[name]["per"] < 100.0, (stage, name)
    assert "| tri3 |" in caplog.text and "test_white_snr10" in caplog.text

    # Unchanged inputs: nothing is recomputed.
    feats = tmp_path / "exp" / "gmm" / "fmllr_test" / "feats.ark"
    res = tmp_path / "exp" / "gmm" / "decode_tri3" / "results.json"
    mtimes = feats.stat().st_mtime_ns, res.stat().st_mtime_ns
    run_recipe(s)
    assert (feats.stat().st_mtime_ns, res.stat().st_mtime_ns) == mtimes
