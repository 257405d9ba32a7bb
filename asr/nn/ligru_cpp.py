"""Builds (once, cached) and wraps the C++ CPU kernel of the fused LiGRU recurrence.

The extension is compiled with ``torch.utils.cpp_extension.load`` on first
use (about a minute on two cores) and cached under ``TORCH_EXTENSIONS_DIR``
(default ``~/.cache/torch_extensions``). If it cannot be built, a warning
says why and ``available()`` returns False, so callers use the slower
ATen-ops backend knowingly.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from types import ModuleType

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("csrc") / "ligru_cpu.cpp"


def compiler_flags() -> tuple[str, list[str]]:
    """Extension name and flags: AVX2/FMA builds (vectorised exp) where the CPU has them.

    The name carries the variant so caches built for different CPUs never mix.
    """
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        return "asr_ligru_cpu_avx2", ["-O3", "-mavx2", "-mfma", "-ffast-math"]
    return "asr_ligru_cpu", ["-O3"]


@functools.lru_cache(maxsize=1)
def load_extension() -> ModuleType | None:
    """Compile (or load from cache) the extension.

    Returns:
        The extension module, or None (with a logged warning) if the build failed.
    """
    from torch.utils import cpp_extension

    try:
        name, flags = compiler_flags()
        return cpp_extension.load(name=name, sources=[str(SOURCE)], extra_cflags=flags, verbose=False)
    except Exception as err:  # compiler missing, headers missing, ...: fall back, loudly
        lines = str(err).splitlines() or [""]
        reason = next((line for line in lines if "error" in line.lower()), lines[-1])
        log.warning("fused LiGRU C++ kernel could not be built (%s: %s); using the slower "
                    "ATen-ops backend", type(err).__name__, reason.strip())
        return None


def available() -> bool:
    """True if the C++ kernel is built (building it now if needed)."""
    return load_extension() is not None


class LiGRURecurrenceCpp(torch.autograd.Function):
    """Fused recurrence in the C++ kernel (CPU), on the layer's batch-first layout.

    Takes ``a`` [B, T, D * 2H], ``u`` [D, H, 2H], ``lengths`` [B] (int64, CPU)
    and ``drop`` [D, B, H] or None; returns [B, T, D * H] (see ``ligru_recurrence``).
    """

    @staticmethod
    def forward(ctx, a, u, lengths, drop):  # noqa: D102
        y, zs, cs = load_extension().forward(a, u, lengths, drop)
        ctx.save_for_backward(u, lengths, drop, y, zs, cs)
        return y

    @staticmethod
    def backward(ctx, grad_y):  # noqa: D102
        u, lengths, drop, y, zs, cs = ctx.saved_tensors
        grad_a, grad_u = load_extension().backward(grad_y.contiguous(), u, lengths, drop, y, zs, cs)
        return grad_a, grad_u, None, None
