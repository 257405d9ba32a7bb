"""Helpers of the end-to-end tests: run a command (one OpenMP thread), read Kaldi text tables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run_ok(args: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    """Run ``args``; fail the test with the output's tail unless it exits 0."""
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=ENV)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def read_hyps(path: Path) -> dict[str, list[str]]:
    """A Kaldi text file (``utt token token ...``) as utt -> tokens."""
    return {line.split()[0]: line.split()[1:] for line in path.read_text().splitlines() if line.strip()}
