"""Fused SLi-GRU recurrence (LiGRU with a layer-normalised recurrent term).

Moumen & Parcollet (2023): ``g = a_t + LN(h @ U)``, then the LiGRU update
(see ``ligru_fused``). A custom autograd function with a hand-written
backward, written with ATen ops (any device): per frame one matmul forward
and one backward; the gradients of U and of the layer-norm scale and shift
are reduced once over all frames at the end.
"""

from __future__ import annotations

import torch

from asr.nn.recurrence_grads import ligru_gate_grads, recurrent_weight_grad

LAYER_NORM_EPS = 1e-5  # as F.layer_norm's default, which the reference loop uses


class SLiGRURecurrenceTorch(torch.autograd.Function):
    """Fused SLi-GRU recurrence; see ``sligru_recurrence``."""

    @staticmethod
    def forward(ctx, a, u, ln_weight, ln_bias, mask, drop):  # noqa: D102
        num_steps, num_dirs, batch, _ = a.shape
        hidden = u.shape[1]
        h = a.new_zeros(num_dirs, batch, hidden)
        hs = a.new_empty(num_steps, num_dirs, batch, hidden)
        zs = torch.empty_like(hs)
        cs = torch.empty_like(hs)
        normed = torch.empty_like(a)  # layer-normalised recurrent terms, before scale and shift
        inv_std = a.new_empty(num_steps, num_dirs, batch, 1)
        keep = mask.to(a.dtype)[:, None, :, None]  # [T, 1, B, 1]
        weight, bias = ln_weight[:, None], ln_bias[:, None]  # [D, 1, 2H]
        for t in range(num_steps):
            rec = torch.bmm(h, u)
            var, mean = torch.var_mean(rec, dim=-1, keepdim=True, correction=0)
            torch.rsqrt(var + LAYER_NORM_EPS, out=inv_std[t])
            torch.mul(rec - mean, inv_std[t], out=normed[t])
            gates = torch.addcmul(a[t] + bias, normed[t], weight)
            z = torch.sigmoid(gates[..., :hidden], out=zs[t])
            c = torch.relu(gates[..., hidden:])
            cs[t] = c
            if drop is not None:
                c = c * drop
            h = torch.lerp(c, h, z).mul_(keep[t])
            hs[t] = h
        ctx.save_for_backward(u, ln_weight, keep, drop, hs, zs, cs, normed, inv_std)
        return hs

    @staticmethod
    def backward(ctx, grad_hs):  # noqa: D102
        u, ln_weight, keep, drop, hs, zs, cs, normed, inv_std = ctx.saved_tensors
        num_steps, num_dirs, batch, hidden = hs.shape
        grad_a = hs.new_empty(num_steps, num_dirs, batch, 2 * hidden)
        grad_rec = torch.empty_like(grad_a)
        u_t = u.transpose(1, 2)
        weight = ln_weight[:, None]
        dh = hs.new_zeros(num_dirs, batch, hidden)
        zero = hs.new_zeros(num_dirs, batch, hidden)
        for t in range(num_steps - 1, -1, -1):
            dh_new = (dh + grad_hs[t]) * keep[t]
            ligru_gate_grads(dh_new, hs[t - 1] if t > 0 else zero, zs[t], cs[t], drop, grad_a[t])
            # Layer-norm backward: project out the mean and the normalised direction.
            d_normed = grad_a[t] * weight
            x = normed[t]
            correction = d_normed.mean(-1, keepdim=True) + x * (d_normed * x).mean(-1, keepdim=True)
            torch.mul(d_normed - correction, inv_std[t], out=grad_rec[t])
            dh = torch.baddbmm(dh_new * zs[t], grad_rec[t], u_t)
        grad_u = recurrent_weight_grad(hs, grad_rec)
        grad_weight = (grad_a * normed).sum(dim=(0, 2))  # [D, 2H]
        grad_bias = grad_a.sum(dim=(0, 2))
        return grad_a, grad_u, grad_weight, grad_bias, None, None


def sligru_recurrence(a: torch.Tensor, u: torch.Tensor, ln_weight: torch.Tensor,
                      ln_bias: torch.Tensor, mask: torch.Tensor,
                      drop: torch.Tensor | None = None) -> torch.Tensor:
    """Run the SLi-GRU recurrence with the fused forward and backward.

    Args:
        a: [T, D, B, 2H] input projections (update gate first).
        u: [D, H, 2H] recurrent weights, applied as ``h @ u``.
        ln_weight: [D, 2H] layer-norm scale of the recurrent term.
        ln_bias: [D, 2H] layer-norm shift.
        mask: [T, B] bool, True at valid frames (padding after valid frames).
        drop: [D, B, H] recurrent-dropout mask on the candidate, or None.

    Returns:
        [T, D, B, H] hidden states, zero at padded frames.
    """
    if drop is not None:
        drop = drop.to(a.dtype).contiguous()
    return SLiGRURecurrenceTorch.apply(a.contiguous(), u.contiguous(), ln_weight, ln_bias,
                                       mask.contiguous(), drop)
