"""Files from elsewhere run no code: a crafted pickle in a checkpoint or model file, a
``wav.scp`` pipeline (refused unless ``data.allow_pipes``); and written folders keep the
user's umask. (The commands' side of the crafted pickle is in ``cases.yaml``.)"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from catalogue import build_crafted_checkpoint, build_timit, write_audio

from asr.errors import AsrError


@pytest.fixture
def crafted(tmp_path: Path) -> tuple[Path, Path]:
    """(a checkpoint whose pickle creates ``marker`` when fully unpickled, marker)."""
    built = build_crafted_checkpoint(tmp_path)
    return built.paths["ckpt"], built.marker


def test_the_crafted_pickle_is_live(crafted: tuple[Path, Path]) -> None:
    """Without weights_only the payload runs: so the tests below prove something."""
    ckpt, marker = crafted
    torch.load(ckpt, weights_only=False)
    assert marker.exists()


def test_crafted_pickle_runs_no_code_and_gets_one_line(crafted: tuple[Path, Path]) -> None:
    from asr.hmm.model import GmmHmm
    from asr.recipe.redecode import read_checkpoint
    from asr.train.checkpoint import load_checkpoint

    ckpt, marker = crafted
    for load in (load_checkpoint, read_checkpoint, GmmHmm.load):
        with pytest.raises(AsrError) as err:
            load(ckpt)
        message = str(err.value)
        assert str(ckpt) in message and "\n" not in message, message
        assert not marker.exists(), f"{load.__qualname__} ran the pickle's code"


def _piped_data_dir(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A data dir whose one entry is ``cat a.wav | tee >(touch marker) |``-like: a pipeline
    that writes the audio and leaves a marker file when it runs."""
    wav = tmp_path / "a.wav"
    write_audio(wav, format="WAV", seconds=0.5)
    marker = tmp_path / "ran"
    d = tmp_path / "data"
    d.mkdir()
    (d / "wav.scp").write_text(f"u1 touch {marker} && cat {wav} |\n")
    (d / "utt2spk").write_text("u1 s1\n")
    return d, wav, marker


def test_pipelines_are_refused_unless_allowed(tmp_path: Path) -> None:
    from asr.data.kaldi_dir import load_audio, load_utterance, read_data_dir
    from asr.features.config import FeatureConfig
    from asr.features.store import compute_feature_store

    d, wav, marker = _piped_data_dir(tmp_path)
    with pytest.raises(AsrError, match=r"wav.scp: 'u1' is a piped command .* unless data.allow_pipes=true"):
        read_data_dir(d)
    cfg = FeatureConfig(num_mel_bins=23)
    with pytest.raises(AsrError, match="data.allow_pipes=true"):
        compute_feature_store(d, tmp_path / "feats", cfg, num_workers=1, progress=False)
    with pytest.raises(AsrError, match="data.allow_pipes=true"):  # nor does the loader run one by itself
        load_audio(f"touch {marker} |")
    assert not marker.exists()

    allowed = read_data_dir(d, allow_pipes=True)
    x, rate = load_utterance(allowed, "u1")
    y, _ = load_audio(wav)
    assert marker.exists() and rate == 16000
    np.testing.assert_array_equal(x, y)
    store = compute_feature_store(d, tmp_path / "feats", cfg, num_workers=1, progress=False, allow_pipes=True)
    assert store.utts == ["u1"]
    (d / "wav.scp").write_text("u1 exit 3 |\n")
    with pytest.raises(AsrError, match="pipeline failed with exit status 3"):
        load_utterance(read_data_dir(d, allow_pipes=True), "u1")


def test_allow_pipes_is_a_data_setting() -> None:
    from hydra import compose, initialize_config_dir

    from asr.cli.common import CONFIG_DIR
    from asr.cli.train import settings_from_config
    from asr.recipe.schema import register

    register()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        default = settings_from_config(compose("train", overrides=["data.root=/nowhere"]))
        allowed = settings_from_config(compose("train", overrides=["data.root=/nowhere", "data.allow_pipes=true"]))
    assert default.allow_pipes is False and allowed.allow_pipes is True


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=lambda m: f"umask_{m:03o}")
def test_written_folders_keep_the_umask(tmp_path: Path, umask: int) -> None:
    from asr.data.kaldi_dir import read_data_dir, write_data_dir
    from asr.data.timit import prepare_timit
    from asr.features.config import FeatureConfig
    from asr.features.store import compute_feature_store
    from asr.train.checkpoint import save_checkpoint

    corpus = build_timit(tmp_path)
    old = os.umask(umask)
    try:
        prepare_timit(corpus.paths["root"], tmp_path / "data")
        copy = write_data_dir(read_data_dir(tmp_path / "data" / "train"), tmp_path / "copy")
        compute_feature_store(tmp_path / "data" / "train", tmp_path / "feats", FeatureConfig(num_mel_bins=23),
                              num_workers=1, progress=False)
        save_checkpoint(tmp_path / "ckpt" / "a.pt", {"w": torch.zeros(2)})
    finally:
        os.umask(old)
    folder, file = 0o777 & ~umask, 0o666 & ~umask
    for d in (tmp_path / "data" / "train", copy, tmp_path / "feats", tmp_path / "ckpt"):
        assert _mode(d) == folder, f"{d}: {oct(_mode(d))}"
    for f in (tmp_path / "data" / "train" / "text", copy / "wav.scp", tmp_path / "feats" / "feats.ark",
              tmp_path / "ckpt" / "a.pt"):
        assert _mode(f) == file, f"{f}: {oct(_mode(f))}"
