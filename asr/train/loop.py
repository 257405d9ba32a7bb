"""The training loop, in one explicit piece: ``compute_loss``, ``train_one_epoch``, ``validate``,
``save_checkpoint`` (:mod:`asr.train.checkpoint`) and ``run_training``; no hooks.

Files written under ``exp_dir`` (rank 0 only; ``INTERFACES.md``)::

    history.jsonl              one line per epoch (train_seconds: the training pass alone)
    checkpoints/epoch_NNN.pt   every epoch, resumable (optimiser, schedule, sampler, RNG)
    best.pt                    the epoch with the lowest dev error
    tb/                        TensorBoard scalars

Run again on the same ``exp_dir`` it resumes from the last complete epoch and ends with the
weights an uninterrupted run would have (CPU, same seed, same number of processes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from asr.errors import AsrError
from asr.features.loader import BucketBatchSampler, FeatureDataset, collate
from asr.nn.acoustic import AcousticModel
from asr.nn.spec import ModelSpec, count_parameters
from asr.train import checkpoint as ckpt
from asr.train.distributed import DistEnv, ShardedBatchSampler, all_sum, barrier, init_distributed
from asr.train.optim import NewBob, OptimConfig, build_optimizer
from asr.train.tasks import CtcTask, HybridTask, StepResult, error_rate

log = logging.getLogger(__name__)

AMP_MODES = ("bf16", "fp16", "none")


@dataclass
class TrainerConfig:
    """How the loop runs (the ``train`` block of ``train.yaml``).

    Attributes:
        device: ``auto`` (CUDA when there is one), ``cpu`` or ``cuda``.
        amp: GPU mixed precision: ``bf16``, ``fp16`` (with a gradient scaler) or ``none``.
        resume: continue from the last checkpoint of ``exp_dir``; False: move the old run
            aside (``exp_dir/previous/<time>/``) and start over.
        max_bad_steps: stop after this many non-finite losses or gradients in a row.
        progress: progress bars (rank 0).
        seed: model initialisation, dropout and batch order.
        loader_workers: DataLoader worker processes (0: read in the training process).
    """

    device: str = "auto"
    amp: str = "bf16"
    resume: bool = True
    max_bad_steps: int = 10
    progress: bool = True
    seed: int = 1234
    loader_workers: int = 0

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise AsrError(f"train.device must be auto, cpu or cuda, got {self.device!r}")
        if self.amp not in AMP_MODES:
            raise AsrError(f"train.amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.max_bad_steps < 1:
            raise AsrError(f"train.max_bad_steps must be >= 1, got {self.max_bad_steps}")


@dataclass
class TrainResult:
    """What a finished run reports: ``epochs`` trained in total, the ``best`` epoch and its
    ``best_dev_err``, ``params``, and the path of ``best.pt``."""

    epochs: int
    best: int
    best_dev_err: float
    params: int
    best_path: Path


Task = HybridTask | CtcTask


def pick_device(cfg: TrainerConfig, env: DistEnv) -> torch.device:
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise AsrError("train.device=cuda, but torch sees no CUDA device (use train.device=cpu)")
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", env.local_rank)
    return torch.device("cpu")


def compute_loss(model: torch.nn.Module, task: Task, batch, amp: contextlib.AbstractContextManager,
                 score: bool = False) -> StepResult:
    """Forward one batch and evaluate the task's loss (padded frames excluded)."""
    with amp:
        outputs = model(batch.feats, batch.lengths)
    return task.compute(outputs, batch, score=score)


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


