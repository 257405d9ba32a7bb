"""Fused Light GRU recurrence: one matmul and one elementwise step per frame.

The input projections of all frames are computed before (one large matmul,
then batch norm); this module runs only the recurrence

    g = a_t + h @ U;  z = sigmoid(g_z);  c = relu(g_c)
    h' = (z * h + (1 - z) * c * drop) * valid_t

as a custom autograd function with a hand-written backward: one matmul
(``dg @ U^T``) plus elementwise work per frame, and the gradient of U
reduced over all frames at the end (one batched matmul in ``torch`` and
``triton``; one matmul per sequence and direction, all its frames at once,
in ``cpp``).
Both directions (separate weights) run in the same step through batched
matmuls.

Three backends compute the same thing: ``cpp`` (a small C++ extension, built
on first use, CPU; it reads and writes the layer's batch-first layout
directly), ``triton`` (GPU: cuBLAS matmul plus one Triton kernel per frame,
see ``ligru_triton``) and ``torch`` (ATen ops from Python, any device).
``triton`` and ``torch`` work time-major, ``[T, D, B, *]``, after
reordering. Padded frames output zero and reset the state; padding must
follow the valid frames.
"""

from __future__ import annotations

import torch

from asr.errors import AsrError
from asr.nn import ligru_cpp, ligru_triton
from asr.nn.padding import direction_rows, lengths_to_mask, merge_directions, split_directions
from asr.nn.recurrence_grads import ligru_gate_grads, recurrent_weight_grad

BACKENDS = ("auto", "cpp", "torch", "triton")


class LiGRURecurrenceTorch(torch.autograd.Function):
    """Fused recurrence written with ATen ops (any device), time-major.

    Takes ``a`` [T, D, B, 2H] (direction 1 already reversed per sequence),
    ``u`` [D, H, 2H], ``mask`` [T, B] bool and ``drop`` [D, B, H] or None;
    returns [T, D, B, H].
    """

    @staticmethod
    def forward(ctx, a, u, mask, drop):  # noqa: D102 - documented in ligru_recurrence
        num_steps, num_dirs, batch, _ = a.shape
        hidden = u.shape[1]
        h = a.new_zeros(num_dirs, batch, hidden)
        hs = a.new_empty(num_steps, num_dirs, batch, hidden)
        zs = torch.empty_like(hs)
        cs = torch.empty_like(hs)
        keep = mask.to(a.dtype)[:, None, :, None]  # [T, 1, B, 1]
        for t in range(num_steps):
            gates = torch.baddbmm(a[t], h, u)
            z = torch.sigmoid(gates[..., :hidden], out=zs[t])
            c = torch.relu(gates[..., hidden:])
            cs[t] = c
            if drop is not None:
                c = c * drop
            h = torch.lerp(c, h, z).mul_(keep[t])  # z*h + (1-z)*c
            hs[t] = h
        ctx.save_for_backward(u, keep, drop, hs, zs, cs)
        return hs

    @staticmethod
    def backward(ctx, grad_hs):  # noqa: D102
        u, keep, drop, hs, zs, cs = ctx.saved_tensors
        num_steps, num_dirs, batch, hidden = hs.shape
        grad_a = hs.new_empty(num_steps, num_dirs, batch, 2 * hidden)
        u_t = u.transpose(1, 2)
        dh = hs.new_zeros(num_dirs, batch, hidden)
        zero = hs.new_zeros(num_dirs, batch, hidden)
        for t in range(num_steps - 1, -1, -1):
            dh_new = (dh + grad_hs[t]) * keep[t]
            ligru_gate_grads(dh_new, hs[t - 1] if t > 0 else zero, zs[t], cs[t], drop, grad_a[t])
            dh = torch.baddbmm(dh_new * zs[t], grad_a[t], u_t)
        # dU = sum_t h_{t-1}^T dg_t, as one matmul over all frames.
        return grad_a, recurrent_weight_grad(hs, grad_a), None, None


def select_backend(backend: str, a: torch.Tensor) -> str:
    """The backend that runs for ``backend`` on tensors like ``a``.

    Args:
        backend: one of ``BACKENDS``.
        a: the input projections (their device and dtype decide "auto").

    Returns:
        "cpp", "torch" or "triton". "auto" gives triton on CUDA float32/float64
        when triton imports, cpp on CPU when it builds, torch otherwise.
    """
    if backend not in BACKENDS:
        raise AsrError(f"ligru backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    if a.device.type == "cuda" and ligru_triton.supports(a):
        return "triton"
    if a.device.type == "cpu" and ligru_cpp.available():
        return "cpp"
    return "torch"


def ligru_recurrence(a: torch.Tensor, u: torch.Tensor, lengths: torch.Tensor | None,
                     drop: torch.Tensor | None = None, backend: str = "auto") -> torch.Tensor:
    """Run the Light GRU recurrence of one layer with the fused forward and backward.

    Args:
        a: [B, T, D * 2H] input projections, direction-major (direction d's
            update gate at ``[..., 2Hd : 2Hd + H]``, its candidate after it).
        u: [D, H, 2H] recurrent weights, applied as ``h @ u``.
        lengths: [B] valid frames per sequence (padding after them), or None.
        drop: [D, B, H] recurrent-dropout mask on the candidate (already
            scaled by 1/(1-p)), constant over time; None for no dropout.
        backend: "cpp" (C++ extension, CPU only), "triton" (CUDA, float32 or
            float64; CPU tensors only in Triton's interpreter), "torch" (ATen
            ops), or "auto" (see ``select_backend``; a failed C++ build logs a warning).

    Returns:
        [B, T, D * H]: each direction's hidden states (direction 1 runs
        backward from each sequence's last frame), zero at padded frames.
    """
    backend = select_backend(backend, a)
    batch, max_len, _ = a.shape
    num_dirs = u.shape[0]
    if drop is not None:
        drop = drop.to(a.dtype).contiguous()
    if backend == "cpp":
        if a.device.type != "cpu":
            raise AsrError("ligru backend 'cpp' runs on CPU only; use 'triton' or 'torch' on GPU")
        if lengths is None:
            lengths = torch.full((batch,), max_len, dtype=torch.long)
        lengths = lengths.to(device="cpu", dtype=torch.long).contiguous()
        return ligru_cpp.LiGRURecurrenceCpp.apply(a.contiguous(), u.contiguous(), lengths, drop)
    if backend == "triton" and not ligru_triton.supports(a):
        raise AsrError(f"ligru backend 'triton' needs triton and CUDA float32/float64 tensors "
                       f"(got {a.device.type} {a.dtype}, triton "
                       f"{'imported' if ligru_triton.triton else 'not installed'}); use 'torch'")
    function = ligru_triton.LiGRURecurrenceTriton if backend == "triton" else LiGRURecurrenceTorch
    rows = direction_rows(lengths, batch, max_len, num_dirs, a.device)
    a = split_directions(a, rows, num_dirs)  # [T, D, B, 2H]
    mask = lengths_to_mask(lengths, batch, max_len, a.device).t().contiguous()  # [T, B]
    return merge_directions(function.apply(a, u.contiguous(), mask, drop), rows)
