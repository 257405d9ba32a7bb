"""Real-time factors of decoding per CPU core: the search alone, and features + forward + search.

Trained runs are decoded as ``asr-transcribe`` decodes new audio (:class:`Transcriber`: the
run's front end, its network, its graphs and the values it tuned on dev, from its
``results.json``), on the utterances of one of its data sets (``<exp_dir>/data/<set>``,
Kaldi order, the first ``--max-utts``, by default all). Per model kind (``hybrid``: the fMLLR hybrid,
``ctc``: the fbank CTC model) three parts are timed one after the other, each over the
whole set, after an untimed warm-up of each (GMM models read, the C++ LiGRU kernel built,
graphs read and penalised copies made):

* ``features``: ``Transcriber.features`` on the samples read (fbank/MFCC + CMVN; for fMLLR
  models the whole GMM front end: MFCC, LDA+MLLT, tri2 first pass, per-speaker fMLLR),
  all utterances at once so each speaker's statistics come from their utterances;
* ``forward``: ``log_posteriors`` in batches of ``--batch-size`` in Kaldi order (as
  ``asr-decode`` batches them), padding included;
* ``search``: per utterance, the score matrix (``scores``) and ``best_path`` at the tuned
  point of each level (``words``: the word graph, ``phones``: the phone graph), retried
  with twice the beam when no token survives, as ``decode_grid`` does.

An RTF is process CPU seconds / seconds of audio (``len(samples) / sample_rate``) with one
thread (``torch.set_num_threads(1)``, one process): compute seconds on one core per second
of speech. Wall seconds are reported too; on ``--device cuda`` the forward pass runs on the
GPU and its RTF is wall seconds (synchronised), features and search staying on the CPU.
``rtf_decode`` is the search at ``--level``, ``rtf_total`` features + forward + search.

``hybrid_5x550`` is pytorch-kaldi's TIMIT LiGRU size (5 x 550 bidirectional, the trained
hybrid's other model fields, input and heads), untrained: its forward pass is timed on the
hybrid's features; a search on random posteriors would time nothing real, so its total
adds the features and search measured for the trained hybrid (``features_from``,
``search_from``). Targets: ``rtf_decode <= 0.01``; ``rtf_total <= 0.10`` (5 x 550) and
``<= 0.05`` (the CPU-sized trained models). The hypotheses are scored against the set's
references (``error_rate``) to show the search decodes as the run did. Logs go to stderr;
one JSON object is printed on stdout's last line.

    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/bench_decode.py              # both demo runs
    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/bench_decode.py --kinds ctc --checkpoint-ctc exp/x/best.pt
    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/bench_decode.py --max-utts 48 --level phones --small
    PYTHONPATH=. python scripts/bench_decode.py --device cuda                  # forward on the GPU
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Self

import numpy as np
import torch
from bench_epoch import cpu_name  # scripts/ is on sys.path when a script runs

from asr.data.kaldi_dir import DataDir, read_data_dir
from asr.decode.grid import GridPoint
from asr.decode.network import Network, log_posteriors, scores
from asr.decode.scoring import fold_to_39, score
from asr.decode.transcribe import Transcriber
from asr.errors import AsrError
from asr.graph.search import SearchOptions, best_path
from asr.nn import ligru_cpp
from asr.nn.acoustic import AcousticModel
from asr.nn.ligru_fused import select_backend
from asr.nn.spec import ModelSpec, count_parameters
from asr.recipe.redecode import experiment_of
from asr.train.checkpoint import load_checkpoint

log = logging.getLogger("bench_decode")

DEMO = Path("/tmp/demo_mix")
DEFAULT_CHECKPOINTS = {"hybrid": DEMO / "timit_ligru" / "best.pt",
                       "ctc": DEMO / "timit_ligru_ctc_const" / "best.pt"}
# How to make a run of each kind, for the error line of a missing one.
MAKE = {"hybrid": "asr-train recipe=timit_ligru data.root=CORPUS exp_dir=DIR model.num_layers=3 "
                  "model.hidden_size=256",
        "ctc": "asr-train recipe=timit_ligru_ctc data.root=CORPUS exp_dir=DIR model.num_layers=3 "
               "model.hidden_size=256 optim.newbob_factor=1.0"}
KINDS = ("hybrid", "ctc")
LEVELS = ("words", "phones")
BIG = "hybrid_5x550"
# pytorch-kaldi's TIMIT LiGRU: 5 layers of 550 units, bidirectional.
BIG_LAYERS, BIG_HIDDEN = 5, 550
TARGET_DECODE = 0.01
TARGET_TOTAL = {"hybrid": 0.05, "ctc": 0.05, BIG: 0.10}
DEFAULT_MAX_UTTS = 0  # all: the whole mini-TIMIT test set takes about a minute
WARMUP_UTTS = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint-hybrid", type=Path, default=DEFAULT_CHECKPOINTS["hybrid"],
                   help="a decoded hybrid run's best.pt (default: %(default)s)")
    p.add_argument("--checkpoint-ctc", type=Path, default=DEFAULT_CHECKPOINTS["ctc"],
                   help="a decoded CTC run's best.pt (default: %(default)s)")
    p.add_argument("--kinds", default=",".join(KINDS), help="comma-separated, from hybrid,ctc")
    p.add_argument("--set", default="test", help="data set of each run (<exp_dir>/data/<set>)")
    p.add_argument("--max-utts", type=int, default=DEFAULT_MAX_UTTS,
                   help="the first N utterances in Kaldi order (0: all; default %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="utterances per forward pass")
    p.add_argument("--level", choices=LEVELS, default="words",
                   help="the search of rtf_decode and rtf_total (the other level is timed too "
                        "unless --only-level)")
    p.add_argument("--only-level", action="store_true", help="search at --level alone")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="of the forward pass")
    p.add_argument("--small", action="store_true", help=f"skip the untrained {BIG_LAYERS} x {BIG_HIDDEN} model")
    p.add_argument("--layers", type=int, default=BIG_LAYERS, help=argparse.SUPPRESS)
    p.add_argument("--hidden", type=int, default=BIG_HIDDEN, help=argparse.SUPPRESS)
    p.add_argument("--beam", type=float, default=13.0, help="search beam (asr-decode's)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: RTF per core)")
    p.add_argument("--seed", type=int, default=0, help=f"of the untrained {BIG_LAYERS} x {BIG_HIDDEN} weights")
    args = p.parse_args(argv)
    args.kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(args.kinds) - set(KINDS))
    if unknown or not args.kinds:
        p.error(f"--kinds: unknown {unknown}; choose from {list(KINDS)}")
    if args.batch_size < 1 or args.max_utts < 0:
        p.error("--batch-size must be >= 1 and --max-utts >= 0")
    return args


# ---------------------------------------------------------------------------- timing


class Clock:
    """CPU seconds of this process and wall seconds of a ``with`` block."""

    def __init__(self, device: torch.device | None = None) -> None:
        self.device = device
        self.cpu = self.wall = 0.0

    def __enter__(self) -> Self:
        self._sync()
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self._sync()
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu

    def _sync(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize()

    def seconds(self, gpu: bool = False) -> float:
        """The clock an RTF uses: wall seconds on the GPU, CPU seconds on the CPU."""
        return self.wall if gpu else self.cpu


# ---------------------------------------------------------------------------- runs


def open_run(kind: str, checkpoint: Path, set_name: str, beam: float) -> tuple[Transcriber, DataDir, Path]:
    """The run's Transcriber, its data set and exp_dir, or one line saying what to do."""
    make = (f"make one with `{MAKE[kind]}` (it trains and decodes; `asr-decode checkpoint=DIR/best.pt` "
            "decodes a run that stopped after training), or leave it out with --kinds")
    if not checkpoint.is_file():
        raise SystemExit(f"--checkpoint-{kind} {checkpoint}: no such checkpoint; {make}")
    exp = experiment_of(checkpoint)
    try:
        ckpt = load_checkpoint(checkpoint)
        tr = Transcriber(checkpoint, ckpt, exp, num_workers=1,
                         search=SearchOptions(beam=beam, scale_beam=False))
    except AsrError as e:
        raise SystemExit(f"--checkpoint-{kind} {checkpoint}: {e}") from None
    if tr.net.kind != kind:
        raise SystemExit(f"--checkpoint-{kind} {checkpoint}: a {tr.net.kind} model, not {kind}; {make}")
    if not (exp / "results.json").is_file():
        raise SystemExit(f"--checkpoint-{kind} {checkpoint}: {exp / 'results.json'} is missing (no tuned "
                         f"values); run `asr-decode checkpoint={checkpoint}` once")
    data = exp / "data" / set_name
    try:
        d = read_data_dir(data)
    except AsrError as e:
        raise SystemExit(f"--set {set_name}: {e}; run `asr-decode checkpoint={checkpoint} "
                         f"data.test_sets=[{set_name}]` once to prepare it") from None
    return tr, d, exp


