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
from asr.features import kaldi_compat as kc
from asr.features.kaldi_compat import fbank, mfcc

# Kaldi reads 16-bit audio as integers: features and dither use the int16 scale.
INT16_SCALE = 32768.0


def dither_seed(seed: int, utt: str) -> int:
    """A 63-bit seed from the run seed and the utterance id, so the dither of an
    utterance never depends on worker count or processing order."""
    digest = hashlib.blake2b(f"{seed}:{utt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


# Frames computed at once by :func:`compute_features`: 60 s at a 10 ms shift. The framing,
# FFT and mel intermediates of one chunk take a few hundred MB (a whole 10-minute signal at
# once peaked at 1.6 GB and ran 8x slower); the frames do not depend on the chunk size.
CHUNK_FRAMES = 6000


def compute_features(samples: np.ndarray, cfg: FeatureConfig, utt: str = "",
                     chunk_frames: int = CHUNK_FRAMES) -> torch.Tensor:
    """fbank or MFCC of float audio in [-1, 1] at ``cfg.sample_rate``.

    Long signals are processed ``chunk_frames`` frames at a time: each chunk is the slice
    of samples its frames cover (overlapping the next by window - shift samples; with
    ``snip_edges`` false, the ends mirrored as :func:`asr.features.kaldi_compat.frame_signal`
    mirrors them), so the frames equal those of the whole signal at once, while memory
    stays that of one chunk. The dither is drawn once for the whole signal, as the
    whole-signal path draws it, so it is the same noise too.

    Args:
        samples: [T] float32 in [-1, 1] (as :func:`asr.data.kaldi_dir.load_audio` returns).
        cfg: options; ``cfg.kind`` picks fbank or mfcc.
        utt: utterance id, seeds the dither with ``cfg.seed``.
        chunk_frames: frames per chunk (default :data:`CHUNK_FRAMES`, 60 s at 10 ms).

    Returns:
        [frames, dim] float32 (dim = num_mel_bins (+1 with use_energy) or num_ceps).
    """
    if cfg.kind not in ("fbank", "mfcc"):
        raise AsrError(f"features.kind '{cfg.kind}' is not computed from audio")
    x = torch.from_numpy(np.asarray(samples, dtype=np.float32)) * INT16_SCALE
    length = int(cfg.sample_rate * cfg.frame_length * 0.001)  # window, samples
    shift = int(cfg.sample_rate * cfg.frame_shift * 0.001)  # hop, samples
    total = kc.num_frames(x.shape[0], length, shift, cfg.snip_edges)
    if total <= chunk_frames:
        generator = torch.Generator().manual_seed(dither_seed(cfg.seed, utt)) if cfg.dither else None
        return _frames_of(x, cfg, cfg.snip_edges, cfg.dither, generator)
    if cfg.dither:
        # Exactly the whole-signal path's x + dither * noise, noise drawn for all T samples at once.
        # In place (the same float32 operations): a 30-minute signal is 115 MB a copy.
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(dither_seed(cfg.seed, utt)))
        x.add_(noise.mul_(cfg.dither))
        del noise
    first = 0 if cfg.snip_edges else shift // 2 - length // 2  # first sample of frame 0 (<= 0 unless hop > window)
    # Equal chunks (none tiny: BLAS takes another summation path for a one-row product,
    # which changed a last one-frame chunk in the 6th digit).
    num_chunks = -(-total // chunk_frames)
    edges = [round(i * total / num_chunks) for i in range(num_chunks + 1)]
    out = []
    for f0, f1 in zip(edges[:-1], edges[1:]):
        a, b = f0 * shift + first, (f1 - 1) * shift + first + length  # samples frames f0..f1-1 read
        piece = x[max(a, 0):min(b, x.shape[0])]
        if a < 0 or b > x.shape[0]:  # an end of the signal: Kaldi's reflection, as frame_signal does it
            piece = torch.from_numpy(np.pad(piece.numpy(), (max(0, -a), max(0, b - x.shape[0])), mode="symmetric"))
        feats = _frames_of(piece, cfg, True, 0.0, None)  # [f1 - f0, dim]: the slice holds exactly those frames
        assert feats.shape[0] == f1 - f0, (feats.shape, f0, f1)
        out.append(feats)
    return torch.cat(out)  # [total, dim]


def _frames_of(x: torch.Tensor, cfg: FeatureConfig, snip_edges: bool, dither: float,
               generator: torch.Generator | None) -> torch.Tensor:
    """fbank / MFCC of ``x`` ([T], int16 scale) with ``cfg``'s options but these framing and dither ones."""
    common = dict(
        sample_rate=cfg.sample_rate, num_mel_bins=cfg.num_mel_bins, frame_length=cfg.frame_length,
        frame_shift=cfg.frame_shift, dither=dither, preemphasis_coefficient=cfg.preemphasis_coefficient,
        window_type=cfg.window_type, snip_edges=snip_edges, low_freq=cfg.low_freq,
        high_freq=cfg.high_freq, use_energy=cfg.use_energy, energy_floor=cfg.energy_floor,
        generator=generator,
    )
    if cfg.kind == "fbank":
        return fbank(x, **common)
    return mfcc(x, num_ceps=cfg.num_ceps, cepstral_lifter=cfg.cepstral_lifter, **common)


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
