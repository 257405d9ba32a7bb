"""One minimal gated unit (MGU) layer, one or two directions."""

from __future__ import annotations

import functools

import torch
from torch import nn
import torch.nn.functional as F

from asr.errors import AsrError
from asr.nn.cells_reference import mgu_step, run_recurrence
from asr.nn.init import init_input_blocks, init_recurrent_blocks
from asr.nn.padding import lengths_to_mask, merge_directions, split_directions


class MGULayer(nn.Module):
    """Minimal gated unit (Zhou et al. 2016) over padded batches.

    ``f = sigmoid(W_f x + U_f h + b_f)``, ``n = tanh(W_n x + U_n (f * h) + b_n)``,
    ``h = (1 - f) * h + f * n``; separate weights per direction. Only the
    reference (step loop) implementation exists.

    Args:
        input_size: F.
        hidden_size: H.
        bidirectional: run a second, backward direction.
        impl: "auto" or "reference" (both run the loop).
    """

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool = False,
                 impl: str = "auto") -> None:
        super().__init__()
        if impl not in ("auto", "reference"):
            raise AsrError(f"mgu has only the reference implementation; got impl={impl!r}")
        self.hidden_size = hidden_size
        self.num_dirs = 2 if bidirectional else 1
        gates = self.num_dirs * 2 * hidden_size
        self.w = nn.Parameter(torch.empty(gates, input_size))
        self.bias = nn.Parameter(torch.zeros(gates))
        self.u = nn.Parameter(torch.empty(self.num_dirs, hidden_size, 2 * hidden_size))
        init_input_blocks(self.w, hidden_size)
        init_recurrent_blocks(self.u, hidden_size)

    @property
    def output_size(self) -> int:
        """Features per output frame: H * D."""
        return self.hidden_size * self.num_dirs

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Run the layer.

        Args:
            x: [B, T, F] padded inputs.
            lengths: [B] valid frames per sequence, or None (all valid).
            mask: [B, T] bool valid-frame mask matching ``lengths`` (computed if None).

        Returns:
            [B, T, H * D], zero at padded frames.
        """
        batch, max_len, _ = x.shape
        if mask is None:
            mask = lengths_to_mask(lengths, batch, max_len, x.device)
        a = split_directions(F.linear(x, self.w, self.bias), lengths, self.num_dirs)  # [T, D, B, 2H]
        h0 = a.new_zeros(self.num_dirs, batch, self.hidden_size)
        step = functools.partial(mgu_step, u=self.u.to(a.dtype))
        return merge_directions(run_recurrence(step, a, (h0,), mask.t()), lengths)
