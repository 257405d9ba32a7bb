"""pytorch-kaldi's feed-forward baseline: an MLP on spliced (context-window) frames."""

from __future__ import annotations

import math

import torch
from torch import nn

from asr.nn.masked_batchnorm import MaskedBatchNorm1d
from asr.nn.padding import lengths_to_mask


def splice_frames(x: torch.Tensor, lengths: torch.Tensor | None, left: int,
                  right: int) -> torch.Tensor:
    """Concatenate each frame with its ``left`` previous and ``right`` next frames.

    Frames before an utterance's first frame repeat its first frame, frames after its
    last valid frame (``lengths[b] - 1``) repeat that one, so padding is never read:
    a padded batch splices every utterance exactly as it would alone. Padded output
    frames hold copies of valid frames (finite values the caller masks).

    Args:
        x: [B, T, F] padded features.
        lengths: [B] valid frames per utterance, or None (all T frames valid).
        left: frames of left context, >= 0.
        right: frames of right context, >= 0.

    Returns:
        [B, T, (left + 1 + right) * F]; frame ``t`` is ``x[t - left], ..., x[t + right]``
        in that order (Kaldi's ``splice-feats`` layout), each F wide.
    """
    batch, max_len, features = x.shape
    width = left + 1 + right
    if lengths is None and width == 1:
        return x
    device = x.device
    offsets = torch.arange(-left, right + 1, device=device)  # [K]
    frames = torch.arange(max_len, device=device)[:, None] + offsets  # [T, K]
    if lengths is None:
        last = torch.full((batch,), max_len - 1, device=device, dtype=torch.long)
    else:
        last = lengths.to(device=device, dtype=torch.long) - 1
    frames = torch.minimum(frames[None], last[:, None, None]).clamp(min=0)  # [B, T, K]
    rows = frames + (torch.arange(batch, device=device) * max_len)[:, None, None]
    spliced = x.reshape(batch * max_len, features).index_select(0, rows.flatten())
    return spliced.view(batch, max_len, width * features)


class MLP(nn.Module):
    """Feed-forward acoustic model on spliced frames (pytorch-kaldi's TIMIT MLP).

    Each frame is spliced with its context (``splice_frames``, edge replication at
    each utterance's own ends), then goes through ``num_layers`` blocks of
    ``Linear(hidden_size, no bias) -> batch norm (valid frames only, momentum 0.05)
    -> ReLU -> dropout``. The output layer (softmax) belongs to the task head, not here.
    Weights start uniform in +-sqrt(0.01 / (fan_in + fan_out)) as in pytorch-kaldi
    (batch norm makes the layers insensitive to that scale); the bias is dropped
    because batch norm's shift replaces it.

    Args:
        input_size: F, features per (unspliced) input frame.
        hidden_size: H, units per layer.
        num_layers: blocks, >= 1.
        dropout: dropout probability after every block (training only).
        splice_left: frames of left context.
        splice_right: frames of right context.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int,
                 dropout: float = 0.0, splice_left: int = 0, splice_right: int = 0) -> None:
        super().__init__()
        self.splice_left = splice_left
        self.splice_right = splice_right
        self.hidden_size = hidden_size
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        fan_in = input_size * (splice_left + 1 + splice_right)
        for _ in range(num_layers):
            linear = nn.Linear(fan_in, hidden_size, bias=False)
            bound = math.sqrt(0.01 / (fan_in + hidden_size))
            nn.init.uniform_(linear.weight, -bound, bound)
            self.linears.append(linear)
            self.norms.append(MaskedBatchNorm1d(hidden_size, momentum=0.05))
            fan_in = hidden_size
        self.dropout = nn.Dropout(dropout)

    @property
    def output_size(self) -> int:
        """Features per output frame: H."""
        return self.hidden_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Run the network.

        Args:
            x: [B, T, F] padded features.
            lengths: [B] valid frames per utterance, or None (all valid).

        Returns:
            [B, T, H], zero at padded frames. Valid frames equal those of each
            utterance run alone (in eval mode; in training batch-norm statistics
            are those of the batch's valid frames).
        """
        batch, max_len = x.shape[:2]
        mask = None if lengths is None else lengths_to_mask(lengths.to(x.device), batch, max_len)
        h = splice_frames(x, lengths, self.splice_left, self.splice_right)
        for linear, norm in zip(self.linears, self.norms):
            h = self.dropout(torch.relu(norm(linear(h), mask)))
        if mask is not None:
            h = h.masked_fill(~mask[..., None], 0.0)
        return h
