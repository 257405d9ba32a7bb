"""Comparing runs: per-epoch training time and error rates of several experiment folders.

A run is a folder with ``history.jsonl`` (per-epoch figures of the training loop) and/or
``results.json`` (the decoding stage's summary); a folder holding neither (a Hydra multirun
folder, a sweep) stands for every run below it. :func:`find_runs` gathers them,
:func:`gmm_baselines` the GMM-HMM stages they decoded (one row each, after the networks),
:func:`format_table` writes the Markdown table and :func:`plot_runs` the PNG.

Error rates carry a 95 % bootstrap interval over utterances, from the per-utterance
counts of ``decode/<set>/per_utt.txt`` (phones) and ``decode/<set>/words/per_utt.txt``
(words): utterances are drawn with replacement 1000 times (fixed seed) and the rate of
each draw is total errors over total reference tokens. Two runs whose intervals overlap
are not told apart by that test set.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from asr.errors import AsrError

log = logging.getLogger(__name__)

BOOTSTRAP_DRAWS = 1000
LOADED = 1.5  # an epoch's 1-minute load average above this many times the run's threads: "loaded"


@dataclass
class Rate:
    """An error rate in percent with its 95 % bootstrap interval (None when no per-utterance file)."""

    value: float | None
    low: float | None = None
    high: float | None = None

    def __str__(self) -> str:
        if self.value is None:
            return "-"
        if self.low is None:
            return f"{self.value:.2f}"
        return f"{self.value:.2f} [{self.low:.2f}, {self.high:.2f}]"


@dataclass
class Run:
    """One experiment folder's figures.

    Attributes:
        path: the folder.
        name: its name in the table (the path relative to the common parent).
        results: ``results.json`` (empty when the run was not decoded).
        history: ``history.jsonl`` rows.
        rates: (set, "per" | "wer") -> rate.
    """

    path: Path
    name: str
    results: dict[str, Any]
    history: list[dict[str, Any]]
    rates: dict[tuple[str, str], Rate] = field(default_factory=dict)

    @property
    def epoch_seconds(self) -> list[float]:
        return [float(r["train_seconds"]) for r in self.history if "train_seconds" in r]

    def seconds_per_epoch(self) -> tuple[float, float] | None:
        """Mean and standard deviation of the training passes' seconds."""
        s = self.epoch_seconds
        if not s:
            return None
        return float(np.mean(s)), float(np.std(s))

    def best_epoch(self) -> int | None:
        rows = [r for r in self.history if r.get("dev_err") is not None and math.isfinite(r["dev_err"])]
        return min(rows, key=lambda r: r["dev_err"])["epoch"] if rows else None

    def timing_flags(self) -> list[str]:
        """Why this run's timings may not compare: several devices or thread counts, a loaded machine."""
        flags = []
        devices = {r.get("device") for r in self.history if r.get("device")}
        threads = {r.get("threads") for r in self.history if r.get("threads")}
        if len(devices) > 1:
            flags.append("devices " + "/".join(sorted(map(str, devices))))
        if len(threads) > 1:
            flags.append("threads " + "/".join(sorted(map(str, threads))))
        loads = [(r.get("load_average"), r.get("threads") or 1) for r in self.history]
        worst = max((la / t for la, t in loads if la is not None), default=0.0)
        if worst > LOADED:
            flags.append(f"loaded (load {worst:.1f} x threads)")
        return flags

    def cell(self) -> str:
        return self.results.get("cell") or "-"

    def timing_key(self) -> tuple:
        """(device, threads) of its epochs, to flag rows measured differently from the first."""
        return (tuple(sorted({str(r.get("device")) for r in self.history})),
                tuple(sorted({str(r.get("threads")) for r in self.history})))


def gmm_baselines(runs: Sequence[Run], stages: Sequence[str] | None = None) -> list[Run]:
    """The GMM-HMM rows of ``runs``: each GMM stage a run decoded (``results.json``'s ``gmm``,
    figures of ``gmm/decode_<stage>/``), once per decode folder (runs of one sweep share
    theirs through the cache); ``stages`` keeps only those (None: all).

    Returns:
        One :class:`Run` per baseline, named after its stage (and its run when two runs have
        different decodes of one stage), without a training history.
    """
    found: dict[Path, tuple[str, Run]] = {}
    for run in runs:
        for stage, per_set in (run.results.get("gmm") or {}).items():
            if stages is not None and stage not in stages:
                continue
            folder = (run.path / "gmm" / f"decode_{stage}").resolve()
            if folder in found:
                continue
            base = Run(folder, stage, {"recipe": "GMM-HMM", "cell": stage}, [])
            for s, r in per_set.items():
                for metric, sub in (("per", ""), ("wer", "words")):
                    if r.get(metric) is not None:
                        counts = per_utt_counts(folder / sub / s / "per_utt.txt")
                        base.rates[(s, metric)] = bootstrap(r[metric], *counts) if counts else Rate(r[metric])
            found[folder] = (run.name, base)
    out = []
    for run_name, base in found.values():
        if sum(1 for _, b in found.values() if b.name == base.name) > 1:
            base.name = f"{base.name} ({run_name})"
        out.append(base)
    return out


