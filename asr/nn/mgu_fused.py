"""Fused minimal gated unit (MGU) recurrence with a hand-written backward.

Per frame: ``f = sigmoid(a_f + h @ U_f)``, ``n = tanh(a_n + (f * h) @ U_n)``,
``h' = ((1 - f) * h + f * n) * valid_t``. The forward needs two matmuls per
frame (n depends on f), the backward two; the gradient of U is reduced over
all frames with one matmul per gate at the end. ATen ops, any device.
"""

from __future__ import annotations

import torch

from asr.nn.recurrence_grads import frames_matmul


class MGURecurrenceTorch(torch.autograd.Function):
    """Fused MGU recurrence; see ``mgu_recurrence``."""

    @staticmethod
    def forward(ctx, a, u, mask):  # noqa: D102
        num_steps, num_dirs, batch, _ = a.shape
        hidden = u.shape[1]
        u_f, u_n = u[..., :hidden].contiguous(), u[..., hidden:].contiguous()
        h = a.new_zeros(num_dirs, batch, hidden)
        hs = a.new_empty(num_steps, num_dirs, batch, hidden)
        fs = torch.empty_like(hs)
        ns = torch.empty_like(hs)
        keep = mask.to(a.dtype)[:, None, :, None]  # [T, 1, B, 1]
        for t in range(num_steps):
            f = torch.sigmoid(torch.baddbmm(a[t, ..., :hidden], h, u_f), out=fs[t])
            n = torch.tanh(torch.baddbmm(a[t, ..., hidden:], f * h, u_n), out=ns[t])
            h = torch.lerp(h, n, f).mul_(keep[t])
            hs[t] = h
        ctx.save_for_backward(u_f, u_n, keep, hs, fs, ns)
        return hs

    @staticmethod
    def backward(ctx, grad_hs):  # noqa: D102
        u_f, u_n, keep, hs, fs, ns = ctx.saved_tensors
        num_steps, num_dirs, batch, hidden = hs.shape
        grad_a = hs.new_empty(num_steps, num_dirs, batch, 2 * hidden)
        u_f_t, u_n_t = u_f.transpose(1, 2), u_n.transpose(1, 2)
        dh = hs.new_zeros(num_dirs, batch, hidden)
        zero = hs.new_zeros(num_dirs, batch, hidden)
        for t in range(num_steps - 1, -1, -1):
            dh_new = (dh + grad_hs[t]) * keep[t]
            h_prev = hs[t - 1] if t > 0 else zero
            f, n = fs[t], ns[t]
            d_pre_n = grad_a[t, ..., hidden:]
            torch.mul(dh_new * f, 1 - n * n, out=d_pre_n)
            d_fh = torch.bmm(d_pre_n, u_n_t)
            df = dh_new * (n - h_prev) + d_fh * h_prev
            torch.mul(df, f * (1 - f), out=grad_a[t, ..., :hidden])
            dh = torch.baddbmm(dh_new * (1 - f) + d_fh * f, grad_a[t, ..., :hidden], u_f_t)
        # Frame 0 (h_{-1} = 0) adds nothing. The candidate's recurrent input is f_t * h_{t-1}.
        if num_steps == 1:
            return grad_a, hs.new_zeros(num_dirs, hidden, 2 * hidden), None
        h_prev, g = hs[:-1], grad_a[1:]
        grad_u = torch.cat([frames_matmul(h_prev, g[..., :hidden]),
                            frames_matmul(fs[1:] * h_prev, g[..., hidden:])], dim=-1)
        return grad_a, grad_u, None


def mgu_recurrence(a: torch.Tensor, u: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Run the MGU recurrence with the fused forward and backward.

    Args:
        a: [T, D, B, 2H] input projections with biases (forget gate first).
        u: [D, H, 2H] recurrent weights (``[..., :H]`` for f, ``[..., H:]`` for n).
        mask: [T, B] bool, True at valid frames (padding after valid frames).

    Returns:
        [T, D, B, H] hidden states, zero at padded frames.
    """
    return MGURecurrenceTorch.apply(a.contiguous(), u.contiguous(), mask.contiguous())