class _Trainer:
    """State of one run; the methods are the loop's steps."""

    def __init__(self, spec: ModelSpec, input_size: int, task: Task, optim: OptimConfig,
                 train_set: FeatureDataset, dev_set: FeatureDataset, exp_dir: Path, meta: Mapping[str, Any],
                 cfg: TrainerConfig) -> None:
        self.cfg, self.optim_cfg, self.task = cfg, optim, task
        self.exp_dir = Path(exp_dir)
        self.env = init_distributed("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")
        self.device = pick_device(cfg, self.env)
        self.meta = dict(meta)
        torch.manual_seed(cfg.seed)
        self.model = AcousticModel(spec, input_size, task.heads()).to(self.device)
        self.params = count_parameters(self.model)
        self.optimizer = build_optimizer(optim, self.model.parameters())
        self.newbob = NewBob.from_config(optim, self.optimizer)
        cuda = self.device.type == "cuda"
        dtype = torch.bfloat16 if cfg.amp == "bf16" else torch.float16
        self.amp = partial(torch.autocast, device_type="cuda", dtype=dtype, enabled=cuda and cfg.amp != "none")
        self.scaler = torch.amp.GradScaler("cuda") if cuda and cfg.amp == "fp16" else None
        self.net: torch.nn.Module = self.model
        if self.env.active:
            self.net = DistributedDataParallel(self.model, device_ids=[self.device.index] if cuda else None)
        frame_targets = isinstance(task, HybridTask)
        self.train_set, self.dev_set = train_set, dev_set
        self.sampler = ShardedBatchSampler(
            BucketBatchSampler(train_set.num_frames, optim.max_frames, optim.batch_size, shuffle=True,
                               seed=cfg.seed), self.env.rank, self.env.world)
        dev_sampler = ShardedBatchSampler(
            BucketBatchSampler(dev_set.num_frames, optim.max_frames, optim.batch_size, shuffle=False),
            self.env.rank, self.env.world, pad=False)
        make = partial(DataLoader, collate_fn=partial(collate, frame_targets=frame_targets),
                       num_workers=cfg.loader_workers, pin_memory=cuda)
        self.train_loader = make(train_set, batch_sampler=self.sampler)
        self.dev_loader = make(dev_set, batch_sampler=dev_sampler)
        self.start_epoch = 0
        self.best = (0, math.inf)
        self.tb = None

    # ------------------------------------------------------------------ checkpoints

    def state(self, epoch: int, dev_err: float) -> dict[str, Any]:
        return {
            **self.meta, "format": ckpt.CHECKPOINT_FORMAT, **self.model.describe(),
            "model": self.model.state_dict(), "task": self.task.describe(), "epoch": epoch,
            "dev_err": dev_err, "params": self.params, "versions": dict(ckpt.versions()),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.newbob.state_dict(),
            "sampler": {"seed": self.cfg.seed, "epoch": epoch}, "rng": ckpt.rng_state(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "world_size": self.env.world, "best": {"epoch": self.best[0], "dev_err": self.best[1]},
        }

    def save_checkpoint(self, epoch: int, dev_err: float) -> None:
        """``checkpoints/epoch_NNN.pt`` (and ``best.pt`` when ``epoch`` is the best), rank 0."""
        if not self.env.is_main:
            return
        state = self.state(epoch, dev_err)
        # The epoch checkpoint last: it is what a resume starts after, so best.pt (and the
        # history line, written before this) must already be there when it appears. (Killed
        # between the two, a resume from epoch N left best.pt at an older epoch and epoch N's
        # history line missing.)
        if self.best[0] == epoch:
            ckpt.save_checkpoint(self.exp_dir / "best.pt", state)
        ckpt.save_checkpoint(ckpt.epoch_path(self.exp_dir, epoch), state)

    def prepare_run_dir(self) -> None:
        """Resume from the last checkpoint, or move an old run aside when not resuming."""
        found = ckpt.list_epoch_checkpoints(self.exp_dir)
        if found and not self.cfg.resume:
            if self.env.is_main:
                self._move_aside()
            barrier(self.env)
            found = {}
        if found:
            self._resume(*list(found.items())[-1])
        elif self.env.is_main:
            (self.exp_dir / "history.jsonl").unlink(missing_ok=True)

    def _move_aside(self) -> None:
        dest = self.exp_dir / "previous" / time.strftime("%Y%m%d-%H%M%S")
        dest.mkdir(parents=True, exist_ok=False)
        for name in ("checkpoints", "best.pt", "history.jsonl", "tb"):
            if (self.exp_dir / name).exists():
                shutil.move(str(self.exp_dir / name), str(dest / name))
        log.info("resume=false: the previous run was moved to %s", dest)

    def _resume(self, epoch: int, path: Path) -> None:
        state = ckpt.load_checkpoint(path, map_location=self.device)
        for key, mine in (("model_spec", self.model.spec.to_dict()), ("heads", self.model.head_sizes),
                          ("input_size", self.model.input_size), ("task", self.task.describe())):
            if state.get(key) != mine:
                raise AsrError(f"{path}: the checkpoint's {key} differs from this run's; to start over "
                               "with the new settings set resume=false (the old run is moved aside, not "
                               "deleted) or choose another exp_dir")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.newbob.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        ckpt.set_rng_state(state["rng"])
        self.start_epoch = epoch
        self.best = (int(state["best"]["epoch"]), float(state["best"]["dev_err"]))
        if state.get("world_size", 1) != self.env.world:
            log.warning("%s was written by %d process(es), this run has %d: it continues, but the batches "
                        "each process sees differ, so the weights will not match an uninterrupted run",
                        path, state.get("world_size", 1), self.env.world)
        if self.env.is_main:
            hist = self.exp_dir / "history.jsonl"
            if hist.is_file():  # lines of epochs after the checkpoint belong to the interrupted run
                kept = [line for line in hist.read_text().splitlines()
                        if line.strip() and json.loads(line)["epoch"] <= epoch]
                hist.write_text("".join(line + "\n" for line in kept))
        log.info("resuming from %s (epoch %d done; best so far: epoch %d, dev error %.2f %%)",
                 path, epoch, *self.best)

    # ------------------------------------------------------------------ passes

    def train_one_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training set; returns the summed statistics (all ranks)."""
        self.net.train()
        self.sampler.set_epoch(epoch)
        totals: dict[str, float] = defaultdict(float)
        in_row = 0
        params = [p for p in self.model.parameters() if p.requires_grad]
        buffers = list(self.model.buffers())
        max_norm = self.optim_cfg.max_grad_norm or math.inf
        bar = self._bar(self.train_loader, f"epoch {epoch} train")
        t0 = time.perf_counter()
        for i, batch in enumerate(bar, 1):
            batch = batch.to(self.device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            # A skipped step must leave no trace: the forward pass also moves batch-norm
            # running statistics, which a non-finite batch would poison.
            saved = [b.detach().clone() for b in buffers]
            try:
                res = compute_loss(self.net, self.task, batch, self.amp())
                (self.scaler.scale(res.loss) if self.scaler is not None else res.loss).backward()
            except torch.OutOfMemoryError:
                raise AsrError(f"epoch {epoch}, batch {i}: out of GPU memory with {len(batch.utts)} utterances "
                               f"x {int(batch.lengths.max())} frames; lower optim.batch_size (now "
                               f"{self.optim_cfg.batch_size}) or set optim.max_frames") from None
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
            finite = torch.isfinite(res.loss.detach())
            if self.scaler is None:  # with fp16 the scaler itself skips steps whose gradients overflow
                finite &= torch.isfinite(norm)
            if self.env.active:  # every rank takes the same decision
                flag = finite.to(torch.float32)
                torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
                finite = flag > 0
            if not bool(finite):
                in_row += 1
                totals["bad_steps"] += 1
                self.optimizer.zero_grad(set_to_none=True)
                with torch.no_grad():
                    for b, old in zip(buffers, saved):
                        b.copy_(old)
                log.warning("epoch %d, batch %d: non-finite loss or gradient (utterances %s ...); step skipped",
                            epoch, i, ", ".join(batch.utts[:3]))
                if in_row >= self.cfg.max_bad_steps:
                    raise AsrError(f"epoch {epoch}, batch {i}: {in_row} non-finite losses or gradients in a row "
                                   f"(train.max_bad_steps={self.cfg.max_bad_steps}); stopping. Lower optim.lr or "
                                   "check the features of the utterances named above")
                continue
            in_row = 0
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            for k, v in res.stats.items():
                totals[k] += v
            totals["batches"] += 1
            if hasattr(bar, "set_postfix"):
                seconds = time.perf_counter() - t0
                bar.set_postfix(loss=f"{totals['loss'] / max(totals['frames'], 1):.3f}",
                                fps=f"{totals['frames'] / max(seconds, 1e-9):.0f}", refresh=False)
        totals.setdefault("bad_steps", 0.0)
        return all_sum(dict(totals), self.env, self.device)

    @torch.no_grad()
    def validate(self, epoch: int) -> dict[str, float]:
        """Loss and error on the dev set (rank-sharded, summed over ranks)."""
        self.model.eval()
        totals: dict[str, float] = defaultdict(float)
        for batch in self._bar(self.dev_loader, f"epoch {epoch} dev"):
            batch = batch.to(self.device, non_blocking=True)
            res = compute_loss(self.model, self.task, batch, self.amp(), score=True)
            parts = [res] if math.isfinite(res.stats["loss"]) else self._alone(batch, epoch)
            for part in parts:
                for k, v in part.stats.items():
                    totals[k] += v
        totals.setdefault("nonfinite", 0.0)
        return all_sum(dict(totals), self.env, self.device)

    def _alone(self, batch, epoch: int) -> list[StepResult]:
        """A dev batch with a non-finite loss, utterance by utterance: an utterance whose
        output is not finite is named, adds no loss and counts as all errors."""
        out = []
        for b in range(len(batch.utts)):
            one = batch.select(b)
            res = compute_loss(self.model, self.task, one, self.amp(), score=True)
            if not math.isfinite(res.stats["loss"]):
                log.warning("epoch %d: dev utterance '%s' gives a non-finite loss; counted as all errors",
                            epoch, one.utts[0])
                res.stats.update(loss=0.0, errors=res.stats["err_total"], nonfinite=1.0)
                res.stats.pop("loss_mono", None)
            out.append(res)
        return out

    def _bar(self, loader: Iterable, desc: str) -> Iterable:
        if not (self.cfg.progress and self.env.is_main):
            return loader
        return tqdm(loader, desc=desc, unit="batch", leave=False, dynamic_ncols=True,
                    mininterval=1.0 if os.isatty(2) else 30.0)

    # ------------------------------------------------------------------ the run

    def history_line(self, epoch: int, lr: float, seconds: float, train: Mapping[str, float],
                     dev: Mapping[str, float]) -> dict[str, Any]:
        frames = max(train.get("frames", 0.0), 1.0)
        line: dict[str, Any] = {
            "epoch": epoch, "train_seconds": round(seconds, 3), "train_frames": int(train.get("frames", 0)),
            "train_loss": train.get("loss", math.nan) / frames,
            "dev_loss": dev.get("loss", math.nan) / max(dev.get("frames", 0.0), 1.0),
            "dev_err": error_rate(dev), "lr": lr,
        }
        if "loss_mono" in train:
            line["train_loss_mono"] = train["loss_mono"] / frames
            line["dev_loss_mono"] = dev.get("loss_mono", math.nan) / max(dev.get("frames", 0.0), 1.0)
        if "impossible" in train:
            line["impossible_utts"] = int(train["impossible"])
        line["dev_nonfinite_utts"] = int(dev.get("nonfinite", 0))
        line.update({
            "train_batches": int(train.get("batches", 0)), "bad_steps": int(train.get("bad_steps", 0)),
            "skipped_utts": len(self.train_set.skipped), "dev_skipped_utts": len(self.dev_set.skipped),
            "frames_per_second": round(train.get("frames", 0.0) / max(seconds, 1e-9), 1),
            "device": str(self.device), "threads": torch.get_num_threads(), "world_size": self.env.world,
            "load_average": _load_average(),
        })
        return line

    def run(self) -> TrainResult:
        self.prepare_run_dir()
        epochs = self.optim_cfg.epochs
        log.info("model: %s, %d parameters, heads %s; %d training utterances (%d skipped), %d dev (%d skipped); "
                 "%d processes, device %s, batch %d utterances per process%s",
                 self.model.spec.cell, self.params, self.model.head_sizes, len(self.train_set),
                 len(self.train_set.skipped), len(self.dev_set), len(self.dev_set.skipped), self.env.world,
                 self.device, self.optim_cfg.batch_size,
                 f" (max {self.optim_cfg.max_frames} frames)" if self.optim_cfg.max_frames else "")
        if self.start_epoch >= epochs:
            log.info("training already complete: %d of %d epochs in %s", self.start_epoch, epochs, self.exp_dir)
        if self.env.is_main and self.start_epoch < epochs:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.exp_dir / "tb"), purge_step=self.start_epoch + 1)
        try:
            for epoch in range(self.start_epoch + 1, epochs + 1):
                self._epoch(epoch)
        finally:
            if self.tb is not None:
                self.tb.close()
        barrier(self.env)
        return TrainResult(max(self.start_epoch, epochs), self.best[0], self.best[1], self.params,
                           self.exp_dir / "best.pt")

    def _epoch(self, epoch: int) -> None:
        lr = self.optimizer.param_groups[0]["lr"]
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t0 = time.perf_counter()
        train = self.train_one_epoch(epoch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        dev = self.validate(epoch)
        line = self.history_line(epoch, lr, seconds, train, dev)
        if line["dev_err"] < self.best[1]:
            self.best = (epoch, line["dev_err"])
        self.newbob.step(line["dev_err"])
        if self.env.is_main:  # before the checkpoint: a resume drops lines of epochs after its checkpoint
            with open(self.exp_dir / "history.jsonl", "a") as f:
                f.write(json.dumps(line) + "\n")
        self.save_checkpoint(epoch, line["dev_err"])
        if self.env.is_main:
            for key in ("train_loss", "dev_loss", "dev_err", "lr", "train_seconds", "train_loss_mono",
                        "dev_loss_mono"):
                if key in line:
                    self.tb.add_scalar(key, line[key], epoch)
        extra = f", monophone head {line['dev_loss_mono']:.3f}" if "dev_loss_mono" in line else ""
        log.info("epoch %d: train loss %.4f (%d frames, %.1f s, %.0f frames/s), dev loss %.4f%s, dev %s %.2f %%, "
                 "lr %g; %d bad steps, %d utterances skipped", epoch, line["train_loss"], line["train_frames"],
                 seconds, line["frames_per_second"], line["dev_loss"], extra,
                 _dev_metric(self.task), line["dev_err"], lr,
                 line["bad_steps"], line["skipped_utts"])


def _dev_metric(task: HybridTask | CtcTask) -> str:
    if isinstance(task, HybridTask):
        return "frame error"
    return "greedy WER" if task.units == "bpe" else "greedy PER"


def run_training(spec: ModelSpec, input_size: int, task: Task, optim: OptimConfig, train_set: FeatureDataset,
                 dev_set: FeatureDataset, exp_dir: str | os.PathLike, meta: Mapping[str, Any],
                 cfg: TrainerConfig | None = None) -> TrainResult:
    """Train an acoustic model, or resume or finish a run in ``exp_dir``.

    Args:
        spec, input_size: the model (:class:`asr.nn.acoustic.AcousticModel`; heads from the task).
        task: :class:`HybridTask` (frame targets in the datasets) or :class:`CtcTask` (tokens).
        optim: optimiser, epochs, batch sizes and the newbob schedule.
        train_set, dev_set: the data; their skipped utterances are counted in the history.
        exp_dir: where history, checkpoints, ``best.pt`` and ``tb/`` go.
        meta: plain-typed entries copied into every checkpoint (``features``, ``tokens`` or
            ``lang``, ``priors``, ``recipe``, ...).
        cfg: device, precision, resume and fault options.

    Raises:
        AsrError: a checkpoint of other settings in ``exp_dir`` (with resume), too many
            non-finite steps in a row, out of GPU memory.
    """
    Path(exp_dir).mkdir(parents=True, exist_ok=True)
    return _Trainer(spec, input_size, task, optim, train_set, dev_set, Path(exp_dir), meta,
                    cfg or TrainerConfig()).run()
