"""Several training processes (``torchrun``): process group, rank-sharded batches, sums across ranks.

``torchrun --nproc-per-node N -m asr.cli.train ...`` (add ``--nnodes``/``--rdzv-endpoint`` to
span machines) sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them training runs
in one process. gloo serves CPUs, NCCL GPUs.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

log = logging.getLogger(__name__)


@dataclass
class DistEnv:
    """This process's place: ``rank`` of ``world`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


# Collectives wait this long: rank 0 alone runs the stages before training (hours on a big corpus).
TIMEOUT = datetime.timedelta(hours=24)


def init_distributed(device_type: str) -> DistEnv:
    """Join the process group that ``torchrun`` describes in the environment (if any; once)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    env = DistEnv(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(env.local_rank)
        dist.init_process_group(backend=backend, timeout=TIMEOUT)
    log.info("rank %d of %d (local rank %d), backend %s", env.rank, env.world, env.local_rank, dist.get_backend())
    return env


@contextlib.contextmanager
def rank_zero_first(device_type: str) -> Iterator[DistEnv]:
    """Rank 0 runs the block first, the other ranks after it (then typically reusing what it
    wrote: the earlier stages of a recipe must not be built by several processes at once)."""
    env = init_distributed(device_type)
    if not env.is_main:
        barrier(env)
    yield env
    if env.is_main:
        barrier(env)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class ShardedBatchSampler(Sampler):
    """Rank ``rank``'s share of a batch sampler's batches, the same number on every rank.

    The epoch's batches (the same list on every rank: the base sampler depends only on
    its seed and the epoch) are padded to a multiple of ``world`` by repeating the first
    ones, then dealt round-robin: rank r gets batches r, r + world, ... Unequal counts
    would hang DistributedDataParallel at the last step (``pad=False``, for validation,
    deals every batch exactly once instead). Batch sizes are per rank: the
    global batch is ``world`` times the configured one.
    """

    def __init__(self, base, rank: int, world: int, pad: bool = True) -> None:
        self.base, self.rank, self.world, self.pad = base, rank, world, pad

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.base.epoch

    def batches(self) -> list[list[int]]:
        batches = self.base.batches()
        if self.world == 1:
            return batches
        if self.pad:  # training: equal counts; validation (no collectives) keeps each batch once
            batches = batches + batches[: (-len(batches)) % self.world]
        return batches[self.rank::self.world]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


def all_sum(stats: dict[str, float], env: DistEnv, device: torch.device) -> dict[str, float]:
    """Add a dict of floats over ranks (same keys on every rank); identity in one process."""
    if not env.active:
        return dict(stats)
    keys = sorted(stats)
    t = torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return dict(zip(keys, t.tolist()))


def barrier(env: DistEnv) -> None:
    if env.active:
        dist.barrier()
