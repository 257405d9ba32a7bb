"""Fused Light GRU recurrence on GPU: cuBLAS for ``h @ U``, Triton for the gates.

Per frame, the forward runs one batched matmul for both directions
(``a_t + h @ U`` through ``torch.baddbmm``, i.e. cuBLAS) and one Triton kernel
for the whole elementwise step (sigmoid, ReLU, dropout, interpolation,
padding), which also overwrites the pre-activations with ``z`` and ``c`` for
the backward. The backward runs per frame one Triton kernel (gate gradients)
and one matmul (``dg @ U^T``), and finally ``dU`` as one matmul over all
frames. That is two launches per frame each way, against about eight ATen ops
in ``LiGRURecurrenceTorch``, whose math and time-major layout this follows.

Triton is optional: without it, or without a GPU, ``available()`` is False
and nothing here runs. With ``TRITON_INTERPRET=1`` set before triton is first
imported, the kernels run in Triton's interpreter on CPU tensors: that is how
the tests check them on machines without a GPU.
"""

from __future__ import annotations

import contextlib

import torch

from asr.nn.recurrence_grads import recurrent_weight_grad

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: the backend reports itself unavailable
    triton = None
    tl = None

# Whether @triton.jit gave interpreted kernels (decided when triton was imported).
INTERPRET = bool(triton is not None and triton.knobs.runtime.interpret)
DTYPES = (torch.float32, torch.float64)
BLOCK = 256  # elements of the [D, B, H] state per program


def available() -> bool:
    """True if the kernels can run: triton imports and a GPU is visible (or the interpreter is on)."""
    return triton is not None and (INTERPRET or torch.cuda.is_available())


def supports(a: torch.Tensor) -> bool:
    """True if the kernels can run on tensors like ``a`` (device and dtype)."""
    on_device = a.device.type == "cuda" or (INTERPRET and a.device.type == "cpu")
    return triton is not None and on_device and a.dtype in DTYPES


if triton is not None:

    @triton.jit
    def forward_step_kernel(act_ptr, h_prev_ptr, drop_ptr, keep_ptr, h_ptr, numel, batch, hidden,
                            HAS_DROP: tl.constexpr, BLOCK: tl.constexpr):
        """One frame: ``act`` [D, B, 2H] holds ``a_t + h @ U`` and gets (z, c); writes h [D, B, H]."""
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        inside = offsets < numel
        row = offsets // hidden  # d * B + b
        z_at = offsets + row * hidden  # row * 2H + unit
        c_at = z_at + hidden
        z = tl.sigmoid(tl.load(act_ptr + z_at, mask=inside, other=0.0))
        c = tl.maximum(tl.load(act_ptr + c_at, mask=inside, other=0.0), 0.0,
                       propagate_nan=tl.PropagateNan.ALL)
        tl.store(act_ptr + z_at, z, mask=inside)
        tl.store(act_ptr + c_at, c, mask=inside)
        if HAS_DROP:
            c = c * tl.load(drop_ptr + offsets, mask=inside, other=0.0)
        h_prev = tl.load(h_prev_ptr + offsets, mask=inside, other=0.0)
        keep = tl.load(keep_ptr + row % batch, mask=inside, other=0.0)
        tl.store(h_ptr + offsets, (c + z * (h_prev - c)) * keep, mask=inside)

    @triton.jit
    def backward_step_kernel(dh_ptr, grad_h_ptr, h_prev_ptr, act_ptr, drop_ptr, keep_ptr, grad_act_ptr,
                             numel, batch, hidden, HAS_DROP: tl.constexpr, BLOCK: tl.constexpr):
        """One frame back: ``dh`` [D, B, H] is the gradient reaching h_t from later frames
        and becomes its direct part in dh_{t-1} (``dh_t * z``); writes the gate gradients
        [D, B, 2H] to ``grad_act``."""
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        inside = offsets < numel
        row = offsets // hidden
        z_at = offsets + row * hidden
        c_at = z_at + hidden
        keep = tl.load(keep_ptr + row % batch, mask=inside, other=0.0)
        dh = tl.load(dh_ptr + offsets, mask=inside, other=0.0)
        dh = (dh + tl.load(grad_h_ptr + offsets, mask=inside, other=0.0)) * keep
        z = tl.load(act_ptr + z_at, mask=inside, other=0.0)
        c = tl.load(act_ptr + c_at, mask=inside, other=0.0)
        h_prev = tl.load(h_prev_ptr + offsets, mask=inside, other=0.0)
        dc = dh * (1 - z)
        c_drop = c
        if HAS_DROP:
            drop = tl.load(drop_ptr + offsets, mask=inside, other=0.0)
            c_drop = c * drop
            dc = dc * drop
        dz = dh * (h_prev - c_drop)
        tl.store(grad_act_ptr + z_at, dz * z * (1 - z), mask=inside)
        tl.store(grad_act_ptr + c_at, tl.where(c > 0, dc, 0.0), mask=inside)
        tl.store(dh_ptr + offsets, dh * z, mask=inside)


