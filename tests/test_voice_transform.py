"""Piper pseudo-speakers: the warp scales frequencies and durations as documented."""

from __future__ import annotations

import numpy as np
import pytest

from asr.data.voice_transform import WARP, draw_piper_speaker, warp_to_16k, warped_rate


@pytest.mark.parametrize("warp", [0.92, 1.0, 1.18])
def test_warp_scales_every_frequency_and_shortens_the_audio(warp: float) -> None:
    rate = 22050
    t = np.arange(rate) / rate  # one second
    tone = 1000 * np.sin(2 * np.pi * 300.0 * t) + 500 * np.sin(2 * np.pi * 2500.0 * t)
    out, ratio = warp_to_16k(tone, rate, warp)
    actual = warped_rate(rate, warp) / rate
    assert abs(actual - warp) < 0.002
    assert len(out) == pytest.approx(len(tone) * ratio, abs=2)
    assert len(out) / 16000 == pytest.approx(1.0 / actual, rel=1e-3)
    spec = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    freqs = np.fft.rfftfreq(len(out), 1 / 16000)
    low, high = freqs < 1000, freqs > 1000
    assert freqs[low][np.argmax(spec[low])] == pytest.approx(300.0 * actual, abs=3)
    assert freqs[high][np.argmax(spec[high])] == pytest.approx(2500.0 * actual, abs=5)


def test_speakers_draw_in_their_ranges_and_repeat_with_the_seed() -> None:
    rng = np.random.default_rng(0)
    males = [draw_piper_speaker("M", rng) for _ in range(50)]
    females = [draw_piper_speaker("F", rng) for _ in range(50)]
    assert all(WARP["M"][0] <= s.warp <= WARP["M"][1] for s in males)
    assert all(WARP["F"][0] <= s.warp <= WARP["F"][1] for s in females)
    assert min(s.warp for s in females) > max(s.warp for s in males)
    again = np.random.default_rng(0)
    assert [draw_piper_speaker("M", again) for _ in range(50)] == males
    s = females[0]
    assert s.synthesis_length_scale() == pytest.approx(s.length_scale * s.warp)
