"""Every bad input of ``cases.yaml`` through its real command: exit status, message, skip
count, no traceback, no good utterance lost (see ``catalogue.py`` for the fields)."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalogue import build_good_checkpoint, check, load_cases, run_case, unshare_works

CASES = load_cases()


@pytest.fixture(scope="session")
def good_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CTC model (one epoch on a hand-made corpus, decoded once) for asr-transcribe."""
    return build_good_checkpoint(tmp_path_factory.mktemp("reliability_model"))


@pytest.fixture(scope="session")
def mount_namespace() -> str | None:
    """Why read-only and tmpfs cases cannot run here (None: they can)."""
    return unshare_works()


def _param(case):
    marks = [pytest.mark.xfail(reason=case.xfail, strict=True)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_bad_input(case, tmp_path: Path, request: pytest.FixtureRequest, mount_namespace: str | None) -> None:
    if ("readonly" in case.sandbox or "tmpfs" in case.sandbox) and mount_namespace is not None:
        pytest.skip(f"needs a private mount namespace: {mount_namespace}")
    ckpt = request.getfixturevalue("good_checkpoint") if case.needs_checkpoint else None
    out = run_case(case, tmp_path, ckpt)
    problems = check(case, out)
    assert not problems, f"{case.id}: {problems}\n--- output ---\n{out.output[-4000:]}"


def test_catalogue_covers_the_listed_inputs() -> None:
    """At least 40 cases, and every kind of bad input the reliability issue lists."""
    kinds = {c.kind for c in CASES}
    listed = {"truncated audio", "zero-length audio", "lying SPHERE header", "sample rate", "channels",
              "bit depth", "NaN or Inf audio", "NaN or Inf features", "silence", "duplicate utterance id",
              "transcript without audio", "audio without transcript", "unsorted data", "empty transcript",
              "out-of-vocabulary word", "phone outside the set", "non-ASCII transcript", "non-UTF-8 transcript",
              "too short", "read-only file system", "full disk", "shell pipeline", "crafted checkpoint"}
    assert len(CASES) >= 40
    assert listed <= kinds, listed - kinds
