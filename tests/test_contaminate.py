"""Noisy and reverberant test sets: names, realised SNR, T60, determinism, bad input."""

import doctest
import json
from pathlib import Path

import numpy as np
import pyroomacoustics as pra
import pytest
import soundfile as sf
from scipy.signal import welch

import asr.data.contaminate as contaminate_module
from asr.data.contaminate import (babble_speaker_pools, contaminate_data_dir, contaminated_set_name,
                                  parse_set_name)
from asr.data.kaldi_dir import DataDir, Segment, read_data_dir, write_data_dir
from asr.data.noise import pink_noise, white_noise
from asr.data.reverb import estimate_t60
from asr.errors import AsrError

SR = 16000
FRAME = 320  # 20 ms: the active-speech analysis frame; bursts start and end on frame edges


def _speech(rng: np.random.Generator, f0: float, peak: float = 0.3):
    """Synthetic 'speech': harmonic bursts with a 4 Hz envelope between silences.

    Returns (samples [T] float, boolean mask [T] of the burst samples).
    """
    pieces, mask = [], []
    for _ in range(int(rng.integers(2, 4))):
        gap = FRAME * int(rng.integers(5, 12))
        burst = FRAME * int(rng.integers(10, 20))
        t = np.arange(burst) / SR
        voiced = sum(np.sin(2 * np.pi * k * f0 * t + k) / k for k in range(1, 9))
        voiced *= 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
        pieces += [np.zeros(gap), voiced]
        mask += [np.zeros(gap, bool), np.ones(burst, bool)]
    pieces.append(np.zeros(FRAME * 6))
    mask.append(np.zeros(FRAME * 6, bool))
    x = np.concatenate(pieces)
    return x * peak / np.abs(x).max(), np.concatenate(mask)


def _write_dir(path: Path, speakers: dict[str, float], utts_per_speaker: int = 2,
               seed: int = 0, peak: float = 0.3) -> tuple[Path, dict[str, np.ndarray]]:
    """A data dir of synthetic utterances, one pitch per speaker; returns it and the masks."""
    rng = np.random.default_rng(seed)
    (path / "audio").mkdir(parents=True)
    d, masks = DataDir(), {}
    for spk, f0 in speakers.items():
        for i in range(utts_per_speaker):
            utt = f"{spk}-u{i}"
            x, masks[utt] = _speech(rng, f0, peak)
            wav = path / "audio" / f"{utt}.wav"
            sf.write(wav, x, SR, subtype="PCM_16")
            d.wav[utt], d.text[utt], d.phones[utt] = str(wav), "a b", "sil aa sil"
            d.utt2spk[utt] = spk
    write_data_dir(d, path / "data")
    return path / "data", masks


def _read(path) -> np.ndarray:
    return sf.read(str(path), dtype="float64")[0]


def _realised_snr(clean: np.ndarray, mask: np.ndarray, noise: np.ndarray) -> float:
    """SNR from the known speech samples of the clean signal and the added noise."""
    return 10 * np.log10(np.mean(clean[mask] ** 2) / np.mean(noise ** 2))


@pytest.fixture()
def target(tmp_path):
    return _write_dir(tmp_path / "target", {"spkA": 120.0, "spkB": 210.0}, seed=1)


# ---------------------------------------------------------------- names


def test_set_names_round_trip():
    assert contaminated_set_name("test", "white", 5, None) == "test_white_snr5"
    assert contaminated_set_name("test", None, None, 600) == "test_reverb_t60_600"
    assert contaminated_set_name("test", "babble", 10, 600) == "test_reverb_t60_600_babble_snr10"
    assert contaminated_set_name("dev", "pink", -2.5, None) == "dev_pink_snr-2.5"
    for args in [("test", "white", 5.0, None), ("dev", "pink", -2.5, None), ("test", None, None, 600),
                 ("test_clean", "babble", 0.0, 300), ("test", None, None, None)]:
        assert parse_set_name(contaminated_set_name(*args)) == args
    assert doctest.testmod(contaminate_module).failed == 0


@pytest.mark.parametrize("name", ["", "test_white", "test_snr5", "test_babble_snr", "test_reverb_t60_x",
                                  "test_babble_snr10_reverb_t60_600", "test_reverb_t60_5",
                                  "test_hum_snr5", "test white_snr5"])
def test_bad_set_names(name):
    with pytest.raises(AsrError, match="test set name|t60_ms"):
        parse_set_name(name)


