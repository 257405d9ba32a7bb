"""Pieces shared by the hand-written backward passes of the fused recurrences."""

from __future__ import annotations

import torch


def frames_matmul(lhs: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Sum over frames and batch of ``lhs^T rhs``, as one batched matmul per direction.

    Args:
        lhs: [T, D, B, H].
        rhs: [T, D, B, G].

    Returns:
        [D, H, G].
    """
    num_steps, num_dirs, batch, hidden = lhs.shape
    lhs = lhs.permute(1, 3, 0, 2).reshape(num_dirs, hidden, num_steps * batch)
    rhs = rhs.permute(1, 0, 2, 3).reshape(num_dirs, num_steps * batch, rhs.shape[-1])
    return torch.bmm(lhs, rhs)


def recurrent_weight_grad(hs: torch.Tensor, grad_gates: torch.Tensor) -> torch.Tensor:
    """``dU = sum_t h_{t-1}^T g_t`` for a recurrent term ``h_{t-1} @ U`` (``h_{-1} = 0``).

    Args:
        hs: [T, D, B, H] hidden states.
        grad_gates: [T, D, B, G] gradients of the recurrent term at each frame.

    Returns:
        [D, H, G]; frame 0 contributes nothing, so it is left out rather than padded.
    """
    if hs.shape[0] == 1:
        return hs.new_zeros(hs.shape[1], hs.shape[3], grad_gates.shape[-1])
    return frames_matmul(hs[:-1], grad_gates[1:])


def ligru_gate_grads(dh_new: torch.Tensor, h_prev: torch.Tensor, z: torch.Tensor, c: torch.Tensor,
                     drop: torch.Tensor | None, out: torch.Tensor) -> None:
    """Gradients of LiGRU's gate pre-activations at one frame, written into ``out``.

    ``h = z * h_prev + (1 - z) * c * drop`` with ``z = sigmoid(.)``, ``c = relu(.)``.

    Args:
        dh_new: [D, B, H] gradient of this frame's output state (padding already masked).
        h_prev, z, c: [D, B, H] previous state, update gate and candidate (before dropout).
        drop: [D, B, H] recurrent-dropout mask, or None.
        out: [D, B, 2H] receives the update-gate then candidate gradients.
    """
    hidden = z.shape[-1]
    c_drop = c if drop is None else c * drop
    dz = dh_new * (h_prev - c_drop)
    dc = dh_new * (1 - z)
    if drop is not None:
        dc = dc * drop
    out[..., :hidden] = dz * z * (1 - z)
    out[..., hidden:] = dc * (c > 0)
