"""``build_rnn``: one entry point for every recurrent cell type."""

from __future__ import annotations

import inspect

import torch
from torch import nn

from asr.errors import AsrError
from asr.nn.ligru_layer import LiGRULayer
from asr.nn.mgu_layer import MGULayer
from asr.nn.rnn_stack import RecurrentStack
from asr.nn.torch_rnn_stack import TORCH_CELLS, TorchRecurrentStack

CELLS = ("rnn", "lstm", "gru", "ligru", "sligru", "mgu")


class TimeMajorAdapter(nn.Module):
    """Lets a batch-first module take and return time-major [T, B, F] tensors."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    @property
    def output_size(self) -> int:
        """Features per output frame."""
        return self.module.output_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """[T, B, F] -> [T, B, output_size]."""
        return self.module(x.transpose(0, 1), lengths).transpose(0, 1)


def check_options(cell: str, factory, options: dict) -> None:
    """Raise AsrError naming any option ``factory`` does not accept."""
    accepted = set(inspect.signature(factory).parameters)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise AsrError(f"unknown option(s) {unknown} for cell {cell!r}; "
                       f"accepted: {sorted(accepted - {'input_size', 'hidden_size', 'bidirectional', 'cell'})}")


def build_rnn(cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
              bidirectional: bool = False, dropout: float = 0.0, batch_first: bool = True,
              **cell_options) -> nn.Module:
    """Build a stack of recurrent layers of one cell type.

    The module's ``forward(x, lengths=None)`` takes ``x`` [B, T, F] (or [T, B, F]
    when ``batch_first=False``) and ``lengths`` [B] (valid frames per sequence,
    padding after them) and returns [B, T, hidden_size * dirs] (resp. time-major),
    zero at padded frames; padded frames never influence valid frames or
    batch-norm statistics. It has an ``output_size`` attribute.

    Args:
        cell: "rnn", "lstm", "gru", "ligru", "sligru" or "mgu".
        input_size: F, features per input frame.
        hidden_size: H, units per direction.
        num_layers: stacked layers.
        bidirectional: two directions per layer with separate weights.
        dropout: dropout between layers (training only).
        batch_first: inputs and outputs are [B, T, F] (else [T, B, F]).
        **cell_options: ``impl`` ("auto", "fused", "reference") for every cell;
            ``nonlinearity`` ("tanh", "relu") for rnn; ``batch_norm``,
            ``recurrent_dropout`` and ``backend`` ("auto", "cpp", "torch", "triton") for
            ligru/sligru.

    Returns:
        The module.
    """
    if cell not in CELLS:
        raise AsrError(f"unknown recurrent cell {cell!r}; choose one of {CELLS}")
    if num_layers < 1:
        raise AsrError(f"num_layers must be at least 1, got {num_layers}")
    if cell in TORCH_CELLS:
        check_options(cell, TorchRecurrentStack, cell_options)
        module = TorchRecurrentStack(cell, input_size, hidden_size, num_layers, bidirectional,
                                     dropout, **cell_options)
    else:
        factory = MGULayer if cell == "mgu" else LiGRULayer
        if cell == "sligru":
            cell_options = {**cell_options, "layer_norm": True}
        check_options(cell, factory, cell_options)
        layers = []
        for _ in range(num_layers):
            layer = factory(input_size, hidden_size, bidirectional, **cell_options)
            input_size = layer.output_size
            layers.append(layer)
        module = RecurrentStack(layers, dropout)
    return module if batch_first else TimeMajorAdapter(module)