def test_bad_settings(target, tmp_path):
    src, _ = target
    for kwargs, msg in [({"noise": "white"}, "snr_db"), ({"snr_db": 5}, "snr_db"),
                        ({"noise": "hum", "snr_db": 5}, "unknown noise"), ({}, "give a noise"),
                        ({"t60_ms": 20}, "t60_ms"), ({"noise": "babble", "snr_db": 5}, "babble_source")]:
        with pytest.raises(AsrError, match=msg):
            contaminate_data_dir(src, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- noise


@pytest.mark.parametrize("noise,snr", [("white", 5.0), ("pink", 0.0), ("white", -5.0), ("pink", 20.0)])
def test_realised_snr_stationary_noise(target, tmp_path, noise, snr):
    src, masks = target
    out = contaminate_data_dir(src, tmp_path / "out", noise=noise, snr_db=snr, seed=3)
    clean_dir, noisy_dir = read_data_dir(src), read_data_dir(out)
    assert noisy_dir.utts == clean_dir.utts and noisy_dir.text == clean_dir.text
    assert noisy_dir.phones == clean_dir.phones and noisy_dir.utt2spk == clean_dir.utt2spk
    info = json.loads((out / "contamination.json").read_text())["utterances"]
    for utt in clean_dir.utts:
        assert Path(noisy_dir.wav[utt]).is_absolute()
        assert sf.info(noisy_dir.wav[utt]).subtype == "PCM_16"
        clean, noisy = _read(clean_dir.wav[utt]), _read(noisy_dir.wav[utt])
        assert len(noisy) == len(clean)
        noisy /= info[utt]["output_gain"]  # below 1 where the mix would clip (at -5 dB)
        assert abs(_realised_snr(clean, masks[utt], noisy - clean) - snr) < 0.5
        assert noisy_dir.utt2dur[utt] == pytest.approx(len(clean) / SR, abs=1e-4)


def test_noise_spectra():
    rng = np.random.default_rng(0)
    for make, slope_expected in [(pink_noise, -1.0), (white_noise, 0.0)]:
        f, p = welch(make(rng, 2 ** 17), fs=SR, nperseg=4096)
        band = (f >= 50) & (f <= 5000)
        slope = np.polyfit(np.log10(f[band]), np.log10(p[band]), 1)[0]
        assert abs(slope - slope_expected) < 0.1, (make.__name__, slope)


def test_clipping_is_avoided_and_snr_kept(tmp_path):
    src, masks = _write_dir(tmp_path / "loud", {"spkL": 150.0}, peak=0.99)
    out = contaminate_data_dir(src, tmp_path / "out", noise="white", snr_db=-5, seed=0)
    marker = json.loads((out / "contamination.json").read_text())
    assert marker["num_scaled_to_avoid_clipping"] == 2
    for utt, mask in masks.items():
        gain = marker["utterances"][utt]["output_gain"]
        assert gain < 1.0
        clean, noisy = _read(read_data_dir(src).wav[utt]), _read(out / "wav" / f"{utt}.wav")
        assert abs(_realised_snr(clean, mask, noisy / gain - clean) + 5.0) < 0.5


def test_babble_from_other_speakers(target, tmp_path):
    src, masks = target
    # Babble speakers at pitches far from the target's (120, 210 Hz); spkA is a target speaker.
    pitches = {"bab1": 97.0, "bab2": 131.0, "bab3": 163.0, "bab4": 187.0, "spkA": 120.0}
    babble_src, _ = _write_dir(tmp_path / "babble", pitches, seed=2)
    out = contaminate_data_dir(src, tmp_path / "out", noise="babble", snr_db=3, seed=0,
                               babble_source=babble_src, num_babble_speakers=3)
    info = json.loads((out / "contamination.json").read_text())["utterances"]
    clean_dir = read_data_dir(src)
    for utt in clean_dir.utts:
        used_spk = [u.split("-")[0] for u in info[utt]["babble"]]
        assert len(set(used_spk)) == 3 and "spkA" not in used_spk
        clean, noisy = _read(clean_dir.wav[utt]), _read(out / "wav" / f"{utt}.wav")
        noise = noisy - clean
        assert abs(_realised_snr(clean, masks[utt], noise) - 3.0) < 0.5
        # The added noise is voices of the chosen speakers: its energy sits at their harmonics.
        f, p = welch(noise, fs=SR, nperseg=8192)
        near = np.zeros_like(f, bool)
        for spk in used_spk:
            for k in range(1, 9):
                near |= np.abs(f - k * pitches[spk]) < 8.0
        assert p[near].sum() / p.sum() > 0.9
    with pytest.raises(AsrError, match="babble needs 5 speakers.*only 4"):
        contaminate_data_dir(src, tmp_path / "out5", noise="babble", snr_db=3,
                             babble_source=babble_src, num_babble_speakers=5)


def test_babble_pools_are_disjoint_halves_and_a_copy_never_hears_its_own_speaker(tmp_path):
    speakers = [f"F{i}" for i in range(5)] + [f"M{i}" for i in range(6)]
    train_pool, test_pool = babble_speaker_pools(reversed(speakers))
    assert not set(train_pool) & set(test_pool) and sorted(train_pool + test_pool) == sorted(speakers)
    assert abs(len(train_pool) - len(test_pool)) <= 1
    assert {s[0] for s in train_pool} == {s[0] for s in test_pool} == {"F", "M"}  # both genders in each
    # A training copy: the babble source is the set itself, drawn from a pool that holds its speakers.
    pitches = {"s1": 97.0, "s2": 131.0, "s3": 163.0, "s4": 187.0}
    src, _ = _write_dir(tmp_path / "train", pitches, utts_per_speaker=3, seed=3)
    pool = ["s1", "s2", "s3"]
    out = contaminate_data_dir(src, tmp_path / "copy", noise="babble", snr_db=5, seed=1,
                               babble_source=src, babble_speakers=pool, num_babble_speakers=2)
    info = json.loads((out / "contamination.json").read_text())
    assert info["settings"]["babble_speakers"] == pool
    for utt, u in info["utterances"].items():
        used = [b.split("-")[0] for b in u["babble"]]
        assert len(set(used)) == 2 and set(used) <= set(pool) and utt.split("-")[0] not in used
    with pytest.raises(AsrError, match="babble needs 3 speakers other than 's1'; the pool has 2"):
        contaminate_data_dir(src, tmp_path / "copy3", noise="babble", snr_db=5, babble_source=src,
                             babble_speakers=pool, num_babble_speakers=3)
    with pytest.raises(AsrError, match="speaker.*nobody not in the babble source"):
        contaminate_data_dir(src, tmp_path / "copy4", noise="babble", snr_db=5, babble_source=src,
                             babble_speakers=["s1", "nobody"], num_babble_speakers=1)


# ---------------------------------------------------------------- reverberation


def _impulse_dir(path: Path, num_utts: int = 3) -> tuple[Path, int]:
    """Utterances that are one click at 0.2 s in 1.5 s of silence."""
    (path / "audio").mkdir(parents=True)
    d, at = DataDir(), int(0.2 * SR)
    for i in range(num_utts):
        x = np.zeros(int(1.5 * SR))
        x[at] = 0.9
        utt = f"click-{i}"
        sf.write(path / "audio" / f"{utt}.wav", x, SR, subtype="PCM_16")
        d.wav[utt], d.utt2spk[utt] = str(path / "audio" / f"{utt}.wav"), "click"
    write_data_dir(d, path / "data")
    return path / "data", at


@pytest.mark.parametrize("t60_ms", [300, 700])
def test_reverb_decay_matches_t60_and_direct_path_is_aligned(tmp_path, t60_ms):
    src, at = _impulse_dir(tmp_path / "clicks")
    out = contaminate_data_dir(src, tmp_path / "out", t60_ms=t60_ms, seed=0, num_rirs=2)
    for utt in read_data_dir(src).utts:
        y = _read(out / "wav" / f"{utt}.wav")
        assert len(y) == int(1.5 * SR)
        # The direct path (the first strong arrival) is where the click was; only the
        # fractional-delay filter's pre-ringing (40 samples) comes before it.
        first = int(np.argmax(np.abs(y) >= 0.25 * np.abs(y).max()))
        assert at - 2 <= first <= at + 1
        assert np.all(y[:at - 40] == 0.0)
        assert np.sum(y ** 2) == pytest.approx(0.9 ** 2, rel=1e-3)  # energy kept
        tail = y[at - 40:]
        for t60 in (pra.experimental.measure_rt60(tail, fs=SR, decay_db=30), estimate_t60(tail, SR)):
            assert abs(t60 / (t60_ms / 1000) - 1) < 0.2, t60


def test_reverb_then_noise_snr_against_clean(target, tmp_path):
    src, masks = target
    rev = contaminate_data_dir(src, tmp_path / "rev", t60_ms=400, seed=5, num_rirs=2)
    both = contaminate_data_dir(src, tmp_path / "both", t60_ms=400, noise="white", snr_db=10,
                                seed=5, num_rirs=2)
    clean_dir = read_data_dir(src)
    for utt in clean_dir.utts:
        clean = _read(clean_dir.wav[utt])
        r, rn = _read(rev / "wav" / f"{utt}.wav"), _read(both / "wav" / f"{utt}.wav")
        assert not np.allclose(r, clean, atol=1e-3)  # reverberation did something
        assert np.sum(r ** 2) == pytest.approx(np.sum(clean ** 2), rel=1e-3)
        assert abs(_realised_snr(clean, masks[utt], rn - r) - 10.0) < 0.5


# ---------------------------------------------------------------- determinism, reuse, errors


def test_deterministic_and_independent_of_subset(target, tmp_path):
    src, _ = target
    kw = dict(noise="pink", snr_db=5, t60_ms=300, num_rirs=2)
    a = contaminate_data_dir(src, tmp_path / "a", seed=7, **kw)
    b = contaminate_data_dir(src, tmp_path / "b", seed=7, **kw)
    clean = read_data_dir(src)
    one = clean.utts[-1]
    c = contaminate_data_dir(clean.subset([one]), tmp_path / "c", seed=7, **kw)
    d = contaminate_data_dir(src, tmp_path / "d", seed=8, **kw)
    for utt in clean.utts:
        wav_a = (a / "wav" / f"{utt}.wav").read_bytes()
        assert wav_a == (b / "wav" / f"{utt}.wav").read_bytes()
        assert wav_a != (d / "wav" / f"{utt}.wav").read_bytes()
    assert (c / "wav" / f"{one}.wav").read_bytes() == (a / "wav" / f"{one}.wav").read_bytes()


def test_complete_output_is_reused_and_changed_settings_rewrite(target, tmp_path):
    src, _ = target
    out = contaminate_data_dir(src, tmp_path / "out", noise="white", snr_db=5)
    wav = out / "wav" / f"{read_data_dir(src).utts[0]}.wav"
    stamp = wav.stat().st_mtime_ns
    contaminate_data_dir(src, tmp_path / "out", noise="white", snr_db=5)
    assert wav.stat().st_mtime_ns == stamp
    before = wav.read_bytes()
    contaminate_data_dir(src, tmp_path / "out", noise="white", snr_db=15)
    assert wav.read_bytes() != before
    assert json.loads((out / "contamination.json").read_text())["settings"]["snr_db"] == 15.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "target"]