def find_runs(dirs: Sequence[str | os.PathLike]) -> list[Run]:
    """Every run of ``dirs`` (a run folder, or a folder of runs such as a Hydra multirun).

    Raises:
        AsrError: a folder that does not exist or holds no run, naming it.
    """
    found: list[Path] = []
    for d in dirs:
        p = Path(d)
        if not p.is_dir():
            raise AsrError(f"asr-compare: {p} is not a folder")
        if _is_run(p):
            found.append(p)
            continue
        candidates = sorted({f.parent for pattern in ("results.json", "history.jsonl") for f in p.rglob(pattern)
                             if "previous" not in f.parent.relative_to(p).parts and _is_run(f.parent)},
                            key=lambda c: len(c.parts))
        below: list[Path] = []
        for c in candidates:  # folders inside a run are not runs of their own
            if not any(k in c.parents for k in below):
                below.append(c)
        below.sort()
        if not below:
            raise AsrError(f"asr-compare: {p} holds no run (no history.jsonl or results.json in it or below it)")
        found.extend(below)
    parent = Path(os.path.commonpath([str(f.resolve()) for f in found])) if len(found) > 1 else None
    runs = []
    for f in dict.fromkeys(found):
        name = str(f.resolve().relative_to(parent)) if parent is not None and f.resolve() != parent else f.name
        runs.append(_read_run(f, name or f.name))
    return runs


def _is_run(p: Path) -> bool:
    """An experiment folder: training history or a results summary, and not a stage folder
    (stages, such as ``decode/`` or a GMM stage in a cache, have a ``done.json``)."""
    return ((p / "history.jsonl").is_file() or (p / "results.json").is_file()) and not (p / "done.json").is_file()


def _read_run(path: Path, name: str) -> Run:
    results = json.loads((path / "results.json").read_text()) if (path / "results.json").is_file() else {}
    history = []
    if (path / "history.jsonl").is_file():
        for lineno, line in enumerate((path / "history.jsonl").read_text().splitlines(), 1):
            if line.strip():
                try:
                    history.append(json.loads(line))
                except json.JSONDecodeError:
                    raise AsrError(f"{path / 'history.jsonl'}:{lineno}: not a JSON line") from None
    if not results.get("recipe") and (path / ".hydra" / "config.yaml").is_file():  # trained, not decoded
        import yaml

        cfg = yaml.safe_load((path / ".hydra" / "config.yaml").read_text()) or {}
        results = {**results, "recipe": cfg.get("recipe_name"), "cell": (cfg.get("model") or {}).get("cell")}
    run = Run(path, name, results, history)
    sets = {**({"dev": results["dev"]} if results.get("dev") else {}), **results.get("test_sets", {})}
    for s, r in sets.items():
        for metric, sub in (("per", ""), ("wer", "words")):
            value = r.get(metric)
            if value is None:
                continue
            counts = per_utt_counts(path / "decode" / s / sub / "per_utt.txt")
            run.rates[(s, metric)] = bootstrap(value, *counts) if counts else Rate(value)
    return run


