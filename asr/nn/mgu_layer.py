"""One minimal gated unit (MGU) layer, one or two directions."""

from __future__ import annotations

import functools

import torch
from torch import nn
import torch.nn.functional as F

from asr.errors import AsrError
from asr.nn.cells_reference import mgu_step, run_recurrence
from asr.nn.init import init_input_blocks, init_recurrent_blocks
from asr.nn.mgu_fused import mgu_recurrence
from asr.nn.padding import direction_rows, lengths_to_mask, merge_directions, split_directions


class MGULayer(nn.Module):
    """Minimal gated unit (Zhou et al. 2016) over padded batches.

    ``f = sigmoid(W_f x + U_f h + b_f)``, ``n = tanh(W_n x + U_n (f * h) + b_n)``,
    ``h = (1 - f) * h + f * n``; separate weights per direction.

    Args:
        input_size: F.
        hidden_size: H.
        bidirectional: run a second, backward direction.
        impl: "auto"/"fused" (custom autograd, ``mgu_fused``) or "reference" (step loop).
    """

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool = False,
                 impl: str = "auto") -> None:
        super().__init__()
        if impl not in ("auto", "fused", "reference"):
            raise AsrError(f"impl must be 'auto', 'fused' or 'reference', got {impl!r}")
        self.impl = "reference" if impl == "reference" else "fused"
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
        rows = direction_rows(lengths, batch, max_len, self.num_dirs, x.device)
        a = split_directions(F.linear(x, self.w, self.bias), rows, self.num_dirs)  # [T, D, B, 2H]
        if torch.is_autocast_enabled(x.device.type):
            # Mixed precision: projections in low precision, recurrent state in fp32.
            with torch.autocast(x.device.type, enabled=False):
                return self.run_recurrence(a.float(), rows, mask)
        return self.run_recurrence(a, rows, mask)

    def run_recurrence(self, a: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Recurrence over projections ``a`` [T, D, B, 2H] -> [B, T, H * D]."""
        batch = a.shape[2]
        u = self.u.to(a.dtype)
        if self.impl == "fused":
            return merge_directions(mgu_recurrence(a, u, mask.t()), rows)
        h0 = a.new_zeros(self.num_dirs, batch, self.hidden_size)
        step = functools.partial(mgu_step, u=u)
        return merge_directions(run_recurrence(step, a, (h0,), mask.t()), rows)
