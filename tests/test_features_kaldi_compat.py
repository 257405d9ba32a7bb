"""Our fbank/MFCC against kaldi-native-fbank (Kaldi's feature code) and torchaudio."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asr.data.kaldi_dir import load_utterance, read_data_dir
from asr.features import fbank, mfcc
from asr.features.extract import INT16_SCALE, compute_features, dither_seed
from asr.features.config import FeatureConfig

knf = pytest.importorskip("kaldi_native_fbank")

TOL = 1e-3


def reference(x: np.ndarray, sample_rate: int = 16000, kind: str = "fbank", **opts) -> np.ndarray:
    """kaldi-native-fbank features of ``x`` with dither 0."""
    o = knf.MfccOptions() if kind == "mfcc" else knf.FbankOptions()
    o.frame_opts.dither = 0.0
    o.frame_opts.samp_freq = sample_rate
    o.frame_opts.snip_edges = opts.get("snip_edges", True)
    o.frame_opts.frame_length_ms = opts.get("frame_length", 25.0)
    o.frame_opts.frame_shift_ms = opts.get("frame_shift", 10.0)
    o.frame_opts.window_type = opts.get("window_type", "povey")
    o.mel_opts.num_bins = opts.get("num_mel_bins", 40 if kind == "fbank" else 23)
    o.mel_opts.low_freq = opts.get("low_freq", 20.0)
    o.mel_opts.high_freq = opts.get("high_freq", 0.0)
    o.use_energy = opts.get("use_energy", kind == "mfcc")
    if kind == "mfcc":
        o.num_ceps = opts.get("num_ceps", 13)
    comp = knf.OnlineMfcc(o) if kind == "mfcc" else knf.OnlineFbank(o)
    comp.accept_waveform(sample_rate, x.tolist())
    comp.input_finished()
    return np.array([comp.get_frame(i) for i in range(comp.num_frames_ready)])


def speech_like(rng: np.random.Generator, seconds: float, sample_rate: int = 16000) -> np.ndarray:
    """Noise bursts and harmonics with digital silence in between, int16 scale."""
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    x = 3000 * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    x += 800 * rng.standard_normal(n)
    x[n // 3 : n // 3 + 1600] = 0.0  # silent stretch: the log floor must match too
    return np.round(x).astype(np.float32)


CASES = [
    dict(),
    dict(snip_edges=False),
    dict(use_energy=True),
    dict(num_mel_bins=80, low_freq=64.0, high_freq=-400.0),
    dict(frame_length=20.0, frame_shift=12.5, window_type="hamming"),
    dict(window_type="hanning", snip_edges=False),
]


@pytest.mark.parametrize("opts", CASES, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
@pytest.mark.parametrize("seconds", [0.025, 0.0301, 1.0, 2.7])
def test_fbank_matches_kaldi_native_fbank(opts: dict, seconds: float) -> None:
    x = speech_like(np.random.default_rng(1), seconds)
    ours = fbank(torch.from_numpy(x), **opts).numpy()
    ref = reference(x, **opts)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=TOL, rtol=0)


@pytest.mark.parametrize(
    "opts", [dict(), dict(use_energy=False), dict(num_ceps=20, num_mel_bins=30), dict(snip_edges=False)]
)
def test_mfcc_matches_kaldi_native_fbank(opts: dict) -> None:
    x = speech_like(np.random.default_rng(2), 1.7)
    ours = mfcc(torch.from_numpy(x), **opts).numpy()
    ref = reference(x, kind="mfcc", **opts)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=TOL, rtol=0)


def test_8khz_and_channel_selection() -> None:
    x = speech_like(np.random.default_rng(3), 1.2, sample_rate=8000)
    stereo = np.stack([x, np.zeros_like(x)])
    ours = fbank(stereo, sample_rate=8000, num_mel_bins=23, channel=0).numpy()
    np.testing.assert_allclose(ours, reference(x, 8000, num_mel_bins=23), atol=TOL, rtol=0)


def test_matches_torchaudio_compliance_kaldi() -> None:
    from torchaudio.compliance import kaldi

    x = torch.from_numpy(speech_like(np.random.default_rng(4), 1.3))
    ref = kaldi.fbank(x[None], num_mel_bins=40, dither=0.0, energy_floor=0.0, use_energy=True)
    torch.testing.assert_close(fbank(x, use_energy=True), ref, atol=TOL, rtol=0)
    ref = kaldi.mfcc(x[None], dither=0.0, energy_floor=0.0, use_energy=True)
    torch.testing.assert_close(mfcc(x), ref, atol=TOL, rtol=0)


def test_shorter_than_a_frame_gives_no_frames() -> None:
    assert fbank(torch.ones(399)).shape == (0, 40)
    assert fbank(torch.ones(80), snip_edges=False).shape == (1, 40)


def test_dither_is_seeded_per_utterance() -> None:
    x = speech_like(np.random.default_rng(5), 1.0) / INT16_SCALE
    cfg = FeatureConfig(dither=1.0, seed=7)
    a = compute_features(x, cfg, "utt1")
    np.testing.assert_array_equal(a, compute_features(x, cfg, "utt1"))
    assert not torch.equal(a, compute_features(x, cfg, "utt2"))
    assert not torch.equal(a, compute_features(x, FeatureConfig(dither=1.0, seed=8), "utt1"))
    clean = compute_features(x, FeatureConfig(dither=0.0), "utt1")
    # Dither of one int16 step barely moves loud frames but lifts digital silence off the floor.
    loud = clean.mean(dim=1) > 10
    assert (a[loud] - clean[loud]).abs().median() < 0.01
    assert (a[~loud] - clean[~loud]).abs().min() > 1.0
    assert dither_seed(0, "a") != dither_seed(0, "b")


def test_real_audio_matches_kaldi_native_fbank(mini_timit_dirs: dict) -> None:
    """Real (synthetic-speech) audio, dither 0.

    mini-TIMIT has almost no energy below ~60 Hz, so the lowest mel bins of loud frames
    sit 1e-7 below the frame energy: at float32 rounding level in both implementations
    (kaldi-native-fbank's FFT is itself ~1e-3 off the exact value there). Bins above
    1e-5 of the frame energy must agree within 1e-3; the rest within 5e-3. MFCCs mix all
    bins and the lifter scales cepstrum k by up to 12, so they are compared before it.
    """
    lifter = 1.0 + 11.0 * np.sin(np.pi * np.arange(13) / 22.0)
    worst_above = worst_all = worst_mfcc = 0.0
    for split in ("test", "dev"):
        d = read_data_dir(mini_timit_dirs[split])
        for utt in d.utts:
            samples, rate = load_utterance(d, utt)
            x = samples * INT16_SCALE
            ref = reference(x, rate, use_energy=True)
            log_energy, ref = ref[:, :1], ref[:, 1:]
            diff = np.abs(fbank(torch.from_numpy(x), sample_rate=rate).numpy() - ref)
            above = ref > log_energy + np.log(1e-5)
            assert above.mean() > 0.9
            worst_above = max(worst_above, diff[above].max())
            worst_all = max(worst_all, diff.max())
            ours = mfcc(torch.from_numpy(x), sample_rate=rate).numpy()
            worst_mfcc = max(worst_mfcc, (np.abs(ours - reference(x, rate, kind="mfcc")) / lifter).max())
    assert worst_above < TOL
    assert worst_all < 5 * TOL and worst_mfcc < TOL
