"""TIMIT data preparation on small hand-made corpora in the LDC layout."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.data.kaldi_dir import read_data_dir
from asr.data.phones import MAP_48_TO_39, TIMIT39, TIMIT48, TIMIT61, to_39
from asr.data import speakers
from asr.data.timit import prepare_timit, read_phn_scp
from asr.errors import AsrError

SR = 16000
PHN = [(0, 2000, "h#"), (2000, 3000, "q"), (3000, 5000, "ix"), (5000, 7000, "dcl"), (7000, 8000, "pau")]


def _write_utt(spk_dir: Path, sent: str, lower: bool = False, riff: bool = False, *,
               num_samples: int = 8000, txt: str = "0 8000 She had your dark suit.",
               phn: list[tuple[int, int, str]] = PHN) -> None:
    spk_dir.mkdir(parents=True, exist_ok=True)
    name = sent.lower() if lower else sent
    ext = (lambda e: e.lower() if lower else e)
    rng = np.random.default_rng(len(sent))
    audio = (0.1 * rng.standard_normal(num_samples)).astype(np.float32)
    fmt, subtype = ("WAV", "PCM_16") if riff else ("NIST", "PCM_16")
    sf.write(spk_dir / f"{name}{ext('.WAV')}", audio, SR, format=fmt, subtype=subtype)
    (spk_dir / f"{name}{ext('.PHN')}").write_text("".join(f"{a} {b} {l}\n" for a, b, l in phn))
    (spk_dir / f"{name}{ext('.TXT')}").write_text(txt + "\n")


def _make_corpus(root: Path, lower: bool = False) -> tuple[str, str]:
    dev, test = speakers.dev_speakers()[0], speakers.test_speakers()[0]
    case = (lambda s: s.lower() if lower else s)
    for spk in ("MABC0", "FXYZ0"):
        for sent in ("SX1", "SI2", "SA1"):
            _write_utt(root / case("TRAIN") / case("DR1") / case(spk), sent, lower)
    _write_utt(root / case("TEST") / case("DR2") / case(dev), "SX10", lower)
    _write_utt(root / case("TEST") / case("DR3") / case(test), "SX20", lower, riff=True)
    _write_utt(root / case("TEST") / case("DR3") / case("MNOT0"), "SX30", lower)  # neither dev nor core test
    return dev, test


def test_phone_sets_have_standard_sizes() -> None:
    assert (len(TIMIT61), len(TIMIT48), len(TIMIT39)) == (61, 48, 39)
    assert to_39(["ao", "ix", "vcl", "zh", "sil"]) == ["aa", "ih", "sil", "sh", "sil"]
    assert set(MAP_48_TO_39.values()) == set(TIMIT39)


def test_speaker_lists_are_the_standard_sizes_and_disjoint() -> None:
    dev, test = speakers.dev_speakers(), speakers.test_speakers()
    assert (len(dev), len(set(dev)), len(test), len(set(test))) == (50, 50, 24, 24)
    assert not set(dev) & set(test)


@pytest.mark.parametrize("lower", [False, True])
def test_prepare_writes_standard_split(tmp_path: Path, lower: bool) -> None:
    dev, test = _make_corpus(tmp_path / "TIMIT", lower)
    report = prepare_timit(tmp_path / "TIMIT", tmp_path / "data")
    assert report.num_utts == {"train": 4, "dev": 1, "test": 1}
    assert report.skipped == []
    train = read_data_dir(tmp_path / "data" / "train")
    assert train.utts == ["FXYZ0_SI2", "FXYZ0_SX1", "MABC0_SI2", "MABC0_SX1"]  # no SA sentences
    assert train.text["MABC0_SX1"] == "she had your dark suit"
    assert train.phones["MABC0_SX1"] == "sil ix vcl sil"  # q dropped, folded to 48
    assert train.utt2dur["MABC0_SX1"] == pytest.approx(0.5)
    assert train.spk2utt["MABC0"] == ["MABC0_SI2", "MABC0_SX1"]
    assert read_data_dir(tmp_path / "data" / "dev").utts == [f"{dev}_SX10"]
    assert read_data_dir(tmp_path / "data" / "test").utts == [f"{test}_SX20"]
    phn = read_phn_scp(tmp_path / "data" / "train")
    assert phn["MABC0_SX1"].is_file()


def test_bad_utterances_are_skipped_named_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "TIMIT"
    _make_corpus(root)
    spk = root / "TRAIN" / "DR1" / "MABC0"
    _write_utt(spk, "SX5", num_samples=4000)  # truncated: .PHN runs to 8000
    _write_utt(spk, "SX6", txt="0 8000 ...")  # empty transcript
    _write_utt(spk, "SX7", phn=[(0, 8000, "zz")])  # label outside the 61 set
    (spk / "SX8.WAV").write_bytes(b"NIST_1A\n garbage")  # unreadable audio
    (spk / "SX8.PHN").write_text("0 8000 h#\n")
    (spk / "SX8.TXT").write_text("0 8000 Hello.\n")
    with caplog.at_level(logging.WARNING):
        report = prepare_timit(root, tmp_path / "data")
    assert report.num_utts["train"] == 4
    assert len(report.skipped) == 4
    text = caplog.text
    assert "SX5.WAV: truncated audio" in text
    assert "SX6.TXT: empty transcript" in text
    assert "phone label 'zz'" in text
    assert "SX8.WAV: cannot read audio" in text
    assert "skipped 4 utterance(s)" in text


def test_missing_corpus_names_path_and_override(tmp_path: Path) -> None:
    with pytest.raises(AsrError, match=r"not_here: TIMIT corpus directory not found; set data.root="):
        prepare_timit(tmp_path / "not_here", tmp_path / "data")
    (tmp_path / "flat").mkdir()
    with pytest.raises(AsrError, match=r"no TRAIN/ and TEST/ folders"):
        prepare_timit(tmp_path / "flat", tmp_path / "data")


def test_nothing_written_when_a_split_is_empty(tmp_path: Path) -> None:
    root = tmp_path / "TIMIT"
    _write_utt(root / "TRAIN" / "DR1" / "MABC0", "SX1")
    (root / "TEST").mkdir()
    with pytest.raises(AsrError, match="no usable utterances for the 'dev' set"):
        prepare_timit(root, tmp_path / "data")
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_unchanged_corpus_is_reused_and_a_change_redoes_it(tmp_path: Path) -> None:
    _make_corpus(tmp_path / "TIMIT")
    prepare_timit(tmp_path / "TIMIT", tmp_path / "data")
    utt2spk = tmp_path / "data" / "train" / "utt2spk"
    mtime = utt2spk.stat().st_mtime_ns
    again = prepare_timit(tmp_path / "TIMIT", tmp_path / "data")
    assert utt2spk.stat().st_mtime_ns == mtime and again.num_utts["train"] == 4
    _write_utt(tmp_path / "TIMIT" / "TRAIN" / "DR1" / "MABC0", "SX9")
    assert prepare_timit(tmp_path / "TIMIT", tmp_path / "data").num_utts["train"] == 5
