"""The training loop: losses over valid frames, faults, resume after SIGKILL, checkpoints, DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from asr.errors import AsrError
from asr.features.loader import collate
from asr.nn.acoustic import AcousticModel
from asr.nn.spec import ModelSpec
from asr.train import checkpoint as ckpt
from asr.train.loop import TrainerConfig, run_training
from asr.train.optim import OptimConfig
from asr.train.tasks import CtcTask, HybridTask

sys.path.insert(0, str(Path(__file__).parent))
import train_job  # noqa: E402

JOB = Path(__file__).parent / "train_job.py"
SPEC = ModelSpec(cell="ligru", num_layers=2, hidden_size=12, bidirectional=True)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train_data")
    train_job.write_synthetic(out)
    return out


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent.parent)}


def _job(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, str(JOB), *args], capture_output=True, text=True, env=_env(), timeout=600)
    if check and r.returncode != 0:
        raise AssertionError(f"job failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return r


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


def test_hybrid_loss_is_frame_weighted_mean_of_utterances(synthetic: Path, tmp_path: Path) -> None:
    _, train, _ = train_job.datasets(synthetic, tmp_path / "store")
    task = HybridTask([0, 1, 1], ["a", "b"], 0.5)
    torch.manual_seed(0)
    model = AcousticModel(SPEC, 6, task.heads()).eval()
    items = [train[i] for i in range(5)]
    with torch.no_grad():
        batch = collate(items)
        whole = task.compute(model(batch.feats, batch.lengths), batch)
        alone = [task.compute(model(b.feats, b.lengths), b) for b in (collate([it]) for it in items)]
    frames = [r.stats["frames"] for r in alone]
    assert whole.stats["frames"] == sum(frames) == sum(len(it[2]) for it in items)
    expected = sum(r.loss.item() * n for r, n in zip(alone, frames)) / sum(frames)
    assert whole.loss.item() == pytest.approx(expected, rel=1e-5)
    assert whole.stats["errors"] == sum(r.stats["errors"] for r in alone)
    # The monophone head's target is the phone of the pdf target: pdfs 1 and 2 are phone "b".
    assert set(whole.stats) >= {"loss", "loss_mono", "errors", "err_total"}


def test_ctc_greedy_per_on_39_phones() -> None:
    tokens = ["<blk>", "aa", "ao", "sil", "cl"]
    task = CtcTask(tokens)
    # Frames: aa aa <blk> ao sil cl -> "aa ao sil cl" -> 39 set: aa aa sil sil
    best = torch.tensor([[1, 1, 0, 2, 3, 4]])
    logits = torch.nn.functional.one_hot(best, len(tokens)).float() * 10
    from asr.features.loader import Batch

    batch = Batch(["u"], torch.zeros(1, 6, 2), torch.tensor([6]), torch.tensor([[1, 3]]), torch.tensor([2]))
    assert task.greedy(logits, batch.lengths) == [["aa", "ao", "sil", "cl"]]
    errors, total = task.greedy_errors(logits, batch)
    assert (errors, total) == (2, 2)  # ref "aa sil" against hyp "aa aa sil sil": two insertions
    res = task.compute({"ctc": logits}, batch, score=True)
    assert np.isfinite(res.stats["loss"]) and res.stats["impossible"] == 0
    short = Batch(["u"], torch.zeros(1, 1, 2), torch.tensor([1]), torch.tensor([[1, 3]]), torch.tensor([2]))
    res = task.compute({"ctc": logits[:, :1]}, short)
    assert res.stats["impossible"] == 1 and res.loss.item() == 0.0


def test_training_writes_history_checkpoints_and_best(synthetic: Path, tmp_path: Path) -> None:
    _job(str(synthetic), str(tmp_path / "exp"), "3")
    lines = [json.loads(x) for x in (tmp_path / "exp" / "history.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2, 3]
    for x in lines:
        assert {"train_seconds", "train_frames", "train_loss", "dev_loss", "dev_err", "lr", "device", "threads",
                "load_average", "train_loss_mono", "dev_loss_mono", "bad_steps", "skipped_utts"} <= set(x)
        assert x["train_frames"] > 0 and 0 <= x["dev_err"] <= 100
    assert lines[-1]["dev_err"] < lines[0]["dev_err"]  # it learns
    assert sorted(ckpt.list_epoch_checkpoints(tmp_path / "exp")) == [1, 2, 3]
    best = min(lines, key=lambda x: x["dev_err"])["epoch"]
    state = torch.load(tmp_path / "exp" / "best.pt", weights_only=True)
    assert state["epoch"] == best
    # The checkpoint alone rebuilds the model: no config file at hand.
    model = AcousticModel.from_description(state)
    model.load_state_dict(state["model"])
    assert state["task"]["name"] == "hybrid" and state["versions"]["torch"] == torch.__version__
    assert (tmp_path / "exp" / "tb").is_dir() and any((tmp_path / "exp" / "tb").iterdir())
    # Run again: complete, nothing retrained.
    before = (tmp_path / "exp" / "history.jsonl").read_text()
    _job(str(synthetic), str(tmp_path / "exp"), "3")
    assert (tmp_path / "exp" / "history.jsonl").read_text() == before


def test_resume_after_sigkill_is_bit_identical(synthetic: Path, tmp_path: Path) -> None:
    _job(str(synthetic), str(tmp_path / "straight"), "3")
    killed = _job(str(synthetic), str(tmp_path / "resumed"), "3", "--kill-in-epoch", "2", check=False)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert sorted(ckpt.list_epoch_checkpoints(tmp_path / "resumed")) == [1]
    _job(str(synthetic), str(tmp_path / "resumed"), "3")
    a, b = _weights(tmp_path / "straight" / "checkpoints" / "epoch_003.pt"), \
        _weights(tmp_path / "resumed" / "checkpoints" / "epoch_003.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    hist = [json.loads(x)["epoch"] for x in (tmp_path / "resumed" / "history.jsonl").read_text().splitlines()]
    assert hist == [1, 2, 3]


def test_a_checkpoint_is_never_seen_half_written(synthetic: Path, tmp_path: Path) -> None:
    killed = _job(str(synthetic), str(tmp_path / "exp"), "3", "--kill-in-save", "2", check=False)
    assert killed.returncode == -9, killed.stderr[-2000:]
    found = ckpt.list_epoch_checkpoints(tmp_path / "exp")
    assert sorted(found) == [1]  # epoch 2's file never appeared; its half-written temp file is ignored
    assert any(p.name.startswith(".epoch_002.pt.tmp") for p in (tmp_path / "exp" / "checkpoints").iterdir())
    ckpt.load_checkpoint(found[1])
    _job(str(synthetic), str(tmp_path / "exp"), "3")  # resumes from epoch 1
    assert sorted(ckpt.list_epoch_checkpoints(tmp_path / "exp")) == [1, 2, 3]


def _nan_store_sets(synthetic: Path, tmp_path: Path, bad: int, first: int = 8):
    """The synthetic datasets with the features of ``bad`` training utterances near float32's
    largest value: finite (the store accepts them), but the network's sums overflow."""
    data = tmp_path / "nan_data"
    shutil.copytree(synthetic, data)
    import kaldiio

    mats = dict(kaldiio.load_scp(str(data / "feats.scp")))
    mats = {u: np.array(m) for u, m in mats.items()}
    for utt in sorted(mats)[first:first + bad]:  # from 8 on: training utterances; below: dev
        mats[utt][:] = 3e38
    kaldiio.save_ark(str(data / "feats.ark"), mats, scp=str(data / "feats.scp"))
    return train_job.datasets(data, tmp_path / "nan_store")


