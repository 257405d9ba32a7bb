"""Additive noise for contaminated test sets: white, pink and babble, mixed at a target SNR.

Levels are mean powers (mean of squared samples, in full-scale units where
samples lie in [-1, 1]). The speech level is the *active* speech power: the mean
power over the frames that are within ``floor_db`` of the loudest frame, so that
leading and trailing silences do not lower it (a simple stand-in for ITU-T P.56).
The noise level is the mean power over every sample of the noise added.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from scipy.fft import next_fast_len

from asr.data.kaldi_dir import DataDir, load_utterance
from asr.errors import AsrError

NOISE_TYPES = ("white", "pink", "babble")


def active_speech_power(x: np.ndarray, sample_rate: int, frame_ms: float = 20.0,
                        floor_db: float = 40.0) -> float:
    """Mean power of the active frames of ``x``.

    Args:
        x: samples [T], float in [-1, 1].
        sample_rate: Hz.
        frame_ms: length of the non-overlapping analysis frames in ms (default 20);
            a shorter last frame counts as a frame of its own.
        floor_db: frames whose mean power is more than this many dB below the
            loudest frame are silence (default 40).

    Returns:
        Mean of ``x**2`` over the samples of the active frames (0.0 if ``x`` is all zeros).
    """
    x = np.asarray(x, dtype=np.float64)
    frame = max(1, int(round(frame_ms * sample_rate / 1000)))
    starts = np.arange(0, len(x), frame)
    energy = np.add.reduceat(x * x, starts)  # [num_frames]
    lengths = np.diff(np.append(starts, len(x)))  # [num_frames]
    power = energy / lengths
    if power.max() <= 0.0:
        return 0.0
    active = power >= power.max() * 10.0 ** (-floor_db / 10.0)
    return float(energy[active].sum() / lengths[active].sum())


def white_noise(rng: np.random.Generator, num_samples: int) -> np.ndarray:
    """Gaussian white noise [num_samples], float64, unit power on average."""
    return rng.standard_normal(num_samples)


def pink_noise(rng: np.random.Generator, num_samples: int) -> np.ndarray:
    """Pink (1/f power spectrum) noise [num_samples], float64, unit mean power.

    White Gaussian noise shaped in the frequency domain: the amplitude of bin k
    is scaled by 1/sqrt(k), so the power falls 3 dB per octave; DC is removed.
    """
    n = next_fast_len(num_samples, real=True)  # a prime length would make the FFT slow
    spectrum = np.fft.rfft(rng.standard_normal(n))
    k = np.arange(len(spectrum), dtype=np.float64)
    k[0] = np.inf  # no DC
    spectrum /= np.sqrt(k)
    y = np.fft.irfft(spectrum, n=n)[:num_samples]
    return y / np.sqrt(np.mean(y * y))


def loop_to_length(x: np.ndarray, num_samples: int, offset: int = 0) -> np.ndarray:
    """``x`` repeated end to end and cropped to [num_samples], starting at ``offset`` samples."""
    offset %= len(x)
    reps = -(-(offset + num_samples) // len(x))  # ceil
    return np.tile(x, reps)[offset:offset + num_samples]


def noise_gain(speech_power: float, noise: np.ndarray, snr_db: float) -> float:
    """Gain g such that ``speech_power / mean((g * noise)**2)`` is ``snr_db`` dB.

    Raises:
        ValueError: the noise is all zeros (callers turn this into an AsrError).
    """
    noise_power = float(np.mean(np.asarray(noise, dtype=np.float64) ** 2))
    if noise_power <= 0.0:
        raise ValueError("noise is silent")
    return float(np.sqrt(speech_power / (noise_power * 10.0 ** (snr_db / 10.0))))


class BabbleSource:
    """Babble noise: the sum of utterances of several speakers of another data dir.

    Args:
        data: data dir to draw babble from (e.g. the training set of the same corpus).
        exclude_speakers: speakers that must not be heard (the target set's speakers).
        num_speakers: voices summed per babble signal (default 5).
        cache_size: decoded utterances kept in memory (default 64).
        speakers: the pool of ``data``'s speakers to draw from (None: all of them), e.g.
            one half of :func:`babble_speaker_pools`.

    Raises:
        AsrError: a pool speaker ``data`` lacks, or fewer than ``num_speakers`` speakers
            remain after the exclusion.
    """

    def __init__(self, data: DataDir, exclude_speakers: set[str], num_speakers: int = 5,
                 cache_size: int = 64, speakers: Sequence[str] | None = None):
        if num_speakers < 1:
            raise AsrError(f"num_babble_speakers must be at least 1, got {num_speakers}")
        self.data = data
        self.num_speakers = num_speakers
        spk2utt = data.spk2utt
        if speakers is not None:
            missing = sorted(set(speakers) - set(spk2utt))
            if missing:
                raise AsrError(f"babble pool: speaker(s) {', '.join(missing[:3])} not in the babble source")
        pool = spk2utt if speakers is None else set(speakers)
        self.speakers = sorted(s for s in pool if s not in exclude_speakers)
        self._spk2utt = {s: spk2utt[s] for s in self.speakers}
        if len(self.speakers) < num_speakers:
            raise AsrError(
                f"babble needs {num_speakers} speakers that are not in the target set; "
                f"the babble source has only {len(self.speakers)}"
            )
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def _load(self, utt: str, sample_rate: int) -> np.ndarray:
        """Babble utterance ``utt`` scaled to unit active power, float64 [T]."""
        if utt in self._cache:
            self._cache.move_to_end(utt)
            return self._cache[utt]
        try:
            x, sr = load_utterance(self.data, utt)
        except AsrError as e:
            raise AsrError(f"babble utterance '{utt}': {e}") from None
        if sr != sample_rate:
            raise AsrError(
                f"babble utterance '{utt}' is sampled at {sr} Hz, the target at {sample_rate} Hz"
            )
        power = active_speech_power(x, sr)
        if power <= 0.0:
            raise AsrError(f"babble utterance '{utt}' is silent")
        x = x.astype(np.float64) / np.sqrt(power)  # equal loudness for every voice
        self._cache[utt] = x
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return x

    def make(self, rng: np.random.Generator, num_samples: int, sample_rate: int,
             exclude: str | None = None) -> tuple[np.ndarray, list[str]]:
        """One babble signal.

        Draws ``num_speakers`` distinct speakers (never ``exclude``: the target's own
        speaker, when the pool holds it), one utterance of each, each level-normalised,
        looped from a random offset to ``num_samples``, and sums them.

        Returns:
            (babble [num_samples] float64, the babble utterance ids used).
        """
        speakers = [s for s in self.speakers if s != exclude]
        if len(speakers) < self.num_speakers:
            raise AsrError(f"babble needs {self.num_speakers} speakers other than '{exclude}'; "
                           f"the pool has {len(speakers)}")
        chosen = rng.choice(len(speakers), size=self.num_speakers, replace=False)
        total = np.zeros(num_samples)
        used = []
        for i in sorted(chosen):
            utts = self._spk2utt[speakers[i]]
            utt = utts[int(rng.integers(len(utts)))]
            x = self._load(utt, sample_rate)
            total += loop_to_length(x, num_samples, int(rng.integers(len(x))))
            used.append(utt)
        return total, used
