"""Helpers for padded batches of variable-length sequences (batch-first)."""

from __future__ import annotations

import torch


def lengths_to_mask(lengths: torch.Tensor | None, batch_size: int, max_len: int,
                    device: torch.device | None = None) -> torch.Tensor:
    """Boolean mask of valid frames.

    Args:
        lengths: [B] number of valid frames per sequence, or None (all frames valid).
        batch_size: B, used when ``lengths`` is None.
        max_len: T, the padded length.
        device: where to build the mask when ``lengths`` is None.

    Returns:
        [B, T] bool, True at valid frames.
    """
    if lengths is None:
        return torch.ones(batch_size, max_len, dtype=torch.bool, device=device)
    steps = torch.arange(max_len, device=lengths.device)
    return steps[None, :] < lengths[:, None]


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Reverse each sequence within its own length; padded frames stay in place.

    Applying it twice gives back ``x``. The backward direction of a recurrent
    layer runs forward over ``reverse_padded(x)`` so it starts at each
    sequence's own last frame and never reads padding before valid frames.

    Args:
        x: [B, T, ...] batch-first padded sequences.
        lengths: [B] valid frames per sequence, or None (plain flip over T).

    Returns:
        [B, T, ...] with ``out[b, t] = x[b, lengths[b] - 1 - t]`` for ``t < lengths[b]``.
    """
    if lengths is None:
        return x.flip(1)
    batch, max_len = x.shape[:2]
    steps = torch.arange(max_len, device=x.device)[None, :].expand(batch, max_len)
    lengths = lengths.to(x.device)[:, None]
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)
    index = index.reshape(batch, max_len, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, index)


def split_directions(a: torch.Tensor, lengths: torch.Tensor | None, num_dirs: int) -> torch.Tensor:
    """Lay out per-direction input projections time-major, backward one reversed.

    Args:
        a: [B, T, D * G] projections of both directions, forward first.
        lengths: [B] valid frames, or None.
        num_dirs: D, 1 or 2.

    Returns:
        [T, D, B, G] contiguous; direction 1 is reversed within each sequence's length.
    """
    batch, max_len, _ = a.shape
    a = a.view(batch, max_len, num_dirs, -1)
    if num_dirs == 2:
        a = torch.stack([a[:, :, 0], reverse_padded(a[:, :, 1], lengths)], dim=2)
    return a.permute(1, 2, 0, 3).contiguous()


def merge_directions(h: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Inverse of ``split_directions`` for outputs.

    Args:
        h: [T, D, B, H] outputs, direction 1 in reversed time.
        lengths: [B] valid frames, or None.

    Returns:
        [B, T, D * H], forward direction's features first.
    """
    num_steps, num_dirs, batch, hidden = h.shape
    h = h.permute(2, 0, 1, 3)  # [B, T, D, H]
    if num_dirs == 2:
        h = torch.stack([h[:, :, 0], reverse_padded(h[:, :, 1], lengths)], dim=2)
    return h.reshape(batch, num_steps, num_dirs * hidden)