def model_shape(spec: dict) -> str:
    return (f"{spec['cell']} {spec['num_layers']} x {spec['hidden_size']}"
            f"{' bidirectional' if spec.get('bidirectional') else ''}")


def time_features(tr: Transcriber, samples: dict[str, np.ndarray], utt2spk: dict[str, str],
                  utts: list[str]) -> tuple[dict[str, np.ndarray], Clock]:
    """Network input frames of ``utts`` (one call) and its clock, after a warm-up call."""
    first = utts[0]
    tr.features({first: samples[first]}, {first: utt2spk[first]})  # GMM models read, caches filled
    clock = Clock()
    with clock:
        feats = tr.features({u: samples[u] for u in utts}, {u: utt2spk[u] for u in utts})
    return feats, clock


def time_forward(net: Network, feats: dict[str, np.ndarray], utts: list[str], batch_size: int,
                 device: torch.device) -> tuple[dict[str, np.ndarray], Clock]:
    """Log-posteriors of ``utts`` in batches and their clock, after a warm-up batch."""
    dict(log_posteriors(net, ((u, feats[u]) for u in utts[:batch_size]), batch_size, str(device)))
    clock = Clock(device)
    with clock:
        post = dict(log_posteriors(net, ((u, feats[u]) for u in utts), batch_size, str(device)))
    return post, clock


