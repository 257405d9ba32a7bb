"""Shared fixtures: tiny mini-TIMIT corpora (espeak-ng only, and mixed) and data dirs per test session."""

from __future__ import annotations

import os
from pathlib import Path

# One intra-op thread: the tests are small, and on a shared 2-core machine OpenMP threads
# that spin-wait for a busy core made the GMM tests 5x slower. Set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mini_timit_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny mini-TIMIT corpus (LDC TIMIT layout), synthesised once per session."""
    from asr.data.mini_timit import synthesize_mini_timit

    root = tmp_path_factory.mktemp("mini_timit") / "corpus"
    synthesize_mini_timit(root, size="tiny", seed=0, num_workers=2)
    return root


@pytest.fixture(scope="session")
def mini_timit_mixed_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny mini-TIMIT with espeak-ng and Piper speakers in every split, and TEST_PIPER/."""
    from asr.data.mini_timit import synthesize_mini_timit

    root = tmp_path_factory.mktemp("mini_timit_mixed") / "mixed"
    synthesize_mini_timit(root, size="tiny", seed=0, num_workers=2, voices=("espeak", "piper"),
                          piper_share=0.5, test_sources=("piper",))
    return root


@pytest.fixture(scope="session")
def mini_timit_dirs(mini_timit_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Kaldi data dirs ``train``, ``dev``, ``test`` of the tiny corpus (and ``root``, the corpus)."""
    from asr.data.timit import SPLITS, prepare_timit

    out = tmp_path_factory.mktemp("mini_timit_data")
    prepare_timit(mini_timit_root, out)
    dirs = {split: out / split for split in SPLITS}
    dirs["root"] = mini_timit_root
    return dirs


@pytest.fixture(scope="session")
def mini_librispeech_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny mini-LibriSpeech (LibriSpeech layout, FLAC, lexicon.txt), synthesised once per session."""
    from asr.data.mini_librispeech import synthesize_mini_librispeech

    root = tmp_path_factory.mktemp("mini_librispeech") / "corpus"
    synthesize_mini_librispeech(root, size="tiny", seed=0, num_workers=2)
    return root
