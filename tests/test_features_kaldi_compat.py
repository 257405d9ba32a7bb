"""Our fbank/MFCC against kaldi-native-fbank (Kaldi's feature code) and torchaudio.

Every comparison is over all bins and coefficients, dither 0, max abs difference < 1e-3.
"""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
import torch

from asr.data.kaldi_dir import load_utterance, read_data_dir
from asr.features import fbank, mfcc
from asr.features.config import FeatureConfig
from asr.features.extract import INT16_SCALE, compute_features, dither_seed
from asr.features.kaldi_compat import kissfft_power_spectrum, mel_banks

knf = pytest.importorskip("kaldi_native_fbank")

TOL = 1e-3
KNF_VERSION = tuple(int(v) for v in importlib.metadata.version("kaldi-native-fbank").split(".")[:3])
# kaldi-native-fbank computes its FFT with float32 KISS FFT from 1.21.2 on (a float64 FFT
# before); we reproduce that FFT, which the low-power bins of real audio need.
needs_kissfft = pytest.mark.skipif(
    KNF_VERSION < (1, 21, 2), reason=f"kaldi-native-fbank {KNF_VERSION} predates its KISS FFT (1.21.2)"
)


def reference(x: np.ndarray, sample_rate: int = 16000, kind: str = "fbank", **opts) -> np.ndarray:
    """kaldi-native-fbank features of ``x`` with dither 0."""
    o = knf.MfccOptions() if kind == "mfcc" else knf.FbankOptions()
    o.frame_opts.dither = 0.0
    o.frame_opts.samp_freq = sample_rate
    o.frame_opts.snip_edges = opts.get("snip_edges", True)
    o.frame_opts.frame_length_ms = opts.get("frame_length", 25.0)
    o.frame_opts.frame_shift_ms = opts.get("frame_shift", 10.0)
    o.frame_opts.window_type = opts.get("window_type", "povey")
    o.frame_opts.round_to_power_of_two = opts.get("round_to_power_of_two", True)
    o.mel_opts.num_bins = opts.get("num_mel_bins", 40 if kind == "fbank" else 23)
    o.mel_opts.low_freq = opts.get("low_freq", 20.0)
    o.mel_opts.high_freq = opts.get("high_freq", 0.0)
    o.use_energy = opts.get("use_energy", kind == "mfcc")
    o.raw_energy = opts.get("raw_energy", True)
    o.energy_floor = opts.get("energy_floor", 0.0)
    if kind == "mfcc":
        o.num_ceps = opts.get("num_ceps", 13)
    comp = knf.OnlineMfcc(o) if kind == "mfcc" else knf.OnlineFbank(o)
    comp.accept_waveform(sample_rate, x.tolist())
    comp.input_finished()
    return np.array([comp.get_frame(i) for i in range(comp.num_frames_ready)])


def assert_matches(x: np.ndarray, sample_rate: int = 16000, kind: str = "fbank", **opts) -> None:
    """Our features equal kaldi-native-fbank's within TOL in every bin."""
    ours = (mfcc if kind == "mfcc" else fbank)(torch.from_numpy(x), sample_rate=sample_rate, **opts).numpy()
    ref = reference(x, sample_rate, kind, **opts)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=TOL, rtol=0)


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
    dict(use_energy=True, raw_energy=False, snip_edges=False),
    dict(use_energy=True, energy_floor=1e7),
    dict(num_mel_bins=80, low_freq=64.0, high_freq=-400.0),
    dict(frame_length=20.0, frame_shift=12.5, window_type="hamming"),
    dict(window_type="hanning", snip_edges=False),
    dict(round_to_power_of_two=False),  # torch's FFT (kaldi-native-fbank: mixed-radix KISS FFT)
]


def case_id(opts: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in opts.items()) or "default"


@pytest.mark.parametrize("opts", CASES, ids=case_id)
@pytest.mark.parametrize("seconds", [0.025, 0.0301, 1.0, 2.7])
def test_fbank_matches_kaldi_native_fbank(opts: dict, seconds: float) -> None:
    assert_matches(speech_like(np.random.default_rng(1), seconds), **opts)


@pytest.mark.parametrize(
    "opts",
    [dict(), dict(use_energy=False), dict(num_ceps=20, num_mel_bins=30), dict(snip_edges=False),
     dict(raw_energy=False, energy_floor=1e7)],
    ids=case_id,
)
def test_mfcc_matches_kaldi_native_fbank(opts: dict) -> None:
    assert_matches(speech_like(np.random.default_rng(2), 1.7), kind="mfcc", **opts)