def time_search(graph, post: dict[str, np.ndarray], bias: np.ndarray, point: GridPoint,
                opts: SearchOptions, utts: list[str]) -> tuple[dict[str, list[int]], Clock, dict]:
    """Best paths of ``utts`` at ``point`` on ``graph`` (penalised already) and their clock."""
    opts = replace(opts, acoustic_scale=point.acoustic_scale)
    wide = replace(opts, beam=2 * opts.beam, max_active=2 * opts.max_active)
    for u in utts[:WARMUP_UTTS]:
        best_path(scores(post[u], bias, point.bias_scale), graph, opts)
    hyps: dict[str, list[int]] = {}
    trouble = {"retried": 0, "failed": 0, "not_final": 0}
    clock = Clock()
    with clock:
        for u in utts:
            s = scores(post[u], bias, point.bias_scale)
            path = best_path(s, graph, opts)
            if path is None:
                trouble["retried"] += 1
                path = best_path(s, graph, wide)
            if path is None:
                trouble["failed"] += 1
                hyps[u] = []
            else:
                trouble["not_final"] += not path.reached_final
                hyps[u] = list(path.labels)
    return hyps, clock, trouble


def read_graph(path: Path, penalty: float):
    import kaldifst

    from asr.graph.fst_util import with_output_penalty

    g = kaldifst.StdVectorFst.read(str(path))
    return with_output_penalty(g, penalty) if penalty else g


def error_rate(tr: Transcriber, d: DataDir, level: str, hyps: dict[str, list[int]]) -> float | None:
    """WER (words) or 39-phone PER (phones) of the hypotheses on the set's references."""
    if level == "words":
        if not d.text or tr.words is None:
            return None
        refs = {u: d.text[u].split() for u in hyps}
        return round(score(refs, {u: [tr.words[i] for i in h] for u, h in hyps.items()}).counts.rate(), 2)
    if not d.phones:
        return None
    refs = fold_to_39({u: d.phones[u].split() for u in hyps})
    out = fold_to_39({u: [tr.phones[i - 1] for i in h] for u, h in hyps.items()})
    return round(score(refs, out).counts.rate(), 2)


def padding(feats: dict[str, np.ndarray], utts: list[str], batch_size: int) -> float:
    """Padded frames / valid frames of the forward batches (0: no padding)."""
    valid = padded = 0
    for i in range(0, len(utts), batch_size):
        lens = [len(feats[u]) for u in utts[i:i + batch_size]]
        valid += sum(lens)
        padded += max(lens) * len(lens)
    return padded / valid - 1.0


