"""Typed acoustic-model spec (the ``model/`` config group) and the encoder it builds."""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from asr.errors import AsrError
from asr.nn.build import CELLS, build_rnn
from asr.nn.mlp import MLP

MODEL_CELLS = ("mlp",) + CELLS

# build_rnn arguments that a spec sets from its own fields or from the cell name, never
# from ``cell_options`` (``layer_norm`` is what makes ``sligru`` differ from ``ligru``).
RESERVED_OPTIONS = ("cell", "input_size", "hidden_size", "num_layers", "bidirectional",
                    "dropout", "batch_first", "layer_norm")


def _require_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise AsrError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise AsrError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


@dataclass
class ModelSpec:
    """What encoder to build: one ``model/*.yaml`` group.

    Attributes:
        cell: ``mlp`` or one of ``asr.nn.CELLS`` (rnn, lstm, gru, ligru, sligru, mgu).
        num_layers: stacked layers (>= 1).
        hidden_size: units per layer (per direction for recurrent cells).
        bidirectional: two directions per recurrent layer. Ignored for ``mlp`` (it sees
            both sides through its splice window); accepted there so one schema with a
            default can feed every cell, and kept as given so ``to_dict`` round-trips.
        dropout: dropout probability between recurrent layers / after every MLP block.
        splice_left, splice_right: frames of context spliced onto each frame, ``mlp``
            only; nonzero values for a recurrent cell are an error.
        cell_options: every other key, passed to ``build_rnn`` (``impl``,
            ``nonlinearity``, ``batch_norm``, ``recurrent_dropout``, ``backend``).
            Empty for ``mlp``.
        front_mlp: widths of feed-forward layers (linear, batch norm, ReLU, dropout) before
            the recurrent stack; empty: none. Recurrent cells only.
        head_mlp: widths of feed-forward layers after the recurrent stack, before the output
            heads; empty: none (pytorch-kaldi's TIMIT recipes: a linear softmax layer only).

    Construction validates everything, option values included (by building a tiny
    instance of the cell), and raises AsrError naming the offending key.
    """

    cell: str
    num_layers: int
    hidden_size: int
    bidirectional: bool = True
    dropout: float = 0.0
    splice_left: int = 0
    splice_right: int = 0
    cell_options: dict = field(default_factory=dict)
    front_mlp: list[int] = field(default_factory=list)
    head_mlp: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.cell not in MODEL_CELLS:
            raise AsrError(f"unknown model.cell {self.cell!r}; choose one of {MODEL_CELLS}")
        self.num_layers = _require_int("model.num_layers", self.num_layers, 1)
        self.hidden_size = _require_int("model.hidden_size", self.hidden_size, 1)
        if not isinstance(self.bidirectional, bool):
            raise AsrError(f"model.bidirectional must be true or false, got {self.bidirectional!r}")
        if (isinstance(self.dropout, bool) or not isinstance(self.dropout, numbers.Real)
                or not 0.0 <= self.dropout < 1.0):
            raise AsrError(f"model.dropout must be a number in [0, 1), got {self.dropout!r}")
        self.dropout = float(self.dropout)
        self.splice_left = _require_int("model.splice_left", self.splice_left, 0)
        self.splice_right = _require_int("model.splice_right", self.splice_right, 0)
        if not isinstance(self.cell_options, dict):
            raise AsrError(f"model.cell_options must be a mapping, got {self.cell_options!r}")
        self.cell_options = dict(self.cell_options)
        for name in ("front_mlp", "head_mlp"):
            widths = getattr(self, name)
            if isinstance(widths, (str, bytes)) or not isinstance(widths, (list, tuple)):
                raise AsrError(f"model.{name} must be a list of layer widths, got {widths!r}")
            setattr(self, name, [_require_int(f"model.{name}[{i}]", w, 1) for i, w in enumerate(widths)])
        if self.cell == "mlp" and (self.front_mlp or self.head_mlp):
            raise AsrError("model.front_mlp/head_mlp are for recurrent cells; an mlp's layers are "
                           "num_layers x hidden_size")
        if self.cell == "mlp":
            if self.cell_options:
                raise AsrError(f"unknown option(s) {sorted(self.cell_options)} for cell 'mlp'; "
                               "it takes only num_layers, hidden_size, dropout, splice_left, "
                               "splice_right")
            return
        if self.splice_left or self.splice_right:
            raise AsrError(f"model.splice_left/splice_right are for cell 'mlp' only; cell "
                           f"{self.cell!r} sees context through its recurrence (got "
                           f"{self.splice_left}, {self.splice_right})")
        self._check_cell_options()

    def _check_cell_options(self) -> None:
        reserved = sorted(set(self.cell_options) & set(RESERVED_OPTIONS))
        if reserved:
            hint = ("; the cell name chooses it (sligru is the layer-normalised ligru)"
                    if "layer_norm" in reserved else "")
            raise AsrError(f"option(s) {reserved} cannot be cell options of {self.cell!r}{hint}")
        # A tiny build runs build_rnn's own checks: names through check_options, values
        # through the cell's constructor. The RNG is forked so validating never shifts
        # the weights a later seeded build gets.
        try:
            with torch.random.fork_rng(devices=[]):
                build_rnn(self.cell, 1, 1, num_layers=1, bidirectional=self.bidirectional,
                          **self.cell_options)
        except AsrError:
            raise
        except (TypeError, ValueError) as err:
            raise AsrError(f"invalid cell option(s) {self.cell_options} for cell "
                           f"{self.cell!r}: {err}") from err

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        """Build from a resolved ``model/`` group (a plain dict).

        The keys named like fields set them (``cell``, ``num_layers`` and
        ``hidden_size`` are required); every other key goes into ``cell_options``.
        A ``cell_options`` key is also accepted (as ``to_dict`` never writes one, it
        is merged with the loose keys). Cell options whose value is None count as absent,
        so a schema may declare every cell's options as optional.

        Raises:
            AsrError: a missing required key, an unknown cell (listing the cells), an
                option the cell does not take (naming it), or a bad value.
        """
        if not isinstance(d, dict):
            raise AsrError(f"model config must be a mapping, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)} - {"cell_options"}
        missing = [name for name in ("cell", "num_layers", "hidden_size") if name not in d]
        if missing:
            raise AsrError(f"model config lacks required key(s) {missing}")
        known = {key: value for key, value in d.items() if key in names}
        nested = d.get("cell_options") or {}
        if not isinstance(nested, dict):
            raise AsrError(f"model.cell_options must be a mapping, got {nested!r}")
        loose = {key: value for key, value in d.items()
                 if key not in names and key != "cell_options"}
        options = {key: value for key, value in {**nested, **loose}.items() if value is not None}
        return cls(**known, cell_options=options)

    def to_dict(self) -> dict:
        """A plain flat dict (the YAML's shape) with ``from_dict(to_dict()) == self``."""
        out = {"cell": self.cell, "num_layers": self.num_layers, "hidden_size": self.hidden_size,
               "bidirectional": self.bidirectional, "dropout": self.dropout,
               "splice_left": self.splice_left, "splice_right": self.splice_right,
               "front_mlp": list(self.front_mlp), "head_mlp": list(self.head_mlp)}
        out.update(self.cell_options)
        return out


def build_encoder(spec: ModelSpec, input_size: int) -> nn.Module:
    """Build the encoder a spec describes.

    The module has an ``output_size`` attribute and
    ``forward(x [B, T, input_size], lengths [B] | None) -> [B, T, output_size]``,
    zero at padded frames. Recurrent cells come from ``build_rnn`` (batch-first);
    ``output_size`` is ``hidden_size * (2 if bidirectional else 1)``. ``mlp`` is
    ``asr.nn.mlp.MLP`` with ``output_size == hidden_size``.

    Args:
        spec: the model spec.
        input_size: F, features per input frame (before any splicing).

    Returns:
        The module, in training mode, on the CPU.
    """
    input_size = _require_int("input_size", input_size, 1)
    if spec.cell == "mlp":
        return MLP(input_size, spec.hidden_size, spec.num_layers, spec.dropout,
                   spec.splice_left, spec.splice_right)
    return build_rnn(spec.cell, input_size, spec.hidden_size, num_layers=spec.num_layers,
                     bidirectional=spec.bidirectional, dropout=spec.dropout, batch_first=True,
                     **spec.cell_options)


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters (trainable or not; buffers such as batch-norm
    running statistics excluded)."""
    return sum(p.numel() for p in module.parameters())
