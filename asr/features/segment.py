"""Cutting long audio into segments at pauses (energy-based), for ``asr-transcribe``.

A bidirectional network and the search see a whole utterance at once, so a 30-minute
file would hold its posteriors, its recurrent states and its search in memory together.
Long files are therefore cut into segments of at most ``max_seconds`` (default 30 s)
before the network, and each segment is decoded alone; the words are joined in order.

The method, on frames of the features' hop (10 ms):

1. the log energy of each frame (its ``shift`` samples, in dB), smoothed by a moving
   average over ``smooth_seconds`` (default 0.3 s: about one pause between words);
2. from the start of the file, while more than ``max_seconds`` remain, the next cut is the
   frame of lowest smoothed energy between ``min_seconds`` (default half of max) and
   ``max_seconds`` after the previous cut (the latest such frame on ties): the middle of
   the quietest 0.3 s there, which is a pause whenever the window holds one;
3. the last segment is what remains (at most ``max_seconds``).

Segments are contiguous and cover every frame once: no audio is lost or duplicated. A
word cut in two (a window without any pause) is the price of bounded memory; a segment
loses the context the bidirectional network would have seen across its edges.
"""

from __future__ import annotations

import numpy as np


def frame_energy_db(samples: np.ndarray, shift: int) -> np.ndarray:
    """Log energy of consecutive ``shift``-sample blocks.

    Args:
        samples: [T] float audio (any scale).
        shift: block length in samples (the features' hop: 160 at 16 kHz and 10 ms).

    Returns:
        [ceil(T / shift)] float64 mean-square energy in dB (floored at -200 dB); the last
        block may be shorter.
    """
    x = np.asarray(samples)
    n = -(-len(x) // shift)
    power = np.empty(n)
    step = 100_000 * shift  # blocks at a time, in float64: no copy of the whole signal
    for a in range(0, len(x), step):
        piece = np.asarray(x[a:a + step], dtype=np.float64)
        full = len(piece) // shift
        i = a // shift
        power[i:i + full] = np.square(piece[:full * shift].reshape(full, shift)).mean(axis=1)
        if len(piece) > full * shift:  # the last, shorter block
            power[i + full] = np.square(piece[full * shift:]).mean()
    return 10.0 * np.log10(np.maximum(power, 1e-20))


def pause_cuts(energy_db: np.ndarray, max_frames: int, min_frames: int | None = None,
               smooth_frames: int = 30) -> list[tuple[int, int]]:
    """Segments of at most ``max_frames`` frames, cut at the quietest point (module docstring).

    Args:
        energy_db: [F] per-frame log energy (:func:`frame_energy_db`).
        max_frames: longest segment, frames (>= 2).
        min_frames: shortest segment before the last, frames (default ``max_frames // 2``).
        smooth_frames: moving-average width of the energy, frames (default 30: 0.3 s).

    Returns:
        [(start, end)] frame ranges, contiguous from 0 to F, each at most ``max_frames`` long;
        one range when F <= max_frames.
    """
    total = len(energy_db)
    if max_frames < 2:
        raise ValueError(f"max_frames must be at least 2, got {max_frames}")
    lo = max(1, min(max_frames, max_frames // 2 if min_frames is None else min_frames))
    w = max(1, min(smooth_frames, total))
    # Centred moving average (edge frames average what they have).
    csum = np.concatenate([[0.0], np.cumsum(np.asarray(energy_db, dtype=np.float64))])
    idx = np.arange(total)
    a, b = np.maximum(idx - w // 2, 0), np.minimum(idx - w // 2 + w, total)
    smooth = (csum[b] - csum[a]) / np.maximum(b - a, 1)
    cuts, start = [], 0
    while total - start > max_frames:
        window = smooth[start + lo:start + max_frames + 1]  # candidate cut frames (each starts a segment)
        k = len(window) - 1 - int(np.argmin(window[::-1]))  # the latest minimum
        cut = start + lo + k
        cuts.append((start, cut))
        start = cut
    cuts.append((start, total))
    return cuts


def segment_samples(samples: np.ndarray, shift: int, max_frames: int,
                    min_frames: int | None = None) -> list[tuple[int, int]]:
    """Frame ranges of :func:`pause_cuts` for audio ``samples`` (frames of ``shift`` samples).

    Args:
        samples: [T] audio.
        shift: the features' hop, samples.
        max_frames, min_frames: as :func:`pause_cuts`.

    Returns:
        [(start, end)] frame ranges covering ``ceil(T / shift)`` frames; callers clip the
        last end to their feature count (it may differ by the window's edge frames).
    """
    return pause_cuts(frame_energy_db(samples, shift), max_frames, min_frames)
