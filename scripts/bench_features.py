"""Benchmark fbank extraction speed (times real time per CPU core) and Kaldi parity.

    python scripts/bench_features.py                      # synthesises a tiny mini-TIMIT
    python scripts/bench_features.py --data DIR           # any Kaldi data dir
    python scripts/bench_features.py --corpus DIR         # an existing (mini-)TIMIT root

Measures, on the same audio, with ``--threads`` torch threads (default 1):
  - ``x_realtime_per_core``: our fbank (asr.features, dither 1.0 seeded per utterance,
    audio already in memory) = audio seconds / CPU seconds of the process (the core
    time spent; ``x_realtime_wall`` is the same with wall time, which on a shared
    machine also counts waiting for the core);
  - ``x_realtime_torchaudio_per_core``: torchaudio.compliance.kaldi.fbank, same options;
  - ``store_x_realtime_per_core``: the whole store build in one process (decode audio,
    features, CMVN stats, ark/scp writing);
  - ``max_abs_diff_vs_kaldi_native_fbank``: our fbank (with log energy) vs
    kaldi-native-fbank, dither 0, over every bin of every utterance (and the same for
    MFCC, every coefficient, and for torchaudio's fbank);
  - ``max_abs_diff_vs_float64``: ours and kaldi-native-fbank's fbank vs the same recipe
    computed in float64 (how far float32 rounding takes each from the exact value).
Prints one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asr.data.kaldi_dir import DataDir, load_utterance, read_data_dir  # noqa: E402
from asr.features import FeatureConfig, compute_feature_store, fbank, mfcc  # noqa: E402
from asr.features.extract import INT16_SCALE, compute_features  # noqa: E402
from asr.features.kaldi_compat import frame_signal, frame_window, mel_banks  # noqa: E402


def corpus_data_dir(root: Path) -> DataDir:
    """A data dir of every ``.WAV`` of a TIMIT-layout corpus (speaker = parent folder)."""
    d = DataDir()
    for wav in sorted(root.rglob("*.WAV")):
        utt = f"{wav.parent.name}_{wav.stem}_{wav.parts[-4]}"
        d.wav[utt], d.utt2spk[utt] = str(wav), wav.parent.name
    if not d.wav:
        raise SystemExit(f"{root}: no .WAV files found")
    return d


def knf_features(x: np.ndarray, rate: int, kind: str, use_energy: bool = False) -> np.ndarray:
    """kaldi-native-fbank's fbank (40 bins) or MFCC (Kaldi's defaults), dither 0."""
    import kaldi_native_fbank as knf

    opts = knf.MfccOptions() if kind == "mfcc" else knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.samp_freq = rate
    opts.mel_opts.num_bins = 23 if kind == "mfcc" else 40
    if kind == "fbank":
        opts.use_energy = use_energy
    comp = knf.OnlineMfcc(opts) if kind == "mfcc" else knf.OnlineFbank(opts)
    comp.accept_waveform(rate, x.tolist())
    comp.input_finished()
    return np.array([comp.get_frame(i) for i in range(comp.num_frames_ready)])


def fbank_float64(x: np.ndarray, rate: int) -> np.ndarray:
    """The default 40-bin fbank recipe (log energy first) in float64 throughout: the exact
    value that float32 implementations approximate."""
    length, shift = int(rate * 0.025), int(rate * 0.010)
    n_fft = 1 << (length - 1).bit_length()
    frames = frame_signal(torch.from_numpy(x.astype(np.float64)), length, shift, True).numpy()
    frames = frames - frames.mean(axis=1, keepdims=True)
    energy = np.square(frames).sum(axis=1, keepdims=True)
    frames = frames - 0.97 * np.concatenate((frames[:, :1], frames[:, :-1]), axis=1)
    spectrum = np.fft.rfft(frames * frame_window("povey", length).double().numpy(), n=n_fft)
    power = np.square(spectrum.real) + np.square(spectrum.imag)
    mel = power[:, : n_fft // 2] @ mel_banks(40, n_fft, float(rate), 20.0, 0.0).double().numpy()
    return np.log(np.maximum(np.concatenate((energy, mel), axis=1), np.finfo(np.float32).eps))


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def time_runs(fn, repeats: int) -> tuple[float, float]:
    """Median (CPU seconds of this process, wall seconds) over ``repeats`` calls of ``fn``,
    after one warm-up. CPU time is what one core spends: on a shared machine the wall
    time also counts the time other processes held the core."""
    fn()
    cpu, wall = [], []
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return statistics.median(cpu), statistics.median(wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="Kaldi data dir to use")
    parser.add_argument("--corpus", type=Path, help="existing TIMIT-layout corpus root")
    parser.add_argument("--size", default="tiny", help="mini-TIMIT size to synthesise (default tiny)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", choices=["cpu"], help="features run on the CPU")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        if args.data:
            d, source = read_data_dir(args.data), str(args.data)
        else:
            root, source = args.corpus, str(args.corpus)
            if root is None:
                from asr.data.mini_timit import synthesize_mini_timit

                root, source = Path(tmp) / "mini_timit", f"mini-TIMIT size={args.size} seed=0"
                synthesize_mini_timit(root, size=args.size, seed=0)
            d = corpus_data_dir(root)

        cfg = FeatureConfig(kind="fbank", num_mel_bins=40, dither=1.0, seed=0)
        audio = {}
        for utt in d.utts:
            x, rate = load_utterance(d, utt)
            if rate != cfg.sample_rate:
                raise SystemExit(f"{utt}: {rate} Hz; this benchmark expects {cfg.sample_rate} Hz audio")
            audio[utt] = x
        seconds = sum(len(x) for x in audio.values()) / cfg.sample_rate

        ours = time_runs(lambda: [compute_features(x, cfg, u) for u, x in audio.items()], args.repeats)

        from torchaudio.compliance import kaldi

        scaled = {u: torch.from_numpy(x * INT16_SCALE)[None] for u, x in audio.items()}
        ta = time_runs(
            lambda: [kaldi.fbank(x, num_mel_bins=40, dither=1.0, energy_floor=0.0) for x in scaled.values()],
            args.repeats,
        )

        n = [0]

        def build_store() -> None:
            n[0] += 1
            compute_feature_store(d, Path(tmp) / f"store{n[0]}", cfg, num_workers=1, progress=False)

        store = time_runs(build_store, max(1, args.repeats // 2))

        # Parity, dither 0, over every bin (the fbank's log energy included).
        diff = {"fbank": 0.0, "mfcc": 0.0, "torchaudio": 0.0, "ours_float64": 0.0, "knf_float64": 0.0}
        over, total = 0, 0
        for x in audio.values():
            xi = x * INT16_SCALE
            ref = knf_features(xi, 16000, "fbank", use_energy=True)
            ours_fbank = fbank(xi, use_energy=True).numpy()
            d_fbank = np.abs(ours_fbank - ref)
            diff["fbank"] = max(diff["fbank"], float(d_fbank.max()))
            over, total = over + int((d_fbank >= 1e-3).sum()), total + d_fbank.size
            d_mfcc = np.abs(mfcc(xi).numpy() - knf_features(xi, 16000, "mfcc"))
            diff["mfcc"] = max(diff["mfcc"], float(d_mfcc.max()))
            ta_feats = kaldi.fbank(torch.from_numpy(xi)[None], num_mel_bins=40, dither=0.0, energy_floor=0.0)
            diff["torchaudio"] = max(diff["torchaudio"], float(np.abs(ta_feats.numpy() - ref[:, 1:]).max()))
            exact = fbank_float64(xi, 16000)
            diff["ours_float64"] = max(diff["ours_float64"], float(np.abs(ours_fbank - exact).max()))
            diff["knf_float64"] = max(diff["knf_float64"], float(np.abs(ref - exact).max()))

    result = {
        "x_realtime_per_core": round(seconds / ours[0], 1),
        "x_realtime_wall": round(seconds / ours[1], 1),
        "max_abs_diff_vs_kaldi_native_fbank": diff["fbank"],
        "fraction_of_bins_diff_over_1e-3": over / total,
        "max_abs_diff_mfcc_vs_kaldi_native_fbank": diff["mfcc"],
        "max_abs_diff_torchaudio_vs_kaldi_native_fbank": diff["torchaudio"],
        "max_abs_diff_vs_float64": diff["ours_float64"],
        "max_abs_diff_kaldi_native_fbank_vs_float64": diff["knf_float64"],
        "x_realtime_torchaudio_per_core": round(seconds / ta[0], 1),
        "x_realtime_torchaudio_wall": round(seconds / ta[1], 1),
        "store_x_realtime_per_core": round(seconds / store[0], 1),
        "store_x_realtime_wall": round(seconds / store[1], 1),
        "cpu_seconds": round(ours[0], 4),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpu_cores_visible": os.cpu_count(),
        "audio_seconds": round(seconds, 2),
        "num_utts": len(audio),
        "implementation": "asr.features.kaldi_compat (vectorised torch; kaldi-native-fbank's KISS FFT in numpy)",
        "device": "cpu",
        "cpu": cpu_name(),
        "threads": args.threads,
        "repeats": args.repeats,
        "settings": {"kind": "fbank", "num_mel_bins": 40, "frame_length": 25.0, "frame_shift": 10.0,
                     "dither": 1.0, "snip_edges": True, "sample_rate": 16000, "parity_dither": 0.0},
        "data": source,
        "torch": torch.__version__,
        "kaldi_native_fbank": importlib.metadata.version("kaldi-native-fbank"),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
