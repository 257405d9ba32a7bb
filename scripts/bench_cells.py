"""Time forward+backward of every recurrent cell at pytorch-kaldi's TIMIT shape.

Cells run interleaved in one process (one call of each per round), median over
rounds; on GPU each call is timed with CUDA events after a warm-up call of
every cell. Peak training memory per cell is measured in a fresh subprocess
each (peak RSS growth on CPU, ``torch.cuda.max_memory_allocated`` on GPU).
"ligru" is the fused path ``build_rnn`` picks by default: the C++ kernel on
CPU, the Triton kernels on GPU (the JSON's ``ligru_backend`` says which). On
GPU SpeechBrain's LiGRU (``torch.jit.script``-ed) is timed too when
``speechbrain`` imports. Prints one JSON object on the last line.

    PYTHONPATH=. python scripts/bench_cells.py --device cpu [--small] [--repeats 5]
    PYTHONPATH=. python scripts/bench_cells.py --device cuda --cells gru,ligru,ligru_torch,ligru_reference
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch

from asr.nn import build_rnn
from asr.nn import ligru_cpp
from asr.nn.ligru_fused import select_backend

SHAPES = {
    "timit": dict(num_layers=5, hidden_size=550, batch=8, input_size=40, frames=300),
    "small": dict(num_layers=2, hidden_size=128, batch=8, input_size=40, frames=100),
}
# name -> (cell, options). "ligru" is the fast path build_rnn picks by default.
# "ligru_triton" is not in the default list: it needs a GPU (or Triton's interpreter).
VARIANTS = {
    "gru": ("gru", {}),
    "lstm": ("lstm", {}),
    "rnn": ("rnn", {"nonlinearity": "relu"}),
    "ligru": ("ligru", {"recurrent_dropout": 0.2}),
    "ligru_torch": ("ligru", {"recurrent_dropout": 0.2, "backend": "torch"}),
    "ligru_triton": ("ligru", {"recurrent_dropout": 0.2, "backend": "triton"}),
    "ligru_reference": ("ligru", {"recurrent_dropout": 0.2, "impl": "reference"}),
    "sligru": ("sligru", {"recurrent_dropout": 0.2}),
    "mgu": ("mgu", {}),
}
DEFAULT_CELLS = [name for name in VARIANTS if name != "ligru_triton"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--small", action="store_true", help="small shape instead of TIMIT's")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median reported)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cells", default=",".join(DEFAULT_CELLS), help="comma-separated variants")
    parser.add_argument("--dropout", type=float, default=0.2, help="dropout between layers")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--speechbrain", action="store_true",
                        help="also time SpeechBrain's LiGRU, scripted, on CPU (always tried on GPU)")
    parser.add_argument("--memory-of", default=None, help=argparse.SUPPRESS)
    return parser.parse_args()


def build(name: str, shape: dict, dropout: float, device: torch.device) -> torch.nn.Module:
    """The variant's model on ``device``, in training mode."""
    if name == "speechbrain_ligru":
        from speechbrain.nnet.RNN import LiGRU

        model = LiGRU(hidden_size=shape["hidden_size"], input_shape=(shape["batch"], shape["frames"],
                      shape["input_size"]), num_layers=shape["num_layers"], dropout=dropout,
                      bidirectional=True)
        return torch.jit.script(model.to(device).train())
    cell, options = VARIANTS[name]
    return build_rnn(cell, shape["input_size"], shape["hidden_size"], shape["num_layers"],
                     bidirectional=True, dropout=dropout, **options).to(device).train()


def step(model: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor, speechbrain: bool) -> None:
    """One forward + backward."""
    out = model(x)[0] if speechbrain else model(x)
    out.backward(grad)
    for p in model.parameters():
        p.grad = None


def make_inputs(shape: dict, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape["batch"], shape["frames"], shape["input_size"], generator=gen)
    grad = torch.randn(shape["batch"], shape["frames"], 2 * shape["hidden_size"], generator=gen)
    return x.to(device), grad.to(device)


def speechbrain_version() -> str | None:
    """SpeechBrain's version if it imports, else None."""
    try:
        import speechbrain
    except ImportError:
        return None
    return getattr(speechbrain, "__version__", "unknown")


