"""Checkpoints: plain dicts of types and tensors, written atomically, read with ``weights_only=True``.

A checkpoint alone rebuilds the model (``model_spec``, ``input_size``, ``heads``), says how
its input was made (``features``), what it predicts (``task``, ``tokens`` or the lang folder
and its fingerprint, ``priors``), and where it comes from (``recipe``, ``versions``).
Resumable ones (``checkpoints/epoch_NNN.pt``) also hold the optimiser, the schedule, the
sampler's epoch and the RNG states.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import torch

import asr
from asr.errors import AsrError

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
_EPOCH_FILE = re.compile(r"^epoch_(\d{3,})\.pt$")


def epoch_path(exp_dir: Path, epoch: int) -> Path:
    return Path(exp_dir) / "checkpoints" / f"epoch_{epoch:03d}.pt"


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, flushed
    and fsynced, then renamed over ``path`` (and the folder fsynced), so a reader sees the
    old file or the new one, never half of one.

    Raises:
        AsrError: the file cannot be written (a full or read-only disk), naming it; the
            old file, if any, is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except (OSError, RuntimeError) as e:
        # torch.save turns a failed write into a RuntimeError of its zip writer, with the
        # OSError (full disk, file too large) as its context: that is the reason to give.
        cause = _os_error_in(e)
        if cause is None:
            raise
        raise AsrError(f"{path}: cannot write checkpoint ({cause.strerror or cause})") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def _os_error_in(e: BaseException | None) -> OSError | None:
    """``e`` or the first OSError it was raised from or while handling."""
    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, OSError):
            return e
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (no code runs from the file).

    Raises:
        AsrError: missing or unreadable file, or not a checkpoint of this toolkit.
    """
    path = Path(path)
    if not path.is_file():
        raise AsrError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for damaged or foreign files
        # One line: weights_only refusals run to a page of advice (a pickle that would run code lands here).
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise AsrError(f"{path}: cannot read checkpoint ({type(e).__name__}: {first})") from None
    if not isinstance(state, dict) or "model" not in state or "model_spec" not in state:
        raise AsrError(f"{path}: not a checkpoint of asr (no model / model_spec)")
    return state


def list_epoch_checkpoints(exp_dir: Path) -> dict[int, Path]:
    """epoch -> ``checkpoints/epoch_NNN.pt`` that exist (temporary files ignored)."""
    folder = Path(exp_dir) / "checkpoints"
    if not folder.is_dir():
        return {}
    out = {}
    for p in folder.iterdir():
        m = _EPOCH_FILE.match(p.name)
        if m:
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def git_commit() -> str | None:
    """The commit of the source tree asr runs from, or None outside a git checkout."""
    root = Path(asr.__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=10)
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str | None]:
    """Library versions and the git commit, as a checkpoint records them (looked up once per
    process, not at every checkpoint; callers get a copy to keep)."""
    import torchaudio

    # str(): torch's version is a str subclass that weights_only loading refuses.
    return {"asr": str(asr.__version__), "torch": str(torch.__version__),
            "torchaudio": str(torchaudio.__version__), "git_commit": git_commit()}


def rng_state() -> dict[str, Any]:
    """Torch's RNG states (CPU and every CUDA device): what dropout draws from."""
    out: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
        else:
            log.warning("checkpoint has %d CUDA RNG states for %d devices; CUDA RNGs not restored",
                        len(states), torch.cuda.device_count())
