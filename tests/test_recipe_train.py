"""The recipe's training stage on tiny mini-TIMIT: CTC from fbank through the CLI, hybrid on tri3 fMLLR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asr.features.config import FeatureConfig
from asr.nn.acoustic import AcousticModel
from asr.nn.spec import ModelSpec
from asr.recipe.run import run_recipe
from asr.recipe.settings import RecipeSettings
from asr.train.loop import TrainerConfig
from asr.train.optim import OptimConfig

BIN = Path(sys.executable).parent


def test_ctc_recipe_trains_from_the_cli(mini_timit_root: Path, tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    cmd = [str(BIN / "asr-train"), "recipe=timit_ligru_ctc", f"data.root={mini_timit_root}", f"exp_dir={exp}",
           "stop_stage=train", "model.num_layers=1", "model.hidden_size=24", "optim.epochs=2", "optim.lr=0.002",
           "train.progress=false", "num_workers=1", "features.num_mel_bins=23"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert not (exp / "gmm").exists()  # CTC on fbank needs no GMM stage
    lines = [json.loads(x) for x in (exp / "history.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2] and "impossible_utts" in lines[0]
    assert all(0.0 <= x["dev_err"] <= 100.0 for x in lines)
    state = torch.load(exp / "best.pt", weights_only=True)
    assert state["recipe"] == "timit_ligru_ctc" and state["task"]["name"] == "ctc"
    assert state["tokens"][0] == "<blk>" and len(state["tokens"]) == 49 == state["heads"]["ctc"]
    assert state["features"]["kind"] == "fbank" and state["features"]["options"]["num_mel_bins"] == 23
    assert Path(state["lang"]["path"]).is_dir()
    AcousticModel.from_description(state).load_state_dict(state["model"])
    log = (exp / "train.log").read_text()
    assert "[rank 0][asr.train.loop loop.py:" in log  # the run log names rank and file:line
    # Run again: training is complete and is not repeated.
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0 and "training already complete" in r.stdout + r.stderr


@pytest.mark.slow
def test_two_processes_under_torchrun_train_the_recipe_and_one_continues(mini_timit_root: Path, tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    args = ["recipe=timit_ligru_ctc", f"data.root={mini_timit_root}", f"exp_dir={exp}", "stop_stage=train",
            "model.num_layers=1", "model.hidden_size=16", "optim.lr=0.002", "train.progress=false",
            "num_workers=1", "train.device=cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29541",
           "-m", "asr.cli.train", *args, "optim.epochs=2"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lines = [json.loads(x) for x in (exp / "history.jsonl").read_text().splitlines()]
    assert [(x["epoch"], x["world_size"]) for x in lines] == [(1, 2), (2, 2)]  # one history, by rank 0
    log = (exp / "train.log").read_text()
    assert "[rank 1]" in log and "[rank 0]" in log
    state = torch.load(exp / "checkpoints" / "epoch_002.pt", weights_only=True)
    assert state["world_size"] == 2 and not any(k.startswith("module.") for k in state["model"])
    # One process loads the two-process checkpoint and continues.
    r = subprocess.run([str(BIN / "asr-train"), *args, "optim.epochs=3"], capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "written by 2 process(es)" in r.stdout + r.stderr
    lines = [json.loads(x) for x in (exp / "history.jsonl").read_text().splitlines()]
    assert [x["world_size"] for x in lines] == [2, 2, 1]


@pytest.mark.slow
def test_hybrid_recipe_trains_on_tri3_alignments_and_fmllr(mini_timit_root: Path, tmp_path: Path) -> None:
    from test_hmm_pipeline import _small_config  # the tiny corpus' GMM sizes

    s = RecipeSettings(corpus_root=mini_timit_root, exp_dir=tmp_path / "exp", data_dir=tmp_path / "exp" / "data",
                       features=FeatureConfig(cmvn="speaker_mean"), features_kind="fmllr", gmm=_small_config(),
                       stop_stage="train", recipe_name="timit_gru",
                       model=ModelSpec(cell="gru", num_layers=1, hidden_size=32),
                       optim=OptimConfig(lr=0.002, epochs=2), trainer=TrainerConfig(progress=False))
    assert run_recipe(s) == "train"
    state = torch.load(s.exp_dir / "best.pt", weights_only=True)
    num_pdfs = state["task"]["num_pdfs"]
    assert state["heads"] == {"pdf": num_pdfs, "phone": 48}
    assert state["priors"].shape == (num_pdfs,) and torch.isfinite(state["priors"]).all()
    assert torch.logsumexp(state["priors"], 0).abs() < 1e-4  # log priors of a distribution
    assert state["features"]["kind"] == "fmllr" and Path(state["features"]["gmm_dir"], "tri3", "final.mdl").is_file()
    assert state["alignments"]["stage"] == "tri3" and state["input_size"] == 40
    lines = [json.loads(x) for x in (s.exp_dir / "history.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and lines[-1]["dev_err"] < 100.0 and "dev_loss_mono" in lines[-1]

    # Targets realigned by that network (pytorch-kaldi's DNN realignment), for a second run.
    import dataclasses

    import kaldiio

    s2 = dataclasses.replace(s, exp_dir=tmp_path / "exp2", data_dir=tmp_path / "exp2" / "data",
                             targets=str(s.exp_dir))
    assert run_recipe(s2) == "train"
    for name in ("train", "dev"):
        new = dict(kaldiio.load_scp(str(s2.exp_dir / "realign" / name / "ali.scp")))
        assert new and all(int(v.max()) < num_pdfs for v in new.values())
    old = dict(kaldiio.load_scp(str(s.exp_dir / "gmm" / "tri3" / "ali.scp")))
    new = dict(kaldiio.load_scp(str(s2.exp_dir / "realign" / "train" / "ali.scp")))
    assert sorted(new) == sorted(old) and all(len(new[u]) == len(old[u]) for u in old)
    assert any((new[u] != old[u]).any() for u in old)  # the network moved some boundaries
    state2 = torch.load(s2.exp_dir / "best.pt", weights_only=True)
    assert state2["alignments"]["targets"] == "realign"
