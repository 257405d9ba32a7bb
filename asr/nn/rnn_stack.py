"""A stack of custom recurrent layers (LiGRU, SLi-GRU, MGU) with dropout between layers."""

from __future__ import annotations

import torch
from torch import nn

from asr.nn.padding import lengths_to_mask


class RecurrentStack(nn.Module):
    """Runs layers in sequence over a padded batch.

    Args:
        layers: modules with ``forward(x [B, T, F], lengths, mask) -> [B, T, F']``
            and an ``output_size`` attribute.
        dropout: dropout on the outputs of every layer but the last (training only).
    """

    def __init__(self, layers: list[nn.Module], dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)

    @property
    def output_size(self) -> int:
        """Features per output frame of the last layer."""
        return self.layers[-1].output_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Run every layer.

        Args:
            x: [B, T, F] padded inputs.
            lengths: [B] valid frames per sequence, or None (all valid).

        Returns:
            [B, T, output_size], zero at padded frames.
        """
        mask = lengths_to_mask(lengths, x.shape[0], x.shape[1], x.device)
        for index, layer in enumerate(self.layers):
            if index > 0:
                x = self.dropout(x)
            x = layer(x, lengths, mask)
        return x