def per_utt_counts(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """[U] errors and [U] reference tokens per utterance from a ``per_utt.txt`` (``#csid`` lines)."""
    if not path.is_file():
        return None
    errors, refs = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        f = line.split()
        if len(f) == 6 and f[1] == "#csid":
            c, s, i, d = (int(x) for x in f[2:])
            errors.append(s + i + d)
            refs.append(c + s + d)
    return (np.asarray(errors), np.asarray(refs)) if refs else None


def bootstrap(value: float, errors: np.ndarray, refs: np.ndarray, draws: int = BOOTSTRAP_DRAWS,
              seed: int = 0) -> Rate:
    """``value`` with the 2.5 and 97.5 percentiles of the rate over utterance resamples."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(refs), size=(draws, len(refs)))
    rates = 100.0 * errors[idx].sum(1) / np.maximum(refs[idx].sum(1), 1)
    low, high = np.percentile(rates, [2.5, 97.5])
    return Rate(value, round(float(low), 2), round(float(high), 2))


def set_names(runs: Sequence[Run]) -> list[str]:
    """Sets in order of first appearance, dev first."""
    names: list[str] = []
    for r in runs:
        for s, _ in r.rates:
            if s not in names:
                names.append(s)
    return sorted(names, key=lambda s: (s != "dev", names.index(s)))


def format_table(runs: Sequence[Run]) -> str:
    """The Markdown comparison table (with a note on the intervals and the timing flags)."""
    sets = set_names(runs)
    metrics = [(s, m) for s in sets for m in ("per", "wer") if any((s, m) in r.rates for r in runs)]
    head = ["run", "recipe", "cell", "params", "s/epoch", "x first", "best epoch",
            *[f"{s} {m}" for s, m in metrics], "timing notes"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    first = runs[0].seconds_per_epoch() if runs else None
    for r in runs:
        spe = r.seconds_per_epoch()
        flags = r.timing_flags()
        if r.history and r.timing_key() != runs[0].timing_key():
            flags.append("other device/threads than the first row")
        params = r.results.get("params")
        cells = [r.name, r.results.get("recipe") or "-", r.cell(),
                 f"{params:,}" if isinstance(params, int) else "-",
                 f"{spe[0]:.1f} +- {spe[1]:.1f}" if spe else "-",
                 f"{spe[0] / first[0]:.2f}" if spe and first else "-",
                 str(r.best_epoch() or "-"),
                 *[str(r.rates.get(k, Rate(None))) for k in metrics],
                 "; ".join(flags) or "-"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Error rates in %, with 95 % bootstrap intervals over utterances ({BOOTSTRAP_DRAWS} draws): "
                 "runs whose intervals overlap are not told apart by that set. s/epoch: mean +- standard "
                 "deviation of the training passes.")
    return "\n".join(lines)


def plot_label(run: Run) -> str:
    """A run's name in the plot: its folder name, with its recipe when the name does not say
    it (a sweep's job folders are numbers)."""
    recipe = run.results.get("recipe")
    return run.name if not recipe or recipe in run.name else f"{run.name} {recipe}"


def plot_runs(runs: Sequence[Run], out: str | os.PathLike) -> Path:
    """One PNG: seconds per epoch, error per test set (with intervals), dev error per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    sets = set_names(runs)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    names = [plot_label(r) for r in runs]
    colours = [f"C{i % 10}" for i in range(len(runs))]  # one colour per run in every panel
    timed = [i for i, r in enumerate(runs) if r.seconds_per_epoch()]  # GMM rows have no epochs
    spe = [runs[i].seconds_per_epoch() for i in timed]
    axes[0].bar(range(len(timed)), [m for m, _ in spe], yerr=[s for _, s in spe], color=[colours[i] for i in timed])
    axes[0].set_xticks(range(len(timed)), [names[i] for i in timed], rotation=30, ha="right", fontsize=8)
    axes[0].set_ylabel("seconds per epoch")
    width = 0.8 / max(1, len(runs))
    # PER when any run has phones; runs over BPE units (words only) are then compared by WER.
    metric = "per" if any(m == "per" and v.value is not None for r in runs for (_, m), v in r.rates.items()) else "wer"
    for i, r in enumerate(runs):
        xs, ys, lo, hi = [], [], [], []
        for j, s in enumerate(sets):
            rate = r.rates.get((s, metric))
            if rate is None or rate.value is None:
                continue
            xs.append(j + i * width)
            ys.append(rate.value)
            lo.append(rate.value - (rate.low if rate.low is not None else rate.value))
            hi.append((rate.high if rate.high is not None else rate.value) - rate.value)
        if xs:
            axes[1].bar(xs, ys, width, yerr=[lo, hi], label=names[i], capsize=2, color=colours[i])
    axes[1].set_xticks([j + 0.4 - width / 2 for j in range(len(sets))], sets, rotation=30, ha="right", fontsize=8)
    axes[1].set_ylabel(f"{metric.upper()} % (95 % interval)")
    axes[1].legend(fontsize=7)
    for i, r in enumerate(runs):
        rows = [h for h in r.history if h.get("dev_err") is not None]
        if rows:
            axes[2].plot([h["epoch"] for h in rows], [h["dev_err"] for h in rows], marker="o", ms=3, label=names[i],
                         color=colours[i])
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("dev error % (frame error, greedy PER or greedy WER)")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