def bench_kind(kind: str, run: tuple[Transcriber, DataDir, Path], checkpoint: Path,
               args: argparse.Namespace, device: torch.device) -> dict:
    """Every measurement of one trained run (:func:`open_run`'s); RTFs are the caller's."""
    tr, d, exp = run
    utts = d.utts[:args.max_utts] if args.max_utts else d.utts
    levels = [args.level] if args.only_level else [args.level] + [lv for lv in LEVELS if lv != args.level]
    levels = [lv for lv in levels if tr.graphs[lv].is_file()]
    if args.level not in levels:
        raise SystemExit(f"--checkpoint-{kind} {checkpoint}: {tr.graphs[args.level]} is missing (no "
                         f"{args.level} graph); run `asr-decode checkpoint={checkpoint}` or use --level phones")
    front = tr.feats["gmm_front_end"] if tr.feats["kind"] == "fmllr" else tr.feats["options"]
    rate = int(front["sample_rate"])  # what Transcriber.read resamples to
    log.info("%s: %s, %d utterances of %s", kind, checkpoint, len(utts), args.set)
    read = Clock()
    with read:
        samples = {u: tr.read(Path(d.audio_path(u))) for u in utts}
    audio = sum(len(x) for x in samples.values()) / rate
    feats, feat_clock = time_features(tr, samples, d.utt2spk, utts)
    log.info("%s: features %.2f s CPU (%.1f s of audio)", kind, feat_clock.cpu, audio)
    if device.type == "cpu":
        ligru_cpp.available()  # builds the C++ kernel (once) before any timing
    post, fwd_clock = time_forward(tr.net, feats, utts, args.batch_size, device)
    log.info("%s: forward %.2f s (%s)", kind, fwd_clock.seconds(device.type == "cuda"), args.device)
    tr.net.model.to("cpu")
    search, rates, trouble, points = {}, {}, {}, {}
    for level in levels:
        point = tr.points[level]
        graph = read_graph(tr.graphs[level], point.penalty)
        hyps, clock, trouble[level] = time_search(graph, post, tr.net.bias, point, tr.search, utts)
        search[level], rates[level] = clock, error_rate(tr, d, level, hyps)
        points[level] = point.as_dict("prior_scale" if kind == "hybrid" else "blank_penalty")
        log.info("%s: %s search %.2f s CPU, error rate %s %%", kind, level, clock.cpu, rates[level])
    spec = dict(tr.net.checkpoint["model_spec"])
    return {
        "tr": tr, "feats": feats, "utts": utts, "audio": audio, "read": read,
        "features": feat_clock, "forward": fwd_clock, "search": search,
        "info": {
            "checkpoint": str(checkpoint), "exp_dir": str(exp), "model": model_shape(spec),
            "params": count_parameters(tr.net.model), "heads": dict(tr.net.checkpoint["heads"]),
            "features_kind": tr.feats["kind"], "input_size": int(tr.net.checkpoint["input_size"]),
            "graphs": {lv: str(tr.graphs[lv]) for lv in levels}, "points": points,
            "points_from": str(exp / "results.json"), "error_rate": rates, "search_trouble": trouble,
            "utterances": len(utts), "speakers": len({d.utt2spk[u] for u in utts}),
            "audio_seconds": audio, "frames": int(sum(len(p) for p in post.values())),
            "padding_ratio": padding(feats, utts, args.batch_size),
            "read_audio_seconds": read.cpu,
        },
    }


