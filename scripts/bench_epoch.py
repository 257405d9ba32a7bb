"""Seconds per training epoch of GRU, LSTM and LiGRU acoustic models of one size.

Hybrid DNN-HMM training as the recipes run it: encoder (the ``configs/model/{cell}.yaml``
preset, with its cell options, resized to one shape for all cells: 5 x 550
bidirectional, ``--small`` 3 x 256) + a linear layer to the pdf ids, frame
cross-entropy on valid frames (padding is -100), RMSprop from ``configs/optim/rmsprop.yaml``
(lr 0.0004, alpha 0.95) with its gradient clipping; per batch zero_grad, forward, loss,
backward, clip, step.

The cells run interleaved in one process: batch i goes through every cell before batch
i + 1 (the cell order rotating from batch to batch), so machine noise hits all alike; each
model is warmed up on 2 batches first (the fused LiGRU's C++ kernel is built before that).
Data: a feature store plus an alignment scp (``--data``/``--ali``), or, by default,
synthetic batches at TIMIT's shape (8 utterances of about 300 frames, 40 features, 1936
pdfs, length-bucketed like the loader). A whole epoch (TIMIT: 3696 / 8 = 462 batches) is
too slow on CPU, so by default a fixed number of batches is timed and
``seconds_per_epoch`` = mean seconds per batch x batches per epoch (``extrapolated``).
Peak training memory per cell comes from one training step on an 8 x 300-frame batch
in a fresh subprocess per cell (peak RSS growth on CPU, ``torch.cuda.max_memory_allocated``
on GPU, where nn.GRU/nn.LSTM are cuDNN's). Logs go to stderr; one JSON object is printed
on stdout's last line.

    OMP_NUM_THREADS=2 PYTHONPATH=. python scripts/bench_epoch.py --small --batches 5
    OMP_NUM_THREADS=2 PYTHONPATH=. python scripts/bench_epoch.py            # 5 x 550, default batches
    PYTHONPATH=. python scripts/bench_epoch.py --data exp/x/features/train --ali exp/x/ali/train/ali.scp --batches 0
    PYTHONPATH=. python scripts/bench_epoch.py --device cuda --batches 0   # the whole synthetic epoch
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import nn

from bench_cells import status_bytes  # scripts/ is on sys.path when a script runs
from asr.features.loader import IGNORE_INDEX, Batch, BucketBatchSampler, collate
from asr.nn import ligru_cpp
from asr.nn.ligru_fused import select_backend
from asr.nn.spec import ModelSpec, build_encoder, count_parameters
from asr.train.optim import OptimConfig, build_optimizer

log = logging.getLogger("bench_epoch")

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CELLS = ("gru", "lstm", "ligru")
SHAPES = {"timit": {"layers": 5, "hidden": 550}, "small": {"layers": 3, "hidden": 256}}
# Timed batches per cell when --batches is not given (synthetic data). On the 2-core CPU
# machine with 2 threads and no other load: about 1.5 min (--small) and 5 min (5 x 550).
# When another job holds a core, 2 spinning OpenMP threads make nn.GRU/nn.LSTM (one
# parallel region per time step) up to 30x slower at random: there use --threads 1
# (OMP_NUM_THREADS=1) or OMP_WAIT_POLICY=PASSIVE.
DEFAULT_BATCHES = {"timit": 10, "small": 20}
# TIMIT's training set (pytorch-kaldi's recipe): 3696 utterances, about 300 frames each at
# 10 ms, 40 fMLLR features, about 1900 context-dependent pdfs.
TIMIT_TRAIN_UTTS = 3696
TIMIT_MEAN_FRAMES = 300
TIMIT_FEAT_DIM = 40
TIMIT_PDFS = 1936
WARMUP_BATCHES = 2
MEMORY_WARMUP_FRAMES = 4


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--small", action="store_true", help="3 x 256 bidirectional instead of 5 x 550")
    p.add_argument("--layers", type=int, default=None, help="override the layers of the shape")
    p.add_argument("--hidden", type=int, default=None, help="override the units of the shape")
    p.add_argument("--cells", default=",".join(CELLS), help="comma-separated, from gru,lstm,ligru")
    p.add_argument("--batches", type=int, default=None,
                   help="timed batches per cell (0: a whole epoch; default: the whole epoch with "
                        f"--data, else {DEFAULT_BATCHES['timit']} (5 x 550) / "
                        f"{DEFAULT_BATCHES['small']} (--small), extrapolated to an epoch)")
    p.add_argument("--batch-size", type=int, default=8, help="utterances per batch")
    p.add_argument("--data", default=None, help="feature store directory (else synthetic data)")
    p.add_argument("--ali", default=None, help="alignment scp/ark of int pdf ids per frame (with --data)")
    p.add_argument("--num-classes", type=int, default=None,
                   help=f"output pdfs (default: {TIMIT_PDFS} synthetic, 1 + the largest id in --ali)")
    p.add_argument("--utts", type=int, default=TIMIT_TRAIN_UTTS, help="synthetic training-set size")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    p.add_argument("--memory-of", default=None, help=argparse.SUPPRESS)
    p.add_argument("--input-size", type=int, default=TIMIT_FEAT_DIM, help=argparse.SUPPRESS)
    args = p.parse_args()
    shape = SHAPES["small" if args.small else "timit"]
    args.layers = args.layers or shape["layers"]
    args.hidden = args.hidden or shape["hidden"]
    return args


# ---------------------------------------------------------------------------- model


def load_preset(name: str) -> dict:
    """A ``configs/<group>/<name>.yaml`` preset as a plain dict, ``defaults`` dropped."""
    group, _, file = name.rpartition("/")
    d = OmegaConf.to_container(OmegaConf.load(CONFIGS / group / f"{file}.yaml"), resolve=True)
    d.pop("defaults", None)
    return d


def model_spec(cell: str, layers: int, hidden: int) -> tuple[ModelSpec, dict]:
    """The recipe preset of ``cell`` resized to ``layers`` x ``hidden`` bidirectional, and
    what was changed ({key: [preset, used]})."""
    d = load_preset(f"model/{cell}")
    changed = {key: [d.get(key), value] for key, value in
               (("num_layers", layers), ("hidden_size", hidden), ("bidirectional", True))
               if d.get(key) != value}
    d.update(num_layers=layers, hidden_size=hidden, bidirectional=True)
    return ModelSpec.from_dict(d), changed


class AcousticModel(nn.Module):
    """Encoder + linear layer to the pdf ids: frame logits [B, T, classes]."""

    def __init__(self, spec: ModelSpec, input_size: int, num_classes: int) -> None:
        super().__init__()
        self.encoder = build_encoder(spec, input_size)
        self.output = nn.Linear(self.encoder.output_size, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.output(self.encoder(x, lengths))


def build(cell: str, args: argparse.Namespace, input_size: int, num_classes: int,
          optim: OptimConfig, device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer]:
    spec, _ = model_spec(cell, args.layers, args.hidden)
    model = AcousticModel(spec, input_size, num_classes).to(device).train()
    return model, build_optimizer(optim, model.parameters())


def train_step(model: nn.Module, opt: torch.optim.Optimizer, batch: Batch,
               max_grad_norm: float | None) -> float:
    """One hybrid training step: frame cross-entropy on valid frames, RMSprop update."""
    opt.zero_grad(set_to_none=True)
    logits = model(batch.feats, batch.lengths)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1),
                           ignore_index=IGNORE_INDEX)
    loss.backward()
    if max_grad_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    opt.step()
    return float(loss.detach())


# ---------------------------------------------------------------------------- data


class SyntheticDataset(torch.utils.data.Dataset):
    """TIMIT-shaped utterances: Gaussian features and uniform pdf ids, seeded per item.

    ``num_frames`` are drawn once from N(300, 90) clipped to [90, 780] frames (TIMIT's
    training utterances: mean about 3.1 s, 0.9 to 7.8 s).
    """

    tokens = None  # frame targets, like a FeatureDataset with alignments

    def __init__(self, utts: int, feat_dim: int, num_classes: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        frames = np.clip(rng.normal(TIMIT_MEAN_FRAMES, 90, size=utts), 90, 780)
        self.num_frames = [int(n) for n in np.rint(frames)]
        self.feat_dim, self.num_classes, self.seed = feat_dim, num_classes, seed

    def __len__(self) -> int:
        return len(self.num_frames)

    def __getitem__(self, index: int) -> tuple[str, np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, index])
        n = self.num_frames[index]
        feats = rng.standard_normal((n, self.feat_dim), dtype=np.float32)
        return f"utt{index:05d}", feats, rng.integers(0, self.num_classes, size=n)


def load_batches(args: argparse.Namespace) -> tuple[list[Batch], dict]:
    """The timed batches (the first ones of epoch 0's shuffled, length-bucketed order)
    and what they are."""
    if args.data:
        from asr.features.loader import FeatureDataset, build_data_loader
        from asr.features.store import FeatureStore

        if not args.ali:
            raise SystemExit("--data needs --ali (frame alignments: int pdf ids per frame)")
        dataset = FeatureDataset(FeatureStore(args.data), alignments=args.ali)
        num_classes = args.num_classes or 1 + max(
            int(np.max(dataset.alignments[u])) for u in dataset.utts)
        loader = build_data_loader(dataset, max_frames=None, batch_size=args.batch_size,
                                   shuffle=True, seed=args.seed)
        per_epoch = len(loader.batch_sampler)
        wanted = per_epoch if args.batches in (None, 0) else min(args.batches, per_epoch)
        batches = []
        for batch in loader:
            if len(batches) == wanted:
                break
            batches.append(batch)
        info = {"kind": "feature_store", "store": str(Path(args.data).resolve()),
                "alignments": str(Path(args.ali).resolve()), "utterances": len(dataset),
                "feat_dim": dataset.store.dim, "num_classes": num_classes,
                "mean_frames": float(np.mean(dataset.num_frames))}
    else:
        num_classes = args.num_classes or TIMIT_PDFS
        dataset = SyntheticDataset(args.utts, TIMIT_FEAT_DIM, num_classes, args.seed)
        sampler = BucketBatchSampler(dataset.num_frames, None, args.batch_size, True, args.seed)
        order = sampler.batches()
        per_epoch = len(order)
        default = DEFAULT_BATCHES["small" if args.small else "timit"]
        wanted = default if args.batches is None else (args.batches or per_epoch)
        wanted = min(wanted, per_epoch)
        batches = [collate([dataset[i] for i in order[b]]) for b in range(wanted)]
        info = {"kind": "synthetic", "utterances": len(dataset), "feat_dim": TIMIT_FEAT_DIM,
                "num_classes": num_classes, "mean_frames": float(np.mean(dataset.num_frames)),
                "frames": "N(300, 90) clipped to [90, 780]", "features": "N(0, 1)",
                "targets": "uniform pdf ids", "seed": args.seed}
    info.update(batch_size=args.batch_size, batches_per_epoch=per_epoch)
    return batches, info


def memory_batch(batch_size: int, frames: int, feat_dim: int, num_classes: int) -> Batch:
    """A full-length batch: ``batch_size`` utterances of ``frames`` frames."""
    gen = torch.Generator().manual_seed(0)
    return Batch([f"m{i}" for i in range(batch_size)],
                 torch.randn(batch_size, frames, feat_dim, generator=gen),
                 torch.full((batch_size,), frames, dtype=torch.int64),
                 torch.randint(0, num_classes, (batch_size, frames), generator=gen))


# ---------------------------------------------------------------------------- memory


def measure_memory(args: argparse.Namespace, optim: OptimConfig, device: torch.device) -> dict:
    """Peak memory growth of one training step at 8 x 300 frames, in this fresh process.

    The model, its optimiser state and the libraries' buffers and thread pools exist
    before the baseline (a warm-up step, on 4 frames on CPU, on the full batch on GPU
    for cuDNN workspaces and compiled kernels); gradients are freed before it, so the
    growth is activations + gradients + the step's temporaries.
    """
    cell = args.memory_of
    model, opt = build(cell, args, args.input_size, args.num_classes, optim, device)
    batch = memory_batch(args.batch_size, TIMIT_MEAN_FRAMES, args.input_size, args.num_classes).to(device)
    state = {"params_mb": sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20}
    if device.type == "cuda":
        train_step(model, opt, batch, optim.max_grad_norm)
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        train_step(model, opt, batch, optim.max_grad_norm)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        short = Batch(batch.utts, batch.feats[:, :MEMORY_WARMUP_FRAMES].contiguous(),
                      torch.full_like(batch.lengths, MEMORY_WARMUP_FRAMES),
                      batch.targets[:, :MEMORY_WARMUP_FRAMES].contiguous())
        train_step(model, opt, short, optim.max_grad_norm)
        opt.zero_grad(set_to_none=True)
        base = status_bytes("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
        train_step(model, opt, batch, optim.max_grad_norm)
        peak = status_bytes("VmHWM") - base
    state["optimizer_state_mb"] = sum(t.numel() * t.element_size() for s in opt.state.values()
                                      for t in s.values() if torch.is_tensor(t)) / 2**20
    return {"peak_bytes": int(peak), **state}


def memory_in_subprocess(cell: str, args: argparse.Namespace, input_size: int,
                         num_classes: int) -> dict | None:
    cmd = [sys.executable, __file__, "--memory-of", cell, "--device", args.device,
           "--threads", str(args.threads), "--layers", str(args.layers), "--hidden", str(args.hidden),
           "--batch-size", str(args.batch_size), "--input-size", str(input_size),
           "--num-classes", str(num_classes), "--seed", str(args.seed)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        log.error("memory of %s failed: %s", cell, proc.stderr.strip().splitlines()[-1:])
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- timing


def timed(fn, *fn_args, device: torch.device) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result) of one call, synchronised on GPU."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    begin, begin_cpu = time.perf_counter(), time.process_time()
    result = fn(*fn_args)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - begin, time.process_time() - begin_cpu, result


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    device = torch.device(args.device)
    optim = OptimConfig.from_dict(load_preset("optim/rmsprop"))
    if args.memory_of:
        print(json.dumps(measure_memory(args, optim, device)))
        return
    cells = [c for c in args.cells.split(",") if c]
    unknown = sorted(set(cells) - set(CELLS))
    if unknown:
        raise SystemExit(f"unknown cells {unknown}; choose from {list(CELLS)}")
    started = time.perf_counter()
    load_before = list(os.getloadavg())

    batches, data = load_batches(args)
    input_size, num_classes = data["feat_dim"], data["num_classes"]
    log.info("data: %s, %d timed batches of %d per epoch", data["kind"], len(batches),
             data["batches_per_epoch"])
    if device.type == "cpu" and "ligru" in cells:
        t = time.perf_counter()
        kernel = ligru_cpp.available()  # builds the C++ kernel (a minute, once) before any timing
        log.info("ligru C++ kernel: %s (%.1f s)", kernel, time.perf_counter() - t)
    batches = [b.to(device) for b in batches]
    models, presets_changed, specs = {}, {}, {}
    for cell in cells:
        spec, changed = model_spec(cell, args.layers, args.hidden)
        specs[cell], presets_changed[cell] = spec.to_dict(), changed
        models[cell] = build(cell, args, input_size, num_classes, optim, device)
    params = {c: count_parameters(m) for c, (m, _) in models.items()}

    warmup = {}
    for cell in cells:  # warm-up: kernels, thread pools, optimiser state
        model, opt = models[cell]
        t = time.perf_counter()
        for batch in batches[:WARMUP_BATCHES]:
            train_step(model, opt, batch, optim.max_grad_norm)
        if device.type == "cuda":
            torch.cuda.synchronize()
        warmup[cell] = time.perf_counter() - t
        log.info("warm-up %s: %.1f s", cell, warmup[cell])

    wall = {c: [] for c in cells}
    cpu = {c: [] for c in cells}
    losses = {c: [] for c in cells}
    for i, batch in enumerate(batches):
        order = cells[i % len(cells):] + cells[:i % len(cells)]
        for cell in order:
            model, opt = models[cell]
            w, c, loss = timed(train_step, model, opt, batch, optim.max_grad_norm, device=device)
            wall[cell].append(w)
            cpu[cell].append(c)
            losses[cell].append(loss)
        log.info("batch %d/%d (%d x %d): %s", i + 1, len(batches), batch.feats.shape[0],
                 batch.feats.shape[1], ", ".join(f"{c} {wall[c][-1]:.2f} s" for c in cells))

    per_epoch = data["batches_per_epoch"]
    spb = {c: statistics.fmean(t) for c, t in wall.items()}
    cpu_spb = {c: statistics.fmean(t) for c, t in cpu.items()}
    spe = {c: s * per_epoch for c, s in spb.items()}
    r_gru, r_lstm = ratio(spb.get("ligru"), spb.get("gru")), ratio(spb.get("ligru"), spb.get("lstm"))
    del models, batches

    memory = {} if args.no_memory else {c: memory_in_subprocess(c, args, input_size, num_classes)
                                        for c in cells}
    peak_mb = {c: None if m is None else m["peak_bytes"] / 2**20 for c, m in memory.items()}
    mem_le = (None if peak_mb.get("ligru") is None or peak_mb.get("gru") is None
              else peak_mb["ligru"] <= peak_mb["gru"])
    if device.type == "cuda":
        memory_method = ("torch.cuda.max_memory_allocated minus memory_allocated before one training "
                         "step (after a warm-up step; gradients freed), fresh subprocess per cell; "
                         "gru/lstm are nn.GRU/nn.LSTM, i.e. cuDNN")
    else:
        memory_method = ("peak RSS growth of one training step (forward, cross-entropy, backward, "
                         "clip, RMSprop step): /proc/self/status VmHWM after resetting it via "
                         "/proc/self/clear_refs, minus VmRSS before the step; fresh subprocess per "
                         "cell, after model build and a 4-frame warm-up step (optimiser state and "
                         "thread pools exist, gradients freed)")

    result = {
        "seconds_per_epoch": spe,
        "seconds_per_batch": spb,
        "extrapolated": len(wall[cells[0]]) < per_epoch,
        "batches_per_epoch": per_epoch,
        "ligru_vs_gru": r_gru,
        "ligru_vs_lstm": r_lstm,
        "targets": {"ligru_vs_gru_le_0_60": None if r_gru is None else r_gru <= 0.60,
                    "ligru_vs_lstm_le_0_80": None if r_lstm is None else r_lstm <= 0.80},
        "peak_memory_mb": peak_mb,
        "ligru_memory_le_gru": mem_le,
        "ligru_memory_vs_gru": ratio(peak_mb.get("ligru"), peak_mb.get("gru")),
        "memory_method": None if args.no_memory else memory_method,
        "memory_shape": None if args.no_memory else {"batch": args.batch_size, "frames": TIMIT_MEAN_FRAMES,
                                                      "feat_dim": input_size, "num_classes": num_classes},
        "memory_details": memory,
        "params": params,
        "cpu_seconds_per_batch": cpu_spb,
        "ratios_cpu_time": {"ligru_vs_gru": ratio(cpu_spb.get("ligru"), cpu_spb.get("gru")),
                            "ligru_vs_lstm": ratio(cpu_spb.get("ligru"), cpu_spb.get("lstm"))},
        "median_seconds_per_batch": {c: statistics.median(t) for c, t in wall.items()},
        "all_seconds": wall,
        "warmup_seconds": warmup,
        "first_last_loss": {c: [v[0], v[-1]] for c, v in losses.items()},
        "settings": {
            "layers": args.layers, "hidden": args.hidden, "bidirectional": True,
            "batch": args.batch_size, "batches": len(wall[cells[0]]), "warmup_batches": WARMUP_BATCHES,
            "timing": "round-robin: each batch through every cell in turn, order rotating per batch; "
                      "wall time of zero_grad+forward+loss+backward+clip+step, data loaded beforehand",
            "data": data, "device": args.device,
            "device_name": torch.cuda.get_device_name() if device.type == "cuda" else cpu_name(),
            "threads": args.threads, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "cpu": cpu_name(), "cpu_count": os.cpu_count(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "optimizer": optim.to_dict(), "models": specs, "preset_overrides": presets_changed,
            "ligru_backend": select_backend(specs.get("ligru", {}).get("backend", "auto"),
                                            torch.empty(0, device=device)),
            "ligru_cpp_kernel": ligru_cpp.available() if device.type == "cpu" else False,
            "torch": torch.__version__, "seed": args.seed,
        },
        "load_average": {"before": load_before, "after": list(os.getloadavg())},
        "wall_seconds": time.perf_counter() - started,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