def test_segments_become_one_file_per_utterance(tmp_path):
    x = np.sin(2 * np.pi * 200 * np.arange(2 * SR) / SR) * 0.3
    (tmp_path / "rec").mkdir()
    sf.write(tmp_path / "rec" / "r1.wav", x, SR, subtype="PCM_16")
    d = DataDir(wav={"r1": str(tmp_path / "rec" / "r1.wav")},
                utt2spk={"s-u1": "s", "s-u2": "s"},
                segments={"s-u1": Segment("r1", 0.0, 0.5), "s-u2": Segment("r1", 0.5, 1.75)})
    out = contaminate_data_dir(d, tmp_path / "out", noise="white", snr_db=10)
    o = read_data_dir(out)
    assert not o.segments and o.utts == ["s-u1", "s-u2"]
    assert [sf.info(o.wav[u]).frames for u in o.utts] == [8000, 20000]


def test_missing_audio_names_utterance_and_writes_nothing(target, tmp_path):
    src, _ = target
    good = contaminate_data_dir(src, tmp_path / "out", noise="white", snr_db=5)
    before = (good / "wav.scp").read_text()
    d = read_data_dir(src)
    bad = d.utts[1]
    Path(d.wav[bad]).unlink()
    with pytest.raises(AsrError, match=f"utterance '{bad}'"):
        contaminate_data_dir(src, tmp_path / "out", noise="white", snr_db=10)
    with pytest.raises(AsrError, match=f"utterance '{bad}'"):
        contaminate_data_dir(src, tmp_path / "fresh", t60_ms=200, num_rirs=1)
    assert not (tmp_path / "fresh").exists()
    assert (good / "wav.scp").read_text() == before  # the old output is untouched
    assert json.loads((good / "contamination.json").read_text())["settings"]["snr_db"] == 5.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "target"]


def test_silent_utterance_is_an_error(tmp_path):
    (tmp_path / "a").mkdir()
    sf.write(tmp_path / "a" / "z.wav", np.zeros(SR), SR, subtype="PCM_16")
    d = DataDir(wav={"spk-z": str(tmp_path / "a" / "z.wav")}, utt2spk={"spk-z": "spk"})
    with pytest.raises(AsrError, match="utterance 'spk-z'.*silent"):
        contaminate_data_dir(d, tmp_path / "out", noise="white", snr_db=0)
