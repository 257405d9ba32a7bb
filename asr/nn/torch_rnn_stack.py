"""RNN, GRU and LSTM stacks on PyTorch's fused modules, with a reference loop on the same weights."""

from __future__ import annotations

import functools

import torch
from torch import nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr.errors import AsrError
from asr.nn.cells_reference import gru_step, lstm_step, rnn_step, run_recurrence
from asr.nn.padding import direction_rows, lengths_to_mask, merge_directions, split_directions

TORCH_CELLS = ("rnn", "gru", "lstm")


class TorchRecurrentStack(nn.Module):
    """``nn.RNN``/``nn.GRU``/``nn.LSTM`` (cuDNN on GPU) over padded batches.

    Padding is handled by packing, so the backward direction starts at each
    sequence's last frame. ``impl="reference"`` runs the same weights through
    step loops (``cells_reference``) instead, for tests.

    Args:
        cell: "rnn", "gru" or "lstm".
        input_size: F.
        hidden_size: H.
        num_layers: stacked layers.
        bidirectional: two directions per layer, outputs concatenated.
        dropout: dropout on the outputs of every layer but the last (training only).
        nonlinearity: "tanh" or "relu", for ``rnn`` only.
        impl: "auto"/"fused" (PyTorch's module) or "reference" (step loop).
    """

    def __init__(self, cell: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, nonlinearity: str = "tanh",
                 impl: str = "auto") -> None:
        super().__init__()
        if cell not in TORCH_CELLS:
            raise AsrError(f"cell must be one of {TORCH_CELLS}, got {cell!r}")
        if impl not in ("auto", "fused", "reference"):
            raise AsrError(f"impl must be 'auto', 'fused' or 'reference', got {impl!r}")
        if nonlinearity not in ("tanh", "relu"):
            raise AsrError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        options = dict(num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
                       batch_first=True)
        if cell == "rnn":
            self.rnn = nn.RNN(input_size, hidden_size, nonlinearity=nonlinearity, **options)
        else:
            self.rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell](input_size, hidden_size, **options)
        self.cell = cell
        self.nonlinearity = nonlinearity
        self.impl = "reference" if impl == "reference" else "fused"

    @property
    def output_size(self) -> int:
        """Features per output frame: H * D."""
        return self.rnn.hidden_size * (2 if self.rnn.bidirectional else 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Run the stack.

        Args:
            x: [B, T, F] padded inputs.
            lengths: [B] valid frames per sequence, or None (all valid).

        Returns:
            [B, T, H * D], zero at padded frames.
        """
        if self.impl == "reference":
            return self.forward_reference(x, lengths)
        max_len = x.shape[1]
        if lengths is None or bool((lengths == max_len).all()):
            return self.rnn(x)[0]
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=max_len)
        return out

    def layer_weights(self, layer: int) -> tuple[torch.Tensor, ...]:
        """(w_ih [D, G, F], b_ih [D, G], w_hh [D, G, H], b_hh [D, G]) of one layer."""
        suffixes = [""] + (["_reverse"] if self.rnn.bidirectional else [])
        return tuple(torch.stack([getattr(self.rnn, f"{name}_l{layer}{s}") for s in suffixes])
                     for name in ("weight_ih", "bias_ih", "weight_hh", "bias_hh"))

    def forward_reference(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Same computation as ``forward`` through the step loops."""
        batch, max_len, _ = x.shape
        mask_tb = lengths_to_mask(lengths, batch, max_len, x.device).t()
        hidden = self.rnn.hidden_size
        for layer in range(self.rnn.num_layers):
            if layer > 0:
                x = F.dropout(x, self.rnn.dropout, self.training)
            w_ih, b_ih, w_hh, b_hh = self.layer_weights(layer)
            num_dirs = w_ih.shape[0]
            a = F.linear(x, w_ih.flatten(0, 1), b_ih.flatten())  # [B, T, D * G]
            rows = direction_rows(lengths, batch, max_len, num_dirs, x.device)
            a = split_directions(a, rows, num_dirs)  # [T, D, B, G]
            h0 = a.new_zeros(num_dirs, batch, hidden)
            if self.cell == "rnn":
                step = functools.partial(rnn_step, w_hh=w_hh, b_hh=b_hh, nonlinearity=self.nonlinearity)
                state = (h0,)
            elif self.cell == "gru":
                step, state = functools.partial(gru_step, w_hh=w_hh, b_hh=b_hh), (h0,)
            else:
                step, state = functools.partial(lstm_step, w_hh=w_hh, b_hh=b_hh), (h0, h0)
            x = merge_directions(run_recurrence(step, a, state, mask_tb), rows)
        return x
