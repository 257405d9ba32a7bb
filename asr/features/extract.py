"""Features of one utterance of a data dir, with the input checks (rate, length, NaN)."""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np
import torch
import torchaudio.functional as AF

from asr.data.kaldi_dir import DataDir, read_utterance
from asr.errors import AsrError
from asr.features.config import FeatureConfig
from asr.features.kaldi_compat import fbank, mfcc

# Kaldi reads 16-bit audio as integers: features and dither use the int16 scale.
INT16_SCALE = 32768.0


def dither_seed(seed: int, utt: str) -> int:
    """A 63-bit seed from the run seed and the utterance id, so the dither of an
    utterance never depends on worker count or processing order."""
    digest = hashlib.blake2b(f"{seed}:{utt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def compute_features(samples: np.ndarray, cfg: FeatureConfig, utt: str = "") -> torch.Tensor:
    """fbank or MFCC of float audio in [-1, 1] at ``cfg.sample_rate``.

    Args:
        samples: [T] float32 in [-1, 1] (as :func:`asr.data.kaldi_dir.load_audio` returns).
        cfg: options; ``cfg.kind`` picks fbank or mfcc.
        utt: utterance id, seeds the dither with ``cfg.seed``.

    Returns:
        [frames, dim] float32 (dim = num_mel_bins (+1 with use_energy) or num_ceps).
    """
    x = torch.from_numpy(np.asarray(samples, dtype=np.float32)) * INT16_SCALE
    generator = torch.Generator().manual_seed(dither_seed(cfg.seed, utt)) if cfg.dither else None
    common = dict(
        sample_rate=cfg.sample_rate, num_mel_bins=cfg.num_mel_bins, frame_length=cfg.frame_length,
        frame_shift=cfg.frame_shift, dither=cfg.dither, preemphasis_coefficient=cfg.preemphasis_coefficient,
        window_type=cfg.window_type, snip_edges=cfg.snip_edges, low_freq=cfg.low_freq,
        high_freq=cfg.high_freq, use_energy=cfg.use_energy, energy_floor=cfg.energy_floor,
        generator=generator,
    )
    if cfg.kind == "fbank":
        return fbank(x, **common)
    if cfg.kind == "mfcc":
        return mfcc(x, num_ceps=cfg.num_ceps, cepstral_lifter=cfg.cepstral_lifter, **common)
    raise AsrError(f"features.kind '{cfg.kind}' is not computed from audio")


class Extracted(NamedTuple):
    """One utterance's features and what was done to its audio on the way."""

    feats: np.ndarray  # [frames, dim] float32
    resampled: bool  # its rate was not cfg.sample_rate
    seconds: float  # audio duration
    channels: int  # channels in the file (only channel 0 is used, as Kaldi does)


def extract_utterance(d: DataDir, utt: str, cfg: FeatureConfig) -> Extracted:
    """Load, check, resample if needed, and compute the features of ``utt``.

    Multi-channel audio gives the features of channel 0 (Kaldi's ``wav.scp`` readers do
    the same); the channel count is returned so that the store can count such files.

    Returns:
        the features, whether the audio was resampled, its duration and channel count.

    Raises:
        AsrError: unreadable audio, NaN/Inf samples, a sample rate other than
            ``cfg.sample_rate`` with ``cfg.resample`` false, or audio shorter than one frame;
            the message names the utterance and file.
    """
    where = f"utterance '{utt}' ({d.audio_path(utt)})"
    try:
        audio, rate = read_utterance(d, utt)  # [T, channels]
    except AsrError as e:
        raise AsrError(f"utterance '{utt}': {e}") from None
    samples = np.ascontiguousarray(audio[:, 0])
    if not np.all(np.isfinite(samples)):
        raise AsrError(f"{where}: audio contains NaN or Inf samples")
    seconds = len(samples) / rate
    resampled = rate != cfg.sample_rate
    if resampled:
        if not cfg.resample:
            raise AsrError(
                f"{where}: sample rate {rate} Hz, features.sample_rate is {cfg.sample_rate} Hz "
                "(set features.resample=true to resample)"
            )
        samples = AF.resample(torch.from_numpy(samples), rate, cfg.sample_rate).numpy()
    window = int(cfg.sample_rate * cfg.frame_length * 0.001)
    shift = int(cfg.sample_rate * cfg.frame_shift * 0.001)
    shortest = window if cfg.snip_edges else (shift + 1) // 2
    if len(samples) < shortest:
        raise AsrError(
            f"{where}: {len(samples)} samples ({len(samples) / cfg.sample_rate * 1000:.1f} ms) "
            f"is shorter than one {cfg.frame_length:g} ms frame"
        )
    feats = compute_features(samples, cfg, utt).numpy()
    if not np.all(np.isfinite(feats)):  # finite audio should give finite features; never store others
        raise AsrError(f"{where}: its features are not finite")
    return Extracted(feats, resampled, seconds, audio.shape[1])
