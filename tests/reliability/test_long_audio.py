"""Long audio: chunked feature extraction equals whole-signal extraction, the pause
segmenter covers every frame once, and ``asr-transcribe`` of a long file stays small."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from asr.features.config import FeatureConfig
from asr.features.extract import compute_features
from asr.features.segment import frame_energy_db, pause_cuts, segment_samples
from catalogue import build_good_checkpoint
from long_audio import transcribe_peak_rss, write_long_audio

SR = 16000


@pytest.fixture(scope="module")
def signal() -> np.ndarray:
    """[T] 3 minutes (plus an odd tail) of noise at speech-like level."""
    return (0.1 * np.random.default_rng(3).standard_normal(SR * 180 + 123)).astype(np.float32)


@pytest.mark.parametrize("kind", ["fbank", "mfcc"])
@pytest.mark.parametrize("snip_edges", [True, False])
@pytest.mark.parametrize("dither", [0.0, 1.0])
def test_chunked_extraction_equals_whole_signal(signal: np.ndarray, kind: str, snip_edges: bool,
                                                dither: float) -> None:
    cfg = FeatureConfig.from_dict({"kind": kind, "snip_edges": snip_edges, "dither": dither, "use_energy": True})
    whole = compute_features(signal, cfg, "utt1", chunk_frames=10**9)
    for chunk in (997, 6000):
        chunked = compute_features(signal, cfg, "utt1", chunk_frames=chunk)
        assert torch.equal(whole, chunked), (chunk, (whole - chunked).abs().max())
    if dither:  # seeded per utterance: the same again, and another utterance differs
        assert torch.equal(compute_features(signal, cfg, "utt1", chunk_frames=997), whole)
        assert not torch.equal(compute_features(signal, cfg, "utt2", chunk_frames=997), whole)


def _bursts(pauses_at: list[float], seconds: float, seed: int = 0) -> np.ndarray:
    """Noise with 0.4 s near-silent pauses centred at ``pauses_at`` (seconds)."""
    rng = np.random.default_rng(seed)
    x = 0.1 * rng.standard_normal(int(seconds * SR))
    for t in pauses_at:
        a = int((t - 0.2) * SR)
        x[a:a + int(0.4 * SR)] *= 0.01
    return x.astype(np.float32)


def test_segments_cut_at_pauses_and_cover_every_frame() -> None:
    x = _bursts([22.0, 47.0, 70.0], 95.0)
    ranges = segment_samples(x, 160, max_frames=3000)
    assert ranges[0][0] == 0 and ranges[-1][1] == -(-len(x) // 160)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # contiguous: nothing lost or twice
    assert all(0 < e - s <= 3000 for s, e in ranges)
    cuts = [s / 100 for s, _ in ranges[1:]]
    assert len(cuts) == 3 and all(abs(c - t) < 0.2 for c, t in zip(cuts, [22.0, 47.0, 70.0])), cuts


def test_segments_without_pauses_and_short_audio() -> None:
    flat = np.zeros(100)  # no pause anywhere: cuts at the latest allowed frame
    assert pause_cuts(flat, 30) == [(0, 30), (30, 60), (60, 90), (90, 100)]
    assert pause_cuts(np.zeros(3000), 3000) == [(0, 3000)]
    assert pause_cuts(np.zeros(0), 3000) == [(0, 0)]
    e = frame_energy_db(np.ones(161), 160)
    assert e.shape == (2,) and np.allclose(e, 0.0)
    with pytest.raises(ValueError):
        pause_cuts(flat, 1)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_good_checkpoint(tmp_path_factory.mktemp("long_audio_model"))


def test_transcribe_long_file_is_segmented_and_small(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A 6-minute file: cut into segments of at most 30 s, one output line, peak RSS < 1.5 GB."""
    audio = tmp_path / "long.wav"
    write_long_audio(audio, 6 * 60)
    run = transcribe_peak_rss(tiny_checkpoint, audio, tmp_path)
    assert run.rc == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 1 and lines[0].split("\t")[0] == str(audio)
    m = re.search(r"cut at pauses into (\d+) segments", run.stderr)
    assert m and int(m.group(1)) >= 12, run.stderr[-2000:]  # 360 s in pieces of at most 30 s
    assert run.peak_rss_bytes < 1.5 * 2**30, run.peak_rss_bytes


def test_short_file_is_not_segmented(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Under 30 s: decoded whole, the same line with segmentation off."""
    audio = tmp_path / "short.wav"
    write_long_audio(audio, 20)
    on = transcribe_peak_rss(tiny_checkpoint, audio, tmp_path)
    off = transcribe_peak_rss(tiny_checkpoint, audio, tmp_path, "segment_seconds=0")
    assert on.rc == 0 and off.rc == 0, on.stderr[-2000:] + off.stderr[-2000:]
    assert "cut at pauses" not in on.stderr
    assert on.stdout == off.stdout
