"""Typed optimiser config (the ``optim/`` config group), optimiser builder, newbob schedule."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Iterable

import torch

from asr.errors import AsrError

OPTIMIZERS = ("rmsprop", "sgd", "adam")
COMMON_KEYS = ("name", "lr", "epochs", "batch_size", "max_frames", "max_grad_norm", "newbob_factor",
               "newbob_threshold", "weight_decay")
# The per-optimiser keys each optimiser takes; the others must not appear in its config.
OPTIMIZER_KEYS = {
    "rmsprop": ("alpha", "eps", "momentum"),
    "sgd": ("momentum",),
    "adam": ("betas", "eps"),
}
PER_OPTIMIZER_KEYS = ("alpha", "eps", "momentum", "betas")


def _number(name: str, value: Any, low: float, high: float | None = None, *,
            low_open: bool = False, high_open: bool = True) -> float:
    """``value`` as a float, checked to lie in the interval; AsrError naming ``optim.name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise AsrError(f"optim.{name} must be a finite number, got {value!r}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        interval = (("(" if low_open else "[") + f"{low}, "
                    + ("inf)" if high is None else f"{high}" + (")" if high_open else "]")))
        raise AsrError(f"optim.{name} must be in {interval}, got {value}")
    return value


def _integer(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise AsrError(f"optim.{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass
class OptimConfig:
    """How to train: one ``optim/*.yaml`` group. Defaults: pytorch-kaldi's TIMIT recipe.

    Attributes:
        name: ``rmsprop``, ``sgd`` or ``adam``.
        lr: initial learning rate (> 0).
        epochs: passes over the training set.
        batch_size: utterances per minibatch (per process under torchrun).
        max_frames: also bound the padded frames (utterances x longest) of a minibatch;
            None: utterances only. Batches group utterances of similar length.
        max_grad_norm: clip the global gradient norm to this (> 0); None: no clipping.
        newbob_factor: newbob multiplies the lr by this, in (0, 1].
        newbob_threshold: ... when the dev error's relative improvement is below this.
        weight_decay: L2 penalty (the optimiser's ``weight_decay``).
        alpha: RMSprop's smoothing constant (rmsprop only).
        eps: denominator term (rmsprop, adam).
        momentum: momentum (sgd, rmsprop).
        betas: Adam's two averaging coefficients (adam only).

    A per-optimiser field that does not apply to ``name`` must keep its default (so
    ``to_dict`` can leave it out); construction checks every value and raises AsrError.
    """

    name: str = "rmsprop"
    lr: float = 0.0004
    epochs: int = 24
    batch_size: int = 8
    max_frames: int | None = None
    max_grad_norm: float | None = 5.0
    newbob_factor: float = 0.5
    newbob_threshold: float = 0.001
    weight_decay: float = 0.0
    alpha: float = 0.95
    eps: float = 1e-8
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise AsrError(f"unknown optim.name {self.name!r}; choose one of {OPTIMIZERS}")
        self.lr = _number("lr", self.lr, 0.0, low_open=True, high_open=False)
        self.epochs = _integer("epochs", self.epochs, 1)
        self.batch_size = _integer("batch_size", self.batch_size, 1)
        if self.max_frames is not None:
            self.max_frames = _integer("max_frames", self.max_frames, 1)
        if self.max_grad_norm is not None:
            self.max_grad_norm = _number("max_grad_norm", self.max_grad_norm, 0.0, low_open=True)
        self.newbob_factor = _number("newbob_factor", self.newbob_factor, 0.0, 1.0,
                                     low_open=True, high_open=False)
        self.newbob_threshold = _number("newbob_threshold", self.newbob_threshold, 0.0)
        self.weight_decay = _number("weight_decay", self.weight_decay, 0.0)
        self.alpha = _number("alpha", self.alpha, 0.0, 1.0)
        self.eps = _number("eps", self.eps, 0.0, low_open=True)
        self.momentum = _number("momentum", self.momentum, 0.0, 1.0)
        betas = self.betas
        if isinstance(betas, (str, bytes)) or not isinstance(betas, (list, tuple)) or len(betas) != 2:
            raise AsrError(f"optim.betas must be a list of two numbers, got {betas!r}")
        self.betas = (_number("betas[0]", betas[0], 0.0, 1.0),
                      _number("betas[1]", betas[1], 0.0, 1.0))
        defaults = OptimConfig.__dataclass_fields__
        dead = [key for key in PER_OPTIMIZER_KEYS if key not in OPTIMIZER_KEYS[self.name]
                and getattr(self, key) != defaults[key].default]
        if dead:
            raise AsrError(f"optim key(s) {dead} do not apply to {self.name!r} "
                           f"(it takes {list(OPTIMIZER_KEYS[self.name])})")

    @classmethod
    def from_dict(cls, d: dict) -> OptimConfig:
        """Build from a resolved ``optim/`` group (a plain dict; ``betas`` may be a list).

        Missing keys take the defaults. A per-optimiser key whose value is None counts
        as absent (a schema may declare them all optional).

        Raises:
            AsrError: unknown keys (named), a per-optimiser key the chosen optimiser does
                not take (e.g. ``momentum`` for adam), or a bad value.
        """
        if not isinstance(d, dict):
            raise AsrError(f"optim config must be a mapping, got {type(d).__name__}")
        unknown = sorted(set(d) - set(COMMON_KEYS) - set(PER_OPTIMIZER_KEYS), key=str)
        if unknown:
            raise AsrError(f"unknown optim key(s) {unknown}; known: "
                           f"{list(COMMON_KEYS + PER_OPTIMIZER_KEYS)}")
        name = d.get("name", cls.name)
        if name not in OPTIMIZERS:
            raise AsrError(f"unknown optim.name {name!r}; choose one of {OPTIMIZERS}")
        given = {key: value for key, value in d.items()
                 if key in COMMON_KEYS or value is not None}
        dead = [key for key in PER_OPTIMIZER_KEYS
                if key in given and key not in OPTIMIZER_KEYS[name]]
        if dead:
            raise AsrError(f"optim key(s) {dead} do not apply to {name!r} "
                           f"(it takes {list(OPTIMIZER_KEYS[name])}); remove them")
        return cls(**given)

    def to_dict(self) -> dict:
        """A plain dict (the YAML's shape, ``betas`` a list) with only the keys that apply
        to ``name``; ``from_dict(to_dict()) == self``."""
        out = {key: getattr(self, key) for key in COMMON_KEYS}
        for key in OPTIMIZER_KEYS[self.name]:
            value = getattr(self, key)
            out[key] = list(value) if key == "betas" else value
        return out


def build_optimizer(cfg: OptimConfig,
                    params: Iterable[torch.Tensor] | Iterable[dict]) -> torch.optim.Optimizer:
    """The torch optimiser ``cfg`` names, over ``params`` (tensors or param-group dicts).

    rmsprop: ``RMSprop(lr, alpha, eps, weight_decay, momentum)``; sgd:
    ``SGD(lr, momentum, weight_decay)``; adam: ``Adam(lr, betas, eps, weight_decay)``.
    """
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps,
                                   weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                weight_decay=cfg.weight_decay)
    raise AsrError(f"unknown optim.name {cfg.name!r}; choose one of {OPTIMIZERS}")


class NewBob:
    """pytorch-kaldi's newbob learning-rate schedule, stepped once per epoch.

    After each epoch ``step(dev_err)`` compares the dev error with the previous
    epoch's: when the relative improvement ``(prev - cur) / prev`` is below
    ``threshold`` (a worse error counts as negative improvement) the learning rate is
    multiplied by ``factor``; otherwise it is kept. The first step only records the
    error. When ``prev`` is 0 the improvement counts as 0 (or -inf if ``cur > 0``).
    The learning rate is written into every param group of the optimiser.

    Args:
        optimizer: the optimiser whose param groups get the learning rate.
        factor: multiplier on a halving, in (0, 1].
        threshold: minimum relative improvement that keeps the learning rate, >= 0.
        lr: starting learning rate; None: the optimiser's first param group's.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, factor: float = 0.5,
                 threshold: float = 0.001, lr: float | None = None) -> None:
        self.optimizer = optimizer
        self.factor = _number("newbob_factor", factor, 0.0, 1.0, low_open=True, high_open=False)
        self.threshold = _number("newbob_threshold", threshold, 0.0)
        self.lr = float(optimizer.param_groups[0]["lr"] if lr is None else lr)
        self.prev_err: float | None = None
        self.num_steps = 0
        self._apply()

    @classmethod
    def from_config(cls, cfg: OptimConfig, optimizer: torch.optim.Optimizer) -> NewBob:
        """The schedule ``cfg`` describes, starting from ``cfg.lr``."""
        return cls(optimizer, cfg.newbob_factor, cfg.newbob_threshold, cfg.lr)

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr

    def improvement(self, dev_err: float) -> float | None:
        """Relative improvement of ``dev_err`` over the previous epoch's (None at first)."""
        if self.prev_err is None:
            return None
        if self.prev_err == 0.0:
            return 0.0 if dev_err == 0.0 else -math.inf
        return (self.prev_err - dev_err) / self.prev_err

    def step(self, dev_err: float) -> float:
        """Record one epoch's dev error; return (and apply) the next epoch's learning rate."""
        if (isinstance(dev_err, bool) or not isinstance(dev_err, numbers.Real)
                or not math.isfinite(dev_err) or dev_err < 0):
            raise AsrError(f"newbob needs a finite, non-negative dev error, got {dev_err!r}")
        dev_err = float(dev_err)
        improvement = self.improvement(dev_err)
        if improvement is not None and improvement < self.threshold:
            self.lr *= self.factor
        self.prev_err = dev_err
        self.num_steps += 1
        self._apply()
        return self.lr

    def state_dict(self) -> dict:
        """Plain dict for checkpoints: ``lr``, ``prev_err`` and ``num_steps`` (``factor``
        and ``threshold`` are config, restored from the ``OptimConfig``)."""
        return {"lr": self.lr, "prev_err": self.prev_err, "num_steps": self.num_steps}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``'s values and apply the learning rate to the optimiser."""
        keys = {"lr", "prev_err", "num_steps"}
        if not isinstance(state, dict) or set(state) != keys:
            raise AsrError(f"newbob state must have exactly the keys {sorted(keys)}, got "
                           f"{sorted(state) if isinstance(state, dict) else state!r}")
        self.lr = float(state["lr"])
        self.prev_err = None if state["prev_err"] is None else float(state["prev_err"])
        self.num_steps = int(state["num_steps"])
        self._apply()
