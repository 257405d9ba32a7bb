"""A long synthetic recording and the peak resident memory of ``asr-transcribe`` on it.

The recording imitates speech for the energy segmenter: bursts of noise 0.4 to 3 s long
(the "words", at varying level) separated by pauses of 0.15 to 0.8 s of a quiet noise floor,
so that every 30 s window holds pauses. The tiny model of ``catalogue.py`` (trained on
noise) transcribes it: the words are meaningless, the memory and the time are what count.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

BIN = Path(sys.executable).parent
SR = 16000


def write_long_audio(path: Path, seconds: float, seed: int = 0) -> int:
    """Write a ``seconds``-long 16 kHz 16-bit WAV of noise bursts and pauses; returns its samples.

    Written block by block, so that making a 30-minute file needs no more memory than one block.
    """
    rng = np.random.default_rng(seed)
    total = int(seconds * SR)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = 0
    with sf.SoundFile(str(path), "w", samplerate=SR, channels=1, subtype="PCM_16", format="WAV") as f:
        while done < total:
            burst = int(rng.uniform(0.4, 3.0) * SR)
            pause = int(rng.uniform(0.15, 0.8) * SR)
            block = np.concatenate([rng.uniform(0.05, 0.3) * rng.standard_normal(burst),
                                    0.002 * rng.standard_normal(pause)])[:total - done]
            f.write(block.astype(np.float32))
            done += len(block)
    return total


@dataclass
class Run:
    """One ``asr-transcribe`` run: exit status, its output, seconds, peak RSS in bytes."""

    rc: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_bytes: int


def transcribe_peak_rss(checkpoint: Path, audio: Path, work: Path, *extra: str, timeout: float = 1200) -> Run:
    """Run ``asr-transcribe checkpoint=... audio=...`` and measure its own peak RSS
    (``os.wait4``'s rusage of that one child: ``ru_maxrss``, kB on Linux)."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["OMP_NUM_THREADS"] = "1"
    out, err = work / "transcribe.out", work / "transcribe.err"
    start = time.perf_counter()
    with open(out, "w") as fo, open(err, "w") as fe:
        p = subprocess.Popen([str(BIN / "asr-transcribe"), f"checkpoint={checkpoint}", f"audio={audio}", *extra],
                             stdout=fo, stderr=fe, env=env, cwd=work)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                p.kill()
                pid, status, usage = os.wait4(p.pid, 0)
                break
            time.sleep(0.2)
    p.returncode = os.waitstatus_to_exitcode(status)  # (reaped here: keep Popen from waiting again)
    return Run(p.returncode, out.read_text(), err.read_text(), time.perf_counter() - start,
               usage.ru_maxrss * 1024)