@pytest.mark.parametrize("kind", ["fbank", "mfcc"])
def test_white_noise_matches_kaldi_native_fbank(kind: str) -> None:
    x = np.round(5000 * np.random.default_rng(6).standard_normal(16000 * 2)).astype(np.float32)
    assert_matches(x, kind=kind, use_energy=True)


def test_8khz_and_channel_selection() -> None:
    x = speech_like(np.random.default_rng(3), 1.2, sample_rate=8000)
    stereo = np.stack([x, np.zeros_like(x)])
    ours = fbank(stereo, sample_rate=8000, num_mel_bins=23, channel=0).numpy()
    np.testing.assert_allclose(ours, reference(x, 8000, num_mel_bins=23), atol=TOL, rtol=0)


@needs_kissfft
@pytest.mark.parametrize("n_fft", [4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048])
def test_power_spectrum_is_kaldi_native_fbanks_bit_for_bit(n_fft: int) -> None:
    rng = np.random.default_rng(n_fft)
    length = max(2, n_fft * 25 // 32)
    frames = np.round(3000 * rng.standard_normal((9, length))).astype(np.float32)
    padded = np.zeros((9, n_fft), np.float32)
    padded[:, :length] = frames
    rfft = knf.Rfft(n_fft)
    packed = np.array([rfft.compute(row.tolist()) for row in padded], dtype=np.float32)  # r0, r_n/2, r1, i1, ...
    re, im = packed[:, 0::2].copy(), packed[:, 1::2].copy()
    im[:, 0] = 0.0  # packed[:, 1] is the Nyquist bin, not an imaginary part
    ref = re * re + im * im
    np.testing.assert_array_equal(kissfft_power_spectrum(torch.from_numpy(frames), n_fft).numpy(), ref)


@pytest.mark.parametrize(
    "num_bins,n_fft,rate,low,high",
    [(40, 512, 16000, 20.0, 0.0), (23, 256, 8000, 20.0, 0.0), (80, 512, 16000, 64.0, -400.0)],
)
def test_mel_banks_match_kaldi_native_fbank(num_bins: int, n_fft: int, rate: int, low: float, high: float) -> None:
    mel_opts = knf.MelBanksOptions()
    mel_opts.num_bins, mel_opts.low_freq, mel_opts.high_freq = num_bins, low, high
    frame_opts = knf.FrameExtractionOptions()
    frame_opts.samp_freq = rate
    ref = knf.MelBanks(mel_opts, frame_opts, 1.0).get_matrix()[:, : n_fft // 2].T
    ours = mel_banks(num_bins, n_fft, float(rate), low, high).numpy()
    assert np.array_equal(ours != 0, ref != 0)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=0)  # Kaldi's logf may differ in the last bit


def test_mel_banks_reject_bad_options() -> None:
    with pytest.raises(ValueError, match="bad mel options"):
        mel_banks(40, 512, 16000.0, 20.0, 9000.0)
    with pytest.raises(ValueError, match="too large"):
        mel_banks(200, 512, 16000.0, 20.0, 0.0)


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


@needs_kissfft
@pytest.mark.parametrize("snip_edges", [True, False])
def test_real_audio_matches_kaldi_native_fbank(mini_timit_dirs: dict, snip_edges: bool) -> None:
    """Real (synthetic-speech) audio, dither 0, every bin and coefficient.

    mini-TIMIT has almost no energy below ~60 Hz, so the lowest mel bins of loud frames
    sit 1e-7 to 1e-10 below the frame's power, where any float32 FFT is off by up to
    ~2e-3 in log energy (kaldi-native-fbank's own is, against float64): this checks that
    we reproduce its FFT there, and that MFCCs (which mix all bins) follow.
    """
    from torchaudio.compliance import kaldi

    worst_other_fft = 0.0  # torchaudio: same recipe, another float32 FFT
    for split in ("test", "dev"):
        d = read_data_dir(mini_timit_dirs[split])
        for utt in d.utts:
            samples, rate = load_utterance(d, utt)
            x = samples * INT16_SCALE
            assert_matches(x, rate, use_energy=True, snip_edges=snip_edges)
            assert_matches(x, rate, kind="mfcc", snip_edges=snip_edges)
            other = kaldi.fbank(
                torch.from_numpy(x)[None], num_mel_bins=40, dither=0.0, energy_floor=0.0,
                snip_edges=snip_edges, sample_frequency=rate,
            ).numpy()
            ref = reference(x, rate, snip_edges=snip_edges)
            worst_other_fft = max(worst_other_fft, float(np.abs(other - ref).max()))
    assert worst_other_fft > TOL  # the hard case is really there
