"""Crash consistency: each long stage SIGKILLed at seeded points, rerun, equal to a run never
killed, and no partial output ever taken as complete (see ``crash.py``).

Kill points (seed 2026): the n-th call of the function a stage calls many times -- a
feature extraction per utterance, a GMM accumulation per iteration, an fMLLR estimate per
speaker, a training item read and a checkpoint write, the search of one utterance -- or
a seeded delay (mini-TIMIT synthesis, whose speakers run in worker interpreters; and the
real ``asr-train`` command).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from crash import ROOT, TIMING, compare_trees, run_child, run_group, unfinished_stages

RNG = random.Random(2026)
POINTS: dict[str, int] = {}  # stage -> kill points tried (the bench reads it)


def _points(stage: str, calls: int, k: int) -> list[int]:
    picks = sorted(RNG.sample(range(1, calls + 1), min(k, calls)))
    POINTS[stage] = POINTS.get(stage, 0) + len(picks)
    return picks


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("crash")


def _kill_rerun_compare(stage: str, args_of, straight: Path, base: Path, target: str, points: list[int],
                        out_of, marker_check) -> None:
    """For each point: kill at that call, check no unfinished stage is visible, rerun, compare."""
    for n in points:
        run = base / f"{stage}_{n}"
        args = args_of(run)
        rc = run_child(stage, args, run / "_w", kill={"target": target, "n": n})
        assert rc == -9, f"{stage}: call {n} of {target} never came (exit {rc})"
        marker_check(out_of(run))
        run_child(stage, args, run / "_w")
        problems = compare_trees(out_of(run), out_of(straight))
        assert not problems, f"{stage} killed at call {n} of {target}: {problems[:10]}"


def _no_unfinished(root: Path) -> None:
    """The stage folder itself is either absent or finished (done.json)."""
    assert not root.exists() or (root / "done.json").is_file(), f"{root} is visible without done.json"


def test_features_killed_and_rerun(mini_timit_dirs: dict, work: Path) -> None:
    train = str(mini_timit_dirs["train"])
    straight = work / "features_straight"
    run_child("features", {"data_dir": train, "out": str(straight / "st" / "feats")}, straight / "_w")
    num_utts = len((mini_timit_dirs["train"] / "utt2spk").read_text().splitlines())
    # (the same parent folder name: the stage's name in done.json is "<parent>/<folder>")
    _kill_rerun_compare("features", lambda r: {"data_dir": train, "out": str(r / "st" / "feats")}, straight, work,
                        "asr.features.store:extract_utterance", _points("features", num_utts, 5),
                        lambda r: r / "st" / "feats", _no_unfinished)


@pytest.fixture(scope="module")
def gmm_feats(mini_timit_dirs: dict, work: Path) -> str:
    out = work / "gmm_feats" / "train"
    run_child("features", {"data_dir": str(mini_timit_dirs["train"]), "out": str(out)}, work / "gmm_feats" / "_w")
    return str(out)


def test_gmm_iterations_killed_and_rerun(mini_timit_dirs: dict, gmm_feats: str, work: Path) -> None:
    train = str(mini_timit_dirs["train"])
    args = lambda r: {"train_dir": train, "feats": gmm_feats, "out": str(r / "gmm"), "stages": ["mono", "tri1"]}  # noqa: E731
    straight = work / "gmm_straight"
    run_child("gmm", args(straight), straight / "_w")
    calls = 6 + 4  # accumulations: mono's iterations, then tri1's (crash.gmm_config)

    def check(root: Path) -> None:
        assert unfinished_stages(root) == [], f"{root}: {unfinished_stages(root)} visible without done.json"

    _kill_rerun_compare("gmm", args, straight, work, "asr.hmm.trainer:accumulate_set",
                        _points("gmm", calls, 4), lambda r: r / "gmm", check)


def test_fmllr_killed_and_rerun(mini_timit_dirs: dict, gmm_feats: str, work: Path) -> None:
    """SAT's per-speaker fMLLR estimates in tri3 (mono..tri2 copied from an uninterrupted run)."""
    train = str(mini_timit_dirs["train"])
    stages = ["mono", "tri1", "tri2", "tri3"]
    straight = work / "fmllr_straight"
    run_child("gmm", {"train_dir": train, "feats": gmm_feats, "out": str(straight / "gmm"), "stages": stages},
              straight / "_w")
    speakers = len((mini_timit_dirs["train"] / "spk2utt").read_text().splitlines())
    for n in _points("fmllr", speakers * 2, 3):  # two fMLLR passes (crash.gmm_config fmllr_iters)
        run = work / f"fmllr_{n}"
        for st in stages[:3]:  # upstream stages as built: their done.json ids make tri3's inputs
            shutil.copytree(straight / "gmm" / st, run / "gmm" / st, symlinks=True)
        args = {"train_dir": train, "feats": gmm_feats, "out": str(run / "gmm"), "stages": stages}
        assert run_child("gmm", args, run / "_w", kill={"target": "asr.hmm.sat_training:estimate_fmllr", "n": n}) == -9
        assert unfinished_stages(run / "gmm") == []
        assert not (run / "gmm" / "tri3").exists()
        run_child("gmm", args, run / "_w")
        problems = compare_trees(run / "gmm" / "tri3", straight / "gmm" / "tri3")
        assert not problems, f"fMLLR killed at estimate {n}: {problems[:10]}"


