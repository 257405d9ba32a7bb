"""Kaldi data dirs: round trip, validation errors, atomic replacement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.data.kaldi_dir import DataDir, Segment, load_audio, load_utterance, read_data_dir, write_data_dir
from asr.errors import AsrError


def _datadir(tmp_path: Path) -> DataDir:
    audio = np.linspace(-0.5, 0.5, 16000, dtype=np.float32)
    sf.write(tmp_path / "a.wav", audio, 16000, subtype="PCM_16")
    return DataDir(
        wav={"s1_u1": str(tmp_path / "a.wav"), "s2_u1": str(tmp_path / "a.wav")},
        text={"s1_u1": "hello world", "s2_u1": "bye"},
        phones={"s1_u1": "sil hh ah sil", "s2_u1": "b ay"},
        utt2spk={"s1_u1": "s1", "s2_u1": "s2"},
        utt2dur={"s1_u1": 1.0, "s2_u1": 1.0},
    )


def test_round_trip_and_spk2utt(tmp_path: Path) -> None:
    d = _datadir(tmp_path)
    write_data_dir(d, tmp_path / "dir")
    assert (tmp_path / "dir" / "spk2utt").read_text() == "s1 s1_u1\ns2 s2_u1\n"
    back = read_data_dir(tmp_path / "dir")
    assert back.wav == d.wav and back.text == d.text and back.phones == d.phones
    assert back.utt2spk == d.utt2spk and back.utt2dur == d.utt2dur
    assert back.subset(["s2_u1"]).utts == ["s2_u1"]


def test_rewrite_replaces_atomically(tmp_path: Path) -> None:
    d = _datadir(tmp_path)
    write_data_dir(d, tmp_path / "dir")
    write_data_dir(d.subset(["s1_u1"]), tmp_path / "dir")
    assert read_data_dir(tmp_path / "dir").utts == ["s1_u1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "dir"]  # no temp dirs left


def test_segments_select_region(tmp_path: Path) -> None:
    d = _datadir(tmp_path)
    d.wav = {"rec": str(tmp_path / "a.wav")}
    d.segments = {"s1_u1": Segment("rec", 0.25, 0.5), "s2_u1": Segment("rec", 0.0, 1.0)}
    write_data_dir(d, tmp_path / "dir")
    back = read_data_dir(tmp_path / "dir")
    x, sr = load_utterance(back, "s1_u1")
    assert sr == 16000 and x.shape == (4000,)
    full, _ = load_audio(tmp_path / "a.wav")
    np.testing.assert_array_equal(x, full[4000:8000])


def test_errors_name_file_and_key(tmp_path: Path) -> None:
    with pytest.raises(AsrError, match="data directory not found"):
        read_data_dir(tmp_path / "nope")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "wav.scp").write_text("u1 /x.wav\nu1 /y.wav\n")
    (bad / "utt2spk").write_text("u1 s1\n")
    with pytest.raises(AsrError, match=r"wav.scp:2: duplicate key 'u1'"):
        read_data_dir(bad)
    (bad / "wav.scp").write_text("u2 /x.wav\n")
    with pytest.raises(AsrError, match=r"utterance 'u1' has no entry in wav.scp"):
        read_data_dir(bad)
    (bad / "wav.scp").write_text("u1 sph2pipe -f wav /x.wav |\n")
    with pytest.raises(AsrError, match="piped command"):
        read_data_dir(bad)
    (tmp_path / "trunc.wav").write_bytes(b"RIFF\x00\x00")
    with pytest.raises(AsrError, match=r"trunc.wav: cannot read audio"):
        load_audio(tmp_path / "trunc.wav")
