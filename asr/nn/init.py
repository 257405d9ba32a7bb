"""Weight initialisation shared by the recurrent layers."""

from __future__ import annotations

import torch
from torch import nn


def init_recurrent_blocks(u: torch.Tensor, hidden_size: int) -> None:
    """Orthogonal init of every [H, H] gate block of stacked recurrent weights.

    Args:
        u: [D, H, G * H] recurrent weights (one block per direction and gate), in place.
        hidden_size: H.
    """
    with torch.no_grad():
        for direction in u:
            for block in direction.split(hidden_size, dim=-1):
                block.copy_(nn.init.orthogonal_(torch.empty_like(block)))


def init_input_blocks(w: torch.Tensor, hidden_size: int) -> None:
    """Glorot-uniform init of every [H, F] block of stacked input weights.

    Args:
        w: [D * G * H, F] input weights, in place.
        hidden_size: H.
    """
    with torch.no_grad():
        for block in w.split(hidden_size, dim=0):
            block.copy_(nn.init.xavier_uniform_(torch.empty_like(block)))
