"""The recipe's data and feature stages on tiny mini-TIMIT: outputs, contamination, reuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asr.data.kaldi_dir import load_utterance, read_data_dir
from asr.data.noise import active_speech_power
from asr.errors import AsrError
from asr.features.config import FeatureConfig
from asr.train.recipe import RecipeSettings, run_recipe


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