def device_scope(x: torch.Tensor):
    """Make ``x``'s GPU the current one (Triton launches on the current device)."""
    return torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext()


class LiGRURecurrenceTriton(torch.autograd.Function):
    """Fused recurrence with Triton gate kernels, time-major like ``LiGRURecurrenceTorch``.

    Takes ``a`` [T, D, B, 2H] (direction 1 already reversed per sequence),
    ``u`` [D, H, 2H], ``mask`` [T, B] bool and ``drop`` [D, B, H] or None, all
    contiguous; returns [T, D, B, H], zero at padded frames.
    """

    @staticmethod
    def forward(ctx, a, u, mask, drop):  # noqa: D102
        num_steps, num_dirs, batch, _ = a.shape
        hidden = u.shape[1]
        numel = num_dirs * batch * hidden
        grid = (triton.cdiv(numel, BLOCK),)
        keep = mask.to(a.dtype)  # [T, B]
        hs = a.new_empty(num_steps, num_dirs, batch, hidden)
        act = torch.empty_like(a)  # a_t + h @ U, then (z, c) of every frame
        h = a.new_zeros(num_dirs, batch, hidden)
        with device_scope(a), torch.autocast(a.device.type, enabled=False):
            for t in range(num_steps):
                torch.baddbmm(a[t], h, u, out=act[t])
                forward_step_kernel[grid](act[t], h, h if drop is None else drop, keep[t], hs[t],
                                          numel, batch, hidden, HAS_DROP=drop is not None, BLOCK=BLOCK)
                h = hs[t]
        ctx.save_for_backward(u, keep, drop, hs, act)
        return hs

    @staticmethod
    def backward(ctx, grad_hs):  # noqa: D102
        u, keep, drop, hs, act = ctx.saved_tensors
        num_steps, num_dirs, batch, hidden = hs.shape
        numel = num_dirs * batch * hidden
        grid = (triton.cdiv(numel, BLOCK),)
        grad_hs = grad_hs.contiguous()
        grad_act = torch.empty_like(act)  # [T, D, B, 2H]
        u_t = u.transpose(1, 2)
        dh = hs.new_zeros(num_dirs, batch, hidden)
        zero = hs.new_zeros(num_dirs, batch, hidden)
        with device_scope(hs), torch.autocast(hs.device.type, enabled=False):
            for t in range(num_steps - 1, -1, -1):
                backward_step_kernel[grid](dh, grad_hs[t], hs[t - 1] if t > 0 else zero, act[t],
                                           dh if drop is None else drop, keep[t], grad_act[t],
                                           numel, batch, hidden, HAS_DROP=drop is not None, BLOCK=BLOCK)
                if t > 0:
                    dh.baddbmm_(grad_act[t], u_t)
            grad_u = recurrent_weight_grad(hs, grad_act)  # one matmul over all frames
        return grad_act, grad_u, None, None
