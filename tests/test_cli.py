"""The command-line entry points: help, config composition, and one-line user errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RECIPES = sorted(p.stem for p in (CONFIGS / "recipe").glob("*.yaml"))


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"asr.cli.{module}", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("module", ["prepare", "train", "decode", "compare", "transcribe"])
def test_every_command_has_help(module: str) -> None:
    res = _run(module, "--help")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip()


def test_recipes_cover_every_cell_and_task() -> None:
    cells = ["mlp", "rnn", "lstm", "gru", "ligru"]
    assert set(RECIPES) >= {f"timit_{c}{t}" for c in cells for t in ("", "_ctc")}


@pytest.mark.parametrize("recipe", ["timit_ligru", "timit_gru_ctc"])
def test_recipe_composes_and_command_line_overrides_win(recipe: str) -> None:
    res = _run("train", f"recipe={recipe}", "features=mfcc", "model.hidden_size=64", "--cfg", "job")
    assert res.returncode == 0, res.stderr
    cfg = yaml.safe_load(res.stdout)
    assert cfg["recipe_name"] == recipe
    assert cfg["model"]["cell"] == recipe.split("_")[1]
    assert cfg["model"]["hidden_size"] == 64
    assert cfg["features"]["kind"] == "mfcc"
    assert cfg["task"]["name"] == ("ctc" if recipe.endswith("_ctc") else "hybrid")


def test_unknown_key_fails_with_hydra_message_not_traceback() -> None:
    res = _run("train", "recipe=timit_ligru", "model.no_such_key=1", "--cfg", "job")
    assert res.returncode == 1
    assert "Key 'no_such_key' is not in struct" in res.stderr
    assert "Traceback" not in res.stderr


def test_missing_required_value_is_one_line() -> None:
    res = _run("prepare", "corpus=timit", "out=/tmp/unused")
    assert res.returncode == 1
    assert res.stderr.strip() == "error: missing required value 'corpus.root': set it on the command line, e.g. corpus.root=..."


def test_missing_corpus_names_the_path_and_override(tmp_path: Path) -> None:
    res = _run("prepare", "corpus=timit", f"corpus.root={tmp_path}/nowhere", f"out={tmp_path}/out")
    assert res.returncode == 1
    line = res.stderr.strip()
    assert "\n" not in line
    assert f"{tmp_path}/nowhere: TIMIT corpus directory not found; set corpus.root=" in line
    assert "mini_timit" in line


def test_prepare_mini_timit_tiny_is_byte_identical_across_runs(tmp_path: Path) -> None:
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        res = _run("prepare", "corpus=mini_timit", "corpus.size=tiny", "corpus.seed=3", f"out={out}")
        assert res.returncode == 0, res.stderr
        assert "train:" in res.stdout and "skipped utterances: 0" in res.stdout

    def contents(root: Path) -> dict[str, bytes]:
        # wav.scp and phn.scp hold absolute paths: compare them relative to the corpus root.
        return {
            str(p.relative_to(root)): p.read_bytes().replace(str(root).encode(), b"ROOT")
            for p in sorted(root.rglob("*")) if p.is_file()
        }

    a, b = contents(outs[0]), contents(outs[1])
    assert any(k.endswith(".WAV") for k in a) and "data/train/wav.scp" in a
    assert a == b


def test_settings_from_config_carry_gmm_sizes_and_fmllr_transforms() -> None:
    from hydra import compose, initialize_config_dir

    from asr.cli.common import CONFIG_DIR
    from asr.cli.train import settings_from_config

    with initialize_config_dir(config_dir=str(Path(CONFIG_DIR).absolute()), version_base=None):
        cfg = compose("train", overrides=["recipe=timit_ligru", "data.root=/nowhere", "task.gmm.leaves=500",
                                          "task.gmm.gauss=3000", "features.cmvn=speaker_meanvar"])
    s = settings_from_config(cfg)
    assert s.features_kind == "fmllr" and s.task == "hybrid" and s.gmm_decode
    assert s.features.cmvn == "speaker_meanvar"
    assert s.gmm.tri1_tree.max_leaves == 500 and s.gmm.tri3.total_gauss == 3000 and s.gmm.mono.total_gauss == 1000
