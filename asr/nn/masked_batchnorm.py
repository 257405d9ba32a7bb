"""Batch normalisation whose statistics come from valid (unpadded) frames only."""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


def masked_mean_var(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-channel mean and biased variance over the valid frames.

    Args:
        x: [B, T, C] features.
        mask: [B, T] bool, True at valid frames.

    Returns:
        (mean [C], var [C], number of valid frames).
    """
    weight = mask.to(x.dtype)[..., None]  # [B, T, 1]
    count = int(mask.sum())
    mean = (x * weight).sum(dim=(0, 1)) / count
    var = (((x - mean) * weight) ** 2).sum(dim=(0, 1)) / count
    return mean, var, count


class MaskedBatchNorm1d(nn.Module):
    """BatchNorm over the channel axis of [B, T, C] inputs, ignoring padded frames.

    In training the mean and variance are those of the valid frames alone, and
    only they update the running statistics; padded frames are normalised too
    (their values are meaningless and left to the caller to mask).

    Args:
        num_features: C.
        eps: added to the variance.
        momentum: running-statistics update factor (PyTorch convention).
        affine: learn a per-channel scale and shift.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Normalise.

        Args:
            x: [B, T, C].
            mask: [B, T] bool, True at valid frames; None means all valid.

        Returns:
            [B, T, C].
        """
        all_valid = mask is None or bool(mask.all())
        if not self.training or all_valid:
            # Fast fused kernel: statistics over every frame are the right ones here.
            flat = x.reshape(-1, self.num_features)
            out = F.batch_norm(flat, self.running_mean, self.running_var, self.weight,
                               self.bias, self.training, self.momentum, self.eps)
            return out.view_as(x)
        mean, var, count = masked_mean_var(x, mask)
        with torch.no_grad():
            unbiased = var * (count / max(count - 1, 1))
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
            self.running_var.lerp_(unbiased.to(self.running_var.dtype), self.momentum)
        out = (x - mean) * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            out = out * self.weight + self.bias
        return out