def bench_big(hybrid: dict, args: argparse.Namespace, device: torch.device) -> dict:
    """Forward pass of an untrained ``--layers`` x ``--hidden`` copy of the trained hybrid."""
    net: Network = hybrid["tr"].net
    spec = {**net.checkpoint["model_spec"], "num_layers": args.layers, "hidden_size": args.hidden,
            "bidirectional": True}
    torch.manual_seed(args.seed)
    model = AcousticModel(ModelSpec.from_dict(spec), int(net.checkpoint["input_size"]),
                          dict(net.checkpoint["heads"])).eval()
    big = Network(model, net.task, net.head, net.bias, {})
    post, clock = time_forward(big, hybrid["feats"], hybrid["utts"], args.batch_size, device)
    log.info("%s: forward %.2f s (%s)", BIG, clock.seconds(device.type == "cuda"), args.device)
    return {"forward": clock, "spec": spec, "params": count_parameters(model),
            "frames": int(sum(len(p) for p in post.values()))}


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    started = time.perf_counter()
    load_before = list(os.getloadavg())
    checkpoints = {"hybrid": args.checkpoint_hybrid, "ctc": args.checkpoint_ctc}
    opened = {kind: open_run(kind, checkpoints[kind], args.set, args.beam) for kind in args.kinds}
    runs = {kind: bench_kind(kind, opened[kind], checkpoints[kind], args, device) for kind in args.kinds}
    big = None if args.small or "hybrid" not in runs else bench_big(runs["hybrid"], args, device)

    rtf_decode, rtf_total, breakdown, seconds = {}, {}, {}, {}
    for kind, r in runs.items():
        audio = r["audio"]
        search = {lv: c.cpu / audio for lv, c in r["search"].items()}
        parts = {"features": r["features"].cpu / audio, "forward": r["forward"].seconds(gpu) / audio}
        rtf_decode[kind] = search[args.level]
        rtf_total[kind] = parts["features"] + parts["forward"] + search[args.level]
        breakdown[kind] = {**parts, "search": search, "total": rtf_total[kind], **r["info"]}
        seconds[kind] = {
            "cpu": {"features": r["features"].cpu, "forward": r["forward"].cpu,
                    "search": {lv: c.cpu for lv, c in r["search"].items()}},
            "wall": {"features": r["features"].wall, "forward": r["forward"].wall,
                     "search": {lv: c.wall for lv, c in r["search"].items()}}}
    if big is not None:
        h = breakdown["hybrid"]
        forward = big["forward"].seconds(gpu) / runs["hybrid"]["audio"]
        rtf_total[BIG] = h["features"] + forward + h["search"][args.level]
        breakdown[BIG] = {
            "features": h["features"], "forward": forward, "search": h["search"], "total": rtf_total[BIG],
            "features_from": "the trained hybrid's front end (same features, measured once)",
            "search_from": f"trained {h['model']} posteriors (random weights give no real search)",
            "model": model_shape(big["spec"]), "spec": big["spec"], "params": big["params"],
            "heads": h["heads"], "trained": False, "utterances": h["utterances"],
            "audio_seconds": h["audio_seconds"], "frames": big["frames"]}
        seconds[BIG] = {"cpu": {"forward": big["forward"].cpu}, "wall": {"forward": big["forward"].wall}}

    targets_total = {k: TARGET_TOTAL[k] for k in rtf_total}
    passed = {"rtf_decode": {k: v <= TARGET_DECODE for k, v in rtf_decode.items()},
              "rtf_total": {k: v <= targets_total[k] for k, v in rtf_total.items()}}
    passed["all"] = all(passed["rtf_decode"].values()) and all(passed["rtf_total"].values())
    first = next(iter(runs.values()))["info"]
    result = {
        "rtf_decode": rtf_decode,
        "rtf_total": rtf_total,
        "targets": {"rtf_decode": {k: TARGET_DECODE for k in rtf_decode}, "rtf_total": targets_total},
        "pass": passed,
        "breakdown": breakdown,
        "seconds": seconds,
        "level": args.level,
        "batch_size": args.batch_size,
        "set": args.set,
        "utterances": first["utterances"],
        "audio_seconds": first["audio_seconds"],
        "device": args.device,
        "device_name": torch.cuda.get_device_name() if gpu else cpu_name(),
        "threads": args.threads,
        "settings": {
            "kinds": args.kinds, "max_utts": args.max_utts, "levels_timed": list(first["graphs"]),
            "search": {"beam": args.beam, "max_active": SearchOptions().max_active,
                       "min_active": SearchOptions().min_active, "scale_beam": False,
                       "retry": "twice the beam and max_active when no token survives"},
            "rtf": ("process CPU seconds / audio seconds, one torch thread, one process"
                    + ("; forward: wall seconds on the GPU (synchronised)" if gpu else "")),
            "rtf_total": "features + forward + search at --level (reading audio excluded)",
            "utterance_order": "Kaldi order (sorted ids: speaker by speaker), the first --max-utts",
            "timing": "each part once over the whole set, after an untimed warm-up (features of one "
                      "utterance, one forward batch, the search of "
                      f"{WARMUP_UTTS} utterances); graphs read and penalised before the search clock",
            "big_model": None if big is None else {"layers": args.layers, "hidden": args.hidden,
                                                   "seed": args.seed},
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "cpu": cpu_name(),
            "cpu_count": os.cpu_count(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "ligru_backend": select_backend("auto", torch.empty(0, device=device)),
            "ligru_cpp_kernel": ligru_cpp.available() if not gpu else False,
            "torch": torch.__version__,
        },
        "load_average": {"before": load_before, "after": list(os.getloadavg())},
        "wall_seconds": time.perf_counter() - started,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
