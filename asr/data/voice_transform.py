"""Pseudo-speakers from one recorded voice: speaking rate, prosody noise and a vocal-tract warp.

mini-TIMIT's Piper speakers all come from one neural voice (the en_US "joe" VITS model,
an adult male). Each pseudo-speaker draws, from the corpus seed:

* ``length_scale`` (speaking rate): 0.85-1.20, about +-15 % around the voice's own rate,
  the spread of habitual rates between read-speech talkers;
* ``noise_scale`` 0.50-0.80 and ``noise_w_scale`` 0.60-1.00 (prosody: the latent and
  duration noise of the model, around its defaults 0.667 / 0.8);
* a warp factor ``warp`` applied by resampling: the audio is taken to run at
  ``warp`` x its rate and resampled to 16 kHz, which scales every frequency (formants and
  pitch) by ``warp``. Male speakers draw 0.92-1.05, female ones 1.12-1.24: adult female
  formants lie about 15-20 % above male ones (Peterson and Barney's vowels), and warps of
  that size are what vocal-tract-length normalisation estimates between speakers. The
  warp also shortens the audio by ``1 / warp``; the synthesis rate is slowed by the same
  factor beforehand, so the speaking rate stays the one drawn.

What this cannot do: pitch moves with the formants (a real female voice is about an
octave higher, not 20 %), and every pseudo-speaker keeps the recorded voice's voice
quality and accent. They are transformations of one talker, not new talkers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import resample_poly

OUTPUT_RATE = 16000
_RATE_STEP = 50  # Hz: warped rates are rounded to this, so resampling ratios stay small integers

LENGTH_SCALE = (0.85, 1.20)
NOISE_SCALE = (0.50, 0.80)
NOISE_W_SCALE = (0.60, 1.00)
WARP = {"M": (0.92, 1.05), "F": (1.12, 1.24)}


@dataclass(frozen=True)
class PiperSpeaker:
    """The synthesis settings of one Piper pseudo-speaker (see the module docstring)."""

    length_scale: float
    noise_scale: float
    noise_w_scale: float
    warp: float

    def synthesis_length_scale(self) -> float:
        """``length_scale`` for the model: slowed by ``warp``, which the resampling undoes."""
        return self.length_scale * self.warp


def draw_piper_speaker(sex: str, rng: np.random.Generator) -> PiperSpeaker:
    """Draw a pseudo-speaker of sex ``M`` or ``F`` (the warp range depends on it)."""
    lo, hi = WARP[sex]
    return PiperSpeaker(length_scale=round(float(rng.uniform(*LENGTH_SCALE)), 3),
                        noise_scale=round(float(rng.uniform(*NOISE_SCALE)), 3),
                        noise_w_scale=round(float(rng.uniform(*NOISE_W_SCALE)), 3),
                        warp=round(float(rng.uniform(lo, hi)), 3))


def warped_rate(rate: int, warp: float) -> int:
    """The rate the audio is taken to run at: ``rate * warp``, rounded to 50 Hz."""
    return int(round(rate * warp / _RATE_STEP)) * _RATE_STEP


def warp_to_16k(audio: np.ndarray, rate: int, warp: float) -> tuple[np.ndarray, float]:
    """Warp every frequency by ``warp`` (resampling) and return 16 kHz audio.

    Args:
        audio: [n] samples at ``rate`` (any numeric dtype).
        rate: its sample rate, Hz.
        warp: frequency scale factor (1: none).

    Returns:
        (float64 [m] at 16 kHz, the factor taking a sample position of the input to the
        output: ``16000 / warped_rate(rate, warp)``).
    """
    src = warped_rate(rate, warp)
    g = math.gcd(OUTPUT_RATE, src)
    out = resample_poly(np.asarray(audio, dtype=np.float64), OUTPUT_RATE // g, src // g)
    return out, OUTPUT_RATE / src
