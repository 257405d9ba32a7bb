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


def direction_rows(lengths: torch.Tensor | None, batch: int, max_len: int, num_dirs: int,
                   device: torch.device) -> torch.Tensor:
    """Row map from the batch-first to the time-major per-direction layout.

    Args:
        lengths: [B] valid frames, or None (all valid).
        batch: B.
        max_len: T.
        num_dirs: D, 1 or 2.
        device: device of the result.

    Returns:
        [T * D * B] long: row ``(t, d, b)`` of the time-major layout takes row
        ``(b, t', d)`` of the batch-first one, where ``t' = t`` for the forward
        direction and ``t`` reversed within the sequence's length for the
        backward one. A permutation.
    """
    steps = torch.arange(max_len, device=device)[:, None, None]  # [T, 1, 1]
    dirs = torch.arange(num_dirs, device=device)[None, :, None]  # [1, D, 1]
    seqs = torch.arange(batch, device=device)[None, None, :]  # [1, 1, B]
    if lengths is None:
        reversed_steps = (max_len - 1 - steps).expand(max_len, 1, batch)
    else:
        length = lengths.to(device)[None, None, :]
        reversed_steps = torch.where(steps < length, length - 1 - steps, steps)
    source_steps = torch.where(dirs == 1, reversed_steps, steps)  # [T, D, B]
    return ((seqs * max_len + source_steps) * num_dirs + dirs).flatten()


class GatherRows(torch.autograd.Function):
    """``x.index_select(0, index)`` for a permutation ``index``; backward uses its inverse."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(index)
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        (index,) = ctx.saved_tensors
        inverse = torch.empty_like(index)
        inverse[index] = torch.arange(index.numel(), device=index.device)
        return grad.contiguous().index_select(0, inverse), None


def split_directions(a: torch.Tensor, rows: torch.Tensor, num_dirs: int) -> torch.Tensor:
    """Lay out per-direction input projections time-major, backward one reversed.

    Args:
        a: [B, T, D * G] projections of both directions, forward first.
        rows: ``direction_rows(lengths, B, T, D)``.
        num_dirs: D, 1 or 2.

    Returns:
        [T, D, B, G] contiguous; direction 1 is reversed within each sequence's length.
    """
    batch, max_len, width = a.shape
    flat = a.reshape(batch * max_len * num_dirs, width // num_dirs)
    return GatherRows.apply(flat, rows).view(max_len, num_dirs, batch, width // num_dirs)


def merge_directions(h: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Inverse of ``split_directions`` for outputs.

    Args:
        h: [T, D, B, H] outputs, direction 1 in reversed time.
        rows: the ``direction_rows`` used to split the inputs.

    Returns:
        [B, T, D * H], forward direction's features first.
    """
    num_steps, num_dirs, batch, hidden = h.shape
    inverse = torch.empty_like(rows)
    inverse[rows] = torch.arange(rows.numel(), device=rows.device)
    flat = GatherRows.apply(h.reshape(-1, hidden), inverse)
    return flat.view(batch, num_steps, num_dirs * hidden)
