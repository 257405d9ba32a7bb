"""One Light GRU layer (both directions), and its layer-normalised variant SLi-GRU."""

from __future__ import annotations

import functools

import torch
from torch import nn
import torch.nn.functional as F

from asr.errors import AsrError
from asr.nn.cells_reference import ligru_step, run_recurrence
from asr.nn.init import init_input_blocks, init_recurrent_blocks
from asr.nn.ligru_fused import BACKENDS, ligru_recurrence
from asr.nn.masked_batchnorm import MaskedBatchNorm1d
from asr.nn.padding import direction_rows, lengths_to_mask, merge_directions, split_directions
from asr.nn.sligru_fused import sligru_recurrence


class LiGRULayer(nn.Module):
    """Light GRU (Ravanelli et al. 2018) over padded batches, one or two directions.

    ``z = sigmoid(BN(W_z x) + U_z h)``, ``c = ReLU(BN(W_h x) + U_h h)``,
    ``h = z * h + (1 - z) * c``. Batch norm uses valid frames only; recurrent
    dropout multiplies the candidate ``c`` by one inverted mask per sequence,
    held over time (as pytorch-kaldi and SpeechBrain place it). Each direction
    has its own weights. With ``layer_norm=True`` the recurrent term ``U h`` is
    layer-normalised (SLi-GRU, Moumen & Parcollet 2023).

    Args:
        input_size: F.
        hidden_size: H.
        bidirectional: run a second, backward direction.
        batch_norm: batch-normalise the input projections (else add a bias).
        recurrent_dropout: probability of dropping a candidate unit (whole sequence).
        layer_norm: SLi-GRU's layer norm on the recurrent term.
        impl: "fused" (custom autograd), "reference" (step loop), or "auto" (fused).
        backend: LiGRU's fused backend, "auto", "cpp", "torch" or "triton" (see
            ``ligru_recurrence``); SLi-GRU's fused recurrence is ATen-ops only
            ("auto" or "torch").
    """

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool = False,
                 batch_norm: bool = True, recurrent_dropout: float = 0.0,
                 layer_norm: bool = False, impl: str = "auto", backend: str = "auto") -> None:
        super().__init__()
        if impl not in ("auto", "fused", "reference"):
            raise AsrError(f"impl must be 'auto', 'fused' or 'reference', got {impl!r}")
        if layer_norm and backend in ("cpp", "triton"):
            raise AsrError("sligru's fused recurrence has only the 'torch' backend")
        if backend not in BACKENDS:
            raise AsrError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if not 0.0 <= recurrent_dropout < 1.0:
            raise AsrError(f"recurrent_dropout must be in [0, 1), got {recurrent_dropout}")
        self.hidden_size = hidden_size
        self.num_dirs = 2 if bidirectional else 1
        self.recurrent_dropout = recurrent_dropout
        self.impl = "reference" if impl == "reference" else "fused"
        self.backend = backend
        gates = self.num_dirs * 2 * hidden_size
        self.w = nn.Parameter(torch.empty(gates, input_size))
        self.u = nn.Parameter(torch.empty(self.num_dirs, hidden_size, 2 * hidden_size))
        self.norm = MaskedBatchNorm1d(gates, momentum=0.05) if batch_norm else None
        self.bias = None if batch_norm else nn.Parameter(torch.zeros(gates))
        self.ln_weight = nn.Parameter(torch.ones(self.num_dirs, 2 * hidden_size)) if layer_norm else None
        self.ln_bias = nn.Parameter(torch.zeros(self.num_dirs, 2 * hidden_size)) if layer_norm else None
        init_input_blocks(self.w, hidden_size)
        init_recurrent_blocks(self.u, hidden_size)

    @property
    def output_size(self) -> int:
        """Features per output frame: H * D."""
        return self.hidden_size * self.num_dirs

    def sample_drop_mask(self, batch: int, like: torch.Tensor) -> torch.Tensor | None:
        """One inverted dropout mask per sequence and direction, [D, B, H], or None."""
        if not self.training or self.recurrent_dropout == 0.0:
            return None
        keep = 1.0 - self.recurrent_dropout
        shape = (self.num_dirs, batch, self.hidden_size)
        return torch.bernoulli(torch.full(shape, keep, dtype=like.dtype, device=like.device)) / keep

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
        a = F.linear(x, self.w, self.bias)  # [B, T, D * 2H], all frames in one matmul
        if self.norm is not None:
            a = self.norm(a, None if lengths is None else mask)
        if torch.is_autocast_enabled(x.device.type):
            # Mixed precision: projections in low precision, recurrent state in fp32.
            with torch.autocast(x.device.type, enabled=False):
                return self.run_recurrence(a.float(), lengths, mask)
        return self.run_recurrence(a, lengths, mask)

    def run_recurrence(self, a: torch.Tensor, lengths: torch.Tensor | None,
                       mask: torch.Tensor) -> torch.Tensor:
        """Recurrence over projections ``a`` [B, T, D * 2H] -> [B, T, H * D]."""
        batch, max_len, _ = a.shape
        u = self.u.to(a.dtype)
        drop = self.sample_drop_mask(batch, a)
        layer_norm = None
        if self.ln_weight is not None:
            layer_norm = (self.ln_weight.to(a.dtype), self.ln_bias.to(a.dtype))
        if self.impl == "fused" and layer_norm is None:
            return ligru_recurrence(a, u, lengths, drop, self.backend)
        rows = direction_rows(lengths, batch, max_len, self.num_dirs, a.device)
        a = split_directions(a, rows, self.num_dirs)  # [T, D, B, 2H]
        mask_tb = mask.t()
        if self.impl == "fused":
            h = sligru_recurrence(a, u, *layer_norm, mask_tb, drop)
        else:
            step = functools.partial(ligru_step, u=u, drop=drop, layer_norm=layer_norm)
            h0 = a.new_zeros(self.num_dirs, batch, self.hidden_size)
            h = run_recurrence(step, a, (h0,), mask_tb)
        return merge_directions(h, rows)
