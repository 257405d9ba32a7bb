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
EXTRA_CFLAGS = ["-O3"]


@functools.lru_cache(maxsize=1)
def load_extension() -> ModuleType | None:
    """Compile (or load from cache) the extension.

    Returns:
        The extension module, or None (with a logged warning) if the build failed.
    """
    from torch.utils import cpp_extension

    try:
        return cpp_extension.load(name="asr_ligru_cpu", sources=[str(SOURCE)],
                                  extra_cflags=EXTRA_CFLAGS, verbose=False)
    except Exception as err:  # compiler missing, headers missing, ...: fall back, loudly
        log.warning("fused LiGRU C++ kernel could not be built (%s: %s); using the slower "
                    "ATen-ops backend", type(err).__name__, str(err).splitlines()[-1:] or "")
        return None


def available() -> bool:
    """True if the C++ kernel is built (building it now if needed)."""
    return load_extension() is not None


class LiGRURecurrenceCpp(torch.autograd.Function):
    """Fused recurrence running in the C++ kernel (CPU); see ``ligru_recurrence``."""

    @staticmethod
    def forward(ctx, a, u, mask, drop):  # noqa: D102
        ext = load_extension()
        keep = mask.to(a.dtype).contiguous()
        hs, zs, cs = ext.forward(a, u, keep, drop)
        ctx.save_for_backward(u, keep, drop, hs, zs, cs)
        return hs

    @staticmethod
    def backward(ctx, grad_hs):  # noqa: D102
        u, keep, drop, hs, zs, cs = ctx.saved_tensors
        grad_a, grad_u = load_extension().backward(grad_hs.contiguous(), u, keep, drop, hs, zs, cs)
        return grad_a, grad_u, None, None