def test_non_finite_loss_is_skipped_and_counted(synthetic: Path, tmp_path: Path) -> None:
    store, train, dev = _nan_store_sets(synthetic, tmp_path, bad=1)
    r = run_training(SPEC, store.dim, HybridTask([0, 1, 1], ["a", "b"]), OptimConfig(lr=0.004, epochs=2, batch_size=6),
                     train, dev, tmp_path / "exp", {}, TrainerConfig(progress=False, max_bad_steps=2))
    lines = [json.loads(x) for x in (tmp_path / "exp" / "history.jsonl").read_text().splitlines()]
    assert [x["bad_steps"] for x in lines] == [1, 1] and r.epochs == 2
    state = torch.load(tmp_path / "exp" / "best.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_a_dev_utterance_with_non_finite_output_is_named_and_counted(synthetic: Path, tmp_path: Path) -> None:
    store, train, dev = _nan_store_sets(synthetic, tmp_path, bad=1, first=0)
    run_training(SPEC, store.dim, HybridTask([0, 1, 1], ["a", "b"]), OptimConfig(lr=0.004, epochs=1, batch_size=6),
                 train, dev, tmp_path / "exp", {}, TrainerConfig(progress=False))
    line = json.loads((tmp_path / "exp" / "history.jsonl").read_text())
    assert line["dev_nonfinite_utts"] == 1 and np.isfinite(line["dev_loss"]) and line["bad_steps"] == 0
    # Its frames count as errors: the error rate is at least their share of the dev frames.
    frames = dict(zip(dev.utts, dev.num_frames))
    assert line["dev_err"] >= 100.0 * frames[dev.utts[0]] / sum(dev.num_frames) - 1e-9


def test_non_finite_steps_in_a_row_stop_training(synthetic: Path, tmp_path: Path) -> None:
    store, train, dev = _nan_store_sets(synthetic, tmp_path, bad=40)  # every training utterance
    with pytest.raises(AsrError, match=r"^epoch 1, batch 3: 3 non-finite losses or gradients in a row"):
        run_training(SPEC, store.dim, HybridTask([0, 1, 1], ["a", "b"]), OptimConfig(lr=0.004, epochs=2, batch_size=6),
                     train, dev, tmp_path / "exp", {}, TrainerConfig(progress=False, max_bad_steps=3))


def test_utterance_without_alignment_is_skipped_and_counted(synthetic: Path, tmp_path: Path) -> None:
    from asr.features import FeatureDataset

    store, train, dev = train_job.datasets(synthetic, tmp_path / "store")
    labels = json.loads((synthetic / "labels.json").read_text())
    missing = train.utts[0]
    del labels[missing]
    labels[train.utts[1]] = labels[train.utts[1]][:-5]  # 5 frames short: beyond the trim of 2
    train = FeatureDataset(store, alignments=labels, utts=sorted(json.loads((synthetic / "labels.json").read_text()))[8:])
    assert [u for u, _ in train.skipped] == [missing, sorted(labels)[8]] or len(train.skipped) == 2
    run_training(SPEC, store.dim, HybridTask([0, 1, 1], ["a", "b"]), OptimConfig(lr=0.004, epochs=1, batch_size=6),
                 train, dev, tmp_path / "exp", {}, TrainerConfig(progress=False))
    line = json.loads((tmp_path / "exp" / "history.jsonl").read_text())
    assert line["skipped_utts"] == 2
    assert line["train_frames"] == sum(train.num_frames)


def test_resume_false_moves_the_old_run_aside(synthetic: Path, tmp_path: Path) -> None:
    store, train, dev = train_job.datasets(synthetic, tmp_path / "store")
    args = (SPEC, store.dim, HybridTask([0, 1, 1], ["a", "b"]), OptimConfig(lr=0.004, epochs=1, batch_size=6),
            train, dev, tmp_path / "exp", {})
    run_training(*args, TrainerConfig(progress=False))
    other = ModelSpec(cell="gru", num_layers=1, hidden_size=8)
    with pytest.raises(AsrError, match="model_spec differs.*resume=false"):
        run_training(other, *args[1:], TrainerConfig(progress=False))
    run_training(other, *args[1:], TrainerConfig(progress=False, resume=False))
    moved = list((tmp_path / "exp" / "previous").iterdir())
    assert len(moved) == 1 and (moved[0] / "checkpoints" / "epoch_001.pt").is_file()
    assert torch.load(tmp_path / "exp" / "best.pt", weights_only=True)["model_spec"]["cell"] == "gru"


@pytest.mark.slow
def test_two_processes_under_torchrun_then_one_continues(synthetic: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533",
           str(JOB), str(synthetic), str(tmp_path / "exp"), "2"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [json.loads(x) for x in (tmp_path / "exp" / "history.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2] and all(x["world_size"] == 2 for x in lines)
    # Both ranks saw all 40 training utterances between them (batches padded to equal counts).
    assert lines[0]["train_frames"] >= sum(train_job.datasets(synthetic, tmp_path / "s")[1].num_frames)
    state = torch.load(tmp_path / "exp" / "checkpoints" / "epoch_002.pt", weights_only=True)
    assert state["world_size"] == 2 and not any(k.startswith("module.") for k in state["model"])
    one = _job(str(synthetic), str(tmp_path / "exp"), "3")  # a single process continues
    assert "written by 2 process(es)" in one.stderr
    lines = [json.loads(x) for x in (tmp_path / "exp" / "history.jsonl").read_text().splitlines()]
    assert [x["world_size"] for x in lines] == [2, 2, 1]