@pytest.fixture(scope="module")
def synthetic(work: Path) -> str:
    sys.path.insert(0, str(ROOT / "tests"))
    import train_job

    out = work / "train_data"
    train_job.write_synthetic(out)
    return str(out)


def _checkpoints_load(exp: Path) -> None:
    """Every checkpoint a resume or asr-decode would see loads (none half-written)."""
    from asr.train import checkpoint as ckpt

    for path in [*ckpt.list_epoch_checkpoints(exp).values(), *([exp / "best.pt"] if (exp / "best.pt").exists() else [])]:
        ckpt.load_checkpoint(path)


@pytest.mark.parametrize("target,calls,k", [("asr.features.loader:FeatureDataset.__getitem__", 3 * 40, 3),
                                            ("asr.train.checkpoint:save_checkpoint", 4, 2)])
def test_training_killed_and_resumed_bit_identical(synthetic: str, work: Path, target: str, calls: int,
                                                   k: int) -> None:
    straight = work / "train_straight"
    if not (straight / "exp" / "history.jsonl").exists():
        run_child("train", {"data": synthetic, "exp": str(straight / "exp"), "epochs": 3}, straight / "_w")
    _kill_rerun_compare("train", lambda r: {"data": synthetic, "exp": str(r / "exp"), "epochs": 3}, straight,
                        work / target.split(":")[1], target, _points("train", calls, k), lambda r: r / "exp",
                        _checkpoints_load)


def test_decoding_killed_and_rerun(tiny_run: Path, work: Path) -> None:
    from asr.decode.network import load_network

    ckpt = torch.load(tiny_run / "best.pt", weights_only=True)
    bias = load_network(ckpt, str(tiny_run / "best.pt")).bias
    rng = np.random.default_rng(5)
    posts = {f"utt{i:02d}": torch.log_softmax(torch.from_numpy(rng.normal(size=(int(rng.integers(30, 80)), len(bias)))
                                                               .astype(np.float32) * 3), -1).numpy()
             for i in range(12)}
    npz = work / "posts.npz"
    np.savez(npz, **posts)
    args = lambda r: {"graph": str(tiny_run / "graph_ctc" / "phones.fst"), "post": str(npz), "out": str(r / "dec")}  # noqa: E731
    straight = work / "decode_straight"
    run_child("decode", args(straight), straight / "_w")
    _kill_rerun_compare("decode", args, straight, work, "asr.decode.grid:_decode_one", _points("decode", 12, 3),
                        lambda r: r / "dec", _no_unfinished)