def time_once(fn, device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call; CUDA events on GPU."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()  # nothing of the previous call left in the queue
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1000.0, float("nan")
    begin, begin_cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - begin, time.process_time() - begin_cpu


def measure_memory(name: str, shape: dict, dropout: float, device: torch.device) -> int:
    """Peak training memory of one forward+backward, in this (fresh) process."""
    model = build(name, shape, dropout, device)
    x, grad = make_inputs(shape, device)
    speechbrain = name == "speechbrain_ligru"
    if device.type == "cuda":
        step(model, x, grad, speechbrain)  # warm-up: workspaces, compiled kernels
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step(model, x, grad, speechbrain)
        return torch.cuda.max_memory_allocated() - base
    step(model, x[:, :4], grad[:, :4], speechbrain)  # warm-up: library buffers, thread pools
    base = status_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
    step(model, x, grad, speechbrain)
    return status_bytes("VmHWM") - base


def status_bytes(field: str) -> int:
    """A memory field of /proc/self/status (kB there), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_in_subprocess(name: str, args: argparse.Namespace) -> int | None:
    cmd = [sys.executable, __file__, "--memory-of", name, "--device", args.device,
           "--threads", str(args.threads), "--dropout", str(args.dropout)] + (["--small"] if args.small else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"memory of {name} failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return int(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    shape = SHAPES["small" if args.small else "timit"]
    if args.memory_of:
        print(measure_memory(args.memory_of, shape, args.dropout, device))
        return
    names = [n for n in args.cells.split(",") if n]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown cells {unknown}; choose from {sorted(VARIANTS)}")
    speechbrain = speechbrain_version()
    if args.speechbrain or device.type == "cuda":
        if speechbrain is None:
            print("speechbrain: not installed (pip install speechbrain to compare)", file=sys.stderr)
        else:
            names.append("speechbrain_ligru")
    if device.type == "cpu":
        ligru_cpp.available()  # build the C++ kernel before timing
    models = {n: build(n, shape, args.dropout, device) for n in names}
    x, grad = make_inputs(shape, device)
    for name in names:  # warm-up
        step(models[name], x, grad, name == "speechbrain_ligru")
    times = {n: [] for n in names}
    cpu_times = {n: [] for n in names}
    for _ in range(args.repeats):
        for name in names:
            fn = lambda: step(models[name], x, grad, name == "speechbrain_ligru")  # noqa: E731
            wall, cpu = time_once(fn, device)
            times[name].append(wall)
            cpu_times[name].append(cpu)
    seconds = {n: statistics.median(t) for n, t in times.items()}
    cpu_seconds = {n: statistics.median(t) for n, t in cpu_times.items()}
    ratios = {}
    if "ligru" in seconds and "gru" in seconds:
        ratios["ligru_vs_gru"] = seconds["ligru"] / seconds["gru"]
    if "ligru" in seconds and "ligru_reference" in seconds:
        ratios["ligru_vs_reference"] = seconds["ligru"] / seconds["ligru_reference"]
    if "ligru" in seconds and "speechbrain_ligru" in seconds:
        ratios["ligru_vs_speechbrain"] = seconds["ligru"] / seconds["speechbrain_ligru"]
    elif device.type == "cuda":
        ratios["ligru_vs_speechbrain"] = None  # speechbrain not installed (or ligru not timed)
    if device.type == "cpu" and "ligru" in cpu_seconds:
        # CPU time of the process: less sensitive than wall time to other load on the machine.
        for other in ("gru", "ligru_reference"):
            if other in cpu_seconds:
                ratios[f"ligru_vs_{other.replace('ligru_', '')}_cpu_time"] = cpu_seconds["ligru"] / cpu_seconds[other]
    memory = {} if args.no_memory else {n: memory_in_subprocess(n, args) for n in names}
    if "ligru" in memory and "gru" in memory and memory["gru"]:
        ratios["ligru_memory_vs_gru"] = memory["ligru"] / memory["gru"]
    result = {
        "seconds": seconds, "ratios": ratios, "peak_memory_bytes": memory,
        "cpu_seconds": cpu_seconds, "all_seconds": times, "load_average": list(os.getloadavg()),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "threads": args.threads, "shape": shape, "bidirectional": True, "dropout": args.dropout,
        "repeats": args.repeats, "ligru_cpp_kernel": ligru_cpp.available() if device.type == "cpu" else False,
        "ligru_backend": select_backend("auto", torch.empty(0, device=device)),
        "speechbrain": speechbrain or "not installed",
        "variants": {n: VARIANTS.get(n, ("speechbrain", {})) for n in names},
        "torch": torch.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
