import numpy as np
import pytest

from asr.data.kaldi_dir import DataDir, write_data_dir
from asr.errors import AsrError
from asr.hmm.align_data import align_data_dir
from asr.hmm.pipeline import GmmPipelineConfig, train_gmm_pipeline
from asr.hmm.topology import TransitionModel
from asr.hmm.training_set import TrainingSet


def test_unknown_phone_names_the_utterance():
    tm = TransitionModel.create(["sil", "a"])
    feats = {"u1": np.zeros((10, 2), np.float32), "u2": np.zeros((10, 2), np.float32)}
    with pytest.raises(AsrError, match="u2.*'zz'"):
        TrainingSet.build(feats, {"u1": "sil a sil", "u2": "sil zz"}, tm)


def test_missing_features_and_empty_utterances_are_counted(caplog):
    tm = TransitionModel.create(["sil", "a"])
    feats = {"u1": np.zeros((10, 2), np.float32), "u3": np.zeros((0, 2), np.float32)}
    data = TrainingSet.build(feats, {"u1": "sil a", "u2": "a", "u3": "a"}, tm)
    assert data.utts == ["u1"]
    assert any("1 utterance(s) with a transcript have no features" in r.message for r in caplog.records)
    assert any("1 utterance(s) with no frames" in r.message for r in caplog.records)
    with pytest.raises(AsrError, match="inconsistent dimensions"):
        TrainingSet.build({"u1": np.zeros((5, 2), np.float32), "u2": np.zeros((5, 3), np.float32)},
                          {"u1": "a", "u2": "a"}, tm)


def test_pipeline_rejects_bad_requests(tmp_path):
    with pytest.raises(AsrError, match="prefix"):
        GmmPipelineConfig(stages=("mono", "tri2"))
    d = DataDir(wav={"u1": "/nonexistent.wav"}, utt2spk={"u1": "s1"}, text={"u1": "hello"})
    write_data_dir(d, tmp_path / "data")
    with pytest.raises(AsrError, match="no phone transcripts"):
        train_gmm_pipeline(tmp_path / "data", {}, tmp_path / "exp")
    with pytest.raises(AsrError, match="has not finished"):
        align_data_dir(tmp_path / "exp", "tri3", tmp_path / "data", {}, tmp_path / "ali")