def test_synthesis_killed_and_rerun(work: Path) -> None:
    """mini-TIMIT tiny: killed after seeded delays (workers with it) and just before its marker."""
    from asr.data.mini_timit import MARKER

    straight = work / "synth_straight"
    run_child("synthesis", {"out": str(straight / "corpus")}, straight / "_w")
    kills = [{"delay": round(RNG.uniform(1.0, 6.0), 2)} for _ in range(2)] + \
        [{"kill": {"target": "asr.data.mini_timit:_write_speaker_table", "n": 1}}]
    POINTS["synthesis"] = len(kills)
    for i, how in enumerate(kills):
        run = work / f"synth_{i}"
        args = {"out": str(run / "corpus")}
        run_child("synthesis", args, run / "_w", **how)
        corpus = run / "corpus"
        assert not corpus.exists() or (corpus / MARKER).is_file(), f"{corpus} visible without its marker"
        run_child("synthesis", args, run / "_w")
        problems = compare_trees(corpus, straight / "corpus")
        assert not problems, f"synthesis killed ({how}): {problems[:10]}"
        leftovers = [p.name for p in run.iterdir() if p.name.startswith(".corpus.tmp-")]
        assert leftovers == [], f"temp folders of the killed run left behind: {leftovers}"


# ---------------------------------------------------------------------------- the real command


@pytest.fixture(scope="module")
def tiny_corpus(work: Path) -> Path:
    from catalogue import build_timit

    return build_timit(work / "cmd_corpus", lexicon=True, train_speakers=4, sentences=2).paths["root"]


@pytest.fixture(scope="module")
def tiny_run(tiny_corpus: Path, work: Path) -> Path:
    """asr-train of the catalogue's tiny CTC model, never killed (all stages: decode included)."""
    exp = work / "cmd_straight"
    _train_cmd(tiny_corpus, exp, None, epochs=2, stop=None)
    return exp


def _train_cmd(root: Path, exp: Path, delay: float | None, epochs: int, stop: str | None = "train") -> int:
    from catalogue import BIN, TRAIN_CKPT

    argv = [str(BIN / TRAIN_CKPT[0]), *[a for a in TRAIN_CKPT[1:] if not a.startswith("optim.epochs")],
            f"optim.epochs={epochs}", f"data.root={root}", f"exp_dir={exp}", *([f"stop_stage={stop}"] if stop else [])]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["OMP_NUM_THREADS"] = "1"
    exp.parent.mkdir(parents=True, exist_ok=True)
    return run_group(argv, exp.parent, env, delay, 600, expect_killed=delay is not None)


def test_asr_train_killed_and_rerun(tiny_corpus: Path, tiny_run: Path, work: Path) -> None:
    """SIGKILL of the whole asr-train process group after seeded delays, then the same command again."""
    straight = work / "cmd_train_straight"
    _train_cmd(tiny_corpus, straight, None, epochs=2)
    delays = [round(RNG.uniform(2.0, 12.0), 2) for _ in range(2)]
    POINTS["asr-train"] = len(delays)
    for i, delay in enumerate(delays):
        exp = work / f"cmd_train_{i}"
        _train_cmd(tiny_corpus, exp, delay, epochs=2)
        _checkpoints_load(exp)
        for stage_root in (exp, exp / "features", exp / "data"):
            for name in unfinished_stages(stage_root):
                # Folders of the experiment that are stages (have ever had a done.json) must have it.
                assert not (stage_root / name / "feats.scp").exists(), f"{stage_root / name} lacks done.json"
        _train_cmd(tiny_corpus, exp, None, epochs=2)
        a = torch.load(exp / "best.pt", weights_only=True)["model"]
        b = torch.load(straight / "best.pt", weights_only=True)["model"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"best.pt differs (kill at {delay} s)"
        drop = lambda line: {k: v for k, v in json.loads(line).items() if k not in TIMING}  # noqa: E731
        ha = [drop(x) for x in (exp / "history.jsonl").read_text().splitlines()]
        hb = [drop(x) for x in (straight / "history.jsonl").read_text().splitlines()]
        assert ha == hb, f"history.jsonl differs (kill at {delay} s)"


def test_kill_points_counted() -> None:
    """At least 20 seeded kill points inside the stage functions (this module, run in order)."""
    inner = sum(v for k, v in POINTS.items() if k != "asr-train")
    Path(os.environ.get("CRASH_POINTS_FILE", os.devnull)).write_text(json.dumps(POINTS))
    assert inner >= 20, POINTS
