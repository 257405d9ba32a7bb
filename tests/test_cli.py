"""The command-line entry points: help, config composition and schemas, and one-line user errors."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RECIPES = sorted(p.stem for p in (CONFIGS / "recipe").glob("*.yaml"))
GROUPS = ("data", "features", "model", "task", "optim")
OPTIONS = {g: sorted(p.stem for p in (CONFIGS / g).glob("*.yaml")) for g in GROUPS}
CELLS = ["mlp", "rnn", "lstm", "gru", "ligru", "sligru", "mgu"]
BASE = ["data.root=/nowhere"]


def _run(module: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"asr.cli.{module}", *args], capture_output=True, text=True, timeout=120,
        cwd=cwd,
    )


def _compose(*overrides: str, hydra_config: bool = False):
    from hydra import compose, initialize_config_dir

    from asr.cli.common import CONFIG_DIR
    from asr.recipe.schema import register

    register()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        return compose("train", overrides=list(overrides), return_hydra_config=hydra_config)


def _settings(*overrides: str):
    from asr.cli.train import settings_from_config

    return settings_from_config(_compose(*BASE, *overrides))


# ---------------------------------------------------------------------------- commands


@pytest.mark.parametrize("module", ["prepare", "train", "decode", "compare", "transcribe"])
def test_every_command_has_help(module: str) -> None:
    res = _run(module, "--help")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip()


def test_configs_are_found_in_the_repository() -> None:
    from asr.cli.common import CONFIG_DIR

    assert Path(CONFIG_DIR).resolve() == CONFIGS.resolve()


def test_cli_import_stays_light() -> None:
    """--help and --cfg compose the config without importing torch."""
    code = "import sys, asr.cli.train, asr.recipe.schema; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "False", res.stderr


# ---------------------------------------------------------------------------- composition


def test_recipes_cover_every_cell_and_task() -> None:
    assert set(RECIPES) == {f"{corpus}_{c}{t}" for corpus in ("timit", "librispeech") for c in CELLS
                            for t in ("", "_ctc")}
    assert set(OPTIONS["model"]) == set(CELLS)
    assert set(OPTIONS["optim"]) == {"rmsprop", "sgd", "adam"}


@pytest.mark.parametrize("recipe", ["timit_ligru", "timit_gru_ctc", "timit_sligru", "timit_mgu_ctc"])
def test_recipe_composes_and_command_line_overrides_win(recipe: str) -> None:
    res = _run("train", f"recipe={recipe}", "features=mfcc", "model.hidden_size=64", "--cfg", "job")
    assert res.returncode == 0, res.stderr
    cfg = yaml.safe_load(res.stdout)
    assert cfg["recipe_name"] == recipe
    assert cfg["model"]["cell"] == recipe.split("_")[1]
    assert cfg["model"]["hidden_size"] == 64
    assert cfg["features"]["kind"] == "mfcc"
    assert cfg["task"]["name"] == ("ctc" if recipe.endswith("_ctc") else "hybrid")


@pytest.mark.parametrize("recipe", ["librispeech_ligru_ctc", "librispeech_lstm_ctc", "librispeech_ligru"])
def test_librispeech_recipes_compose_with_the_cpu_preset(recipe: str) -> None:
    res = _run("train", f"recipe={recipe}", "preset=cpu", "data.root=/x", "--cfg", "job")
    assert res.returncode == 0, res.stderr
    cfg = yaml.safe_load(res.stdout)
    assert cfg["data"]["name"] == "librispeech" and cfg["data"]["train_set"] == "train_clean_100"
    assert cfg["data"]["dev_set"] == "dev_clean" and cfg["data"]["lexicon"] is None
    assert cfg["model"]["hidden_size"] == 160  # the preset's size
    if recipe.endswith("_ctc"):
        assert cfg["task"]["units"] == "bpe" and cfg["task"]["bpe_vocab_size"] == 40  # the preset's
        assert cfg["features"]["kind"] == "fbank"
    else:
        assert cfg["task"]["name"] == "hybrid" and cfg["features"]["kind"] == "fmllr"
    res = _run("train", f"recipe={recipe}", "--cfg", "job")  # without the preset: the recipe's size
    assert yaml.safe_load(res.stdout)["task"].get("bpe_vocab_size", 300) == 300
    res = _run("train", f"recipe={recipe}", "task.bpe_vocab_size=many", "--cfg", "job")
    assert res.returncode == 1 and "Traceback" not in res.stderr


def test_mistyped_recipe_fails_and_lists_the_recipes() -> None:
    res = _run("train", "recipe=timit_lgru", "data.root=/nowhere", "--cfg", "job")
    assert res.returncode != 0
    assert "recipe/timit_lgru" in res.stderr
    assert "timit_ligru" in res.stderr and "timit_mgu_ctc" in res.stderr
    assert "Traceback" not in res.stderr
    assert not res.stdout.strip()


def test_unknown_key_fails_with_hydra_message_not_traceback() -> None:
    res = _run("train", "recipe=timit_ligru", "model.no_such_key=1", "--cfg", "job")
    assert res.returncode == 1
    assert "Key 'no_such_key' not in 'LigruSchema'" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("override, key", [("model.hidden_size=abc", "model.hidden_size"),
                                           ("task.gmm.leaves=many", "task.gmm.leaves"),
                                           ("seed=abc", "seed")])
def test_wrong_type_fails_at_start(tmp_path: Path, override: str, key: str) -> None:
    """Without --cfg: the schema rejects the value while Hydra composes, before any work."""
    exp = tmp_path / "exp"
    res = _run("train", "recipe=timit_ligru", "data.root=/nowhere", f"exp_dir={exp}", override, cwd=tmp_path)
    assert res.returncode == 1
    assert "could not be converted to Integer" in res.stderr
    assert f"full_key: {key}" in res.stderr
    assert "Traceback" not in res.stderr
    assert not exp.exists() and list(tmp_path.iterdir()) == []


def test_missing_required_value_is_one_line() -> None:
    res = _run("prepare", "corpus=timit", "out=/tmp/unused")
    assert res.returncode == 1
    assert res.stderr.strip() == "error: missing required value 'corpus.root': set it on the command line, e.g. corpus.root=..."


def test_missing_data_root_is_one_line(tmp_path: Path) -> None:
    res = _run("train", "recipe=timit_ligru", f"exp_dir={tmp_path}/exp", cwd=tmp_path)
    assert res.returncode == 1
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("error: missing required value 'data.root': set it on the command line, e.g. data.root=...")
    assert "asr-prepare corpus=mini_timit" in line  # and the way to a corpus


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
        # A stage's done.json marker records when it finished: left out.
        return {
            str(p.relative_to(root)): p.read_bytes().replace(str(root).encode(), b"ROOT")
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "done.json"
        }

    a, b = contents(outs[0]), contents(outs[1])
    assert any(k.endswith(".WAV") for k in a) and "data/train/wav.scp" in a
    assert a == b


# ---------------------------------------------------------------------------- logging


def test_native_library_output_goes_to_the_log_file_only(tmp_path: Path) -> None:
    """train.yaml's hydra/job_logging=asr: console and log file, but asr.native to the file only."""
    probe = tmp_path / "probe.py"
    probe.write_text(textwrap.dedent("""
        import logging
        from asr.cli.common import hydra_app

        @hydra_app("train")
        def main(cfg):
            logging.getLogger("asr.native").info("native-line")
            logging.getLogger("asr").info("asr-line")

        main()
    """))
    exp = tmp_path / "exp"
    res = subprocess.run([sys.executable, str(probe), "data.root=/nowhere", f"exp_dir={exp}"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    console = res.stdout + res.stderr
    assert "asr-line" in console and "native-line" not in console
    log = (exp / "probe.log").read_text()
    assert "[asr probe.py:8][INFO] - asr-line" in log and "[asr.native probe.py:7][INFO] - native-line" in log


def test_kaldilm_lines_of_a_real_run_reach_the_log_file_not_the_terminal(mini_timit_root: Path,
                                                                           tmp_path: Path) -> None:
    """asr-train up to the lang folder (CTC on fbank needs no GMMs): kaldilm prints on
    every ARPA -> G conversion, straight to the process' file descriptors."""
    exp = tmp_path / "exp"
    res = _run("train", "recipe=timit_ligru_ctc", f"data.root={mini_timit_root}", f"exp_dir={exp}",
               "stop_stage=align", "num_workers=1", "features.num_mel_bins=23")
    assert res.returncode == 0, res.stderr
    console = res.stdout + res.stderr
    assert "lang: built" in console
    assert "Reading \\data\\ section" not in console and "[I]" not in console, console
    log = (exp / "train.log").read_text()
    assert "[asr.native " in log and "Reading \\data\\ section" in log
    assert (exp / "lang" / "G_words.fst").is_file() and (exp / "lang" / "tokens.txt").is_file()


# ---------------------------------------------------------------------------- settings


def test_settings_from_config_carry_gmm_sizes_and_fmllr_transforms() -> None:
    s = _settings("recipe=timit_ligru", "task.gmm.leaves=500", "task.gmm.gauss=3000",
                  "features.cmvn=speaker_meanvar")
    assert s.features_kind == "fmllr" and s.task == "hybrid" and s.gmm_decode
    assert s.features.cmvn == "speaker_meanvar"
    assert s.gmm.tri1_tree.max_leaves == 500 and s.gmm.tri3.total_gauss == 3000
    assert s.gmm.mono.total_gauss == 1000
    assert s.alignment_stage == "tri3"


def test_features_seed_defaults_to_the_recipe_seed_and_can_be_set() -> None:
    assert _settings("features=mfcc", "seed=5").features.seed == 5
    s = _settings("features=fbank", "seed=5", "features.seed=7")
    assert s.features.seed == 7 and s.seed == 5


def test_gmm_decoding_options_reach_the_settings() -> None:
    s = _settings("recipe=timit_gru", "task.gmm_decoding.acoustic_scales=[0.1,0.2]",
                  "task.gmm_decoding.beam=9")
    assert s.gmm_decoding.acoustic_scales == (0.1, 0.2)
    assert s.gmm_decoding.beam == 9.0 and s.gmm_decoding.max_active == 7000
    ctc = _settings("recipe=timit_gru_ctc", "features=fmllr", "task.gmm.leaves=300")
    assert ctc.task == "ctc" and ctc.alignment_stage == "tri3" and not ctc.gmm_decode
    assert ctc.gmm.tri2_tree.max_leaves == 300


@pytest.mark.parametrize("recipe", ["timit_ligru", "timit_ligru_ctc"])
def test_gmm_size_presets_are_one_group_option(recipe: str) -> None:
    default = _settings(f"recipe={recipe}")
    assert default.gmm.tri1_tree.max_leaves == 2500 and default.gmm.tri3.total_gauss == 15000
    small = _settings(f"recipe={recipe}", "task/gmm=mini_timit", "task.gmm.mono_gauss=800")
    assert small.gmm.tri1_tree.max_leaves == 500 and small.gmm.tri3.total_gauss == 3000
    assert small.gmm.mono.total_gauss == 800


@pytest.mark.parametrize("cell", CELLS)
def test_cpu_preset_is_one_option_sizing_every_cell_and_task(cell: str) -> None:
    full = _settings(f"recipe=timit_{cell}")
    hybrid = _settings(f"recipe=timit_{cell}", "preset=cpu")
    ctc = _settings(f"recipe=timit_{cell}_ctc", "preset=cpu")
    size = (4, 384) if cell == "mlp" else (3, 160)
    for s in (hybrid, ctc):
        assert s.model.cell == cell and (s.model.num_layers, s.model.hidden_size) == size
        assert s.gmm.tri1_tree.max_leaves == 500  # GMM sizes for one hour of speech
    assert (full.model.num_layers, full.model.hidden_size) != size and full.gmm.tri1_tree.max_leaves == 2500
    assert (hybrid.optim.lr, hybrid.optim.epochs, hybrid.optim.newbob_factor) == (0.0016, 8, 0.5)
    assert (ctc.optim.lr, ctc.optim.epochs, ctc.optim.newbob_factor) == (0.0004, 12, 1.0)
    # the preset's other cell options stay the cell's own (LiGRU's batch norm is not carried over)
    assert hybrid.model.dropout == full.model.dropout
    later = _settings(f"recipe=timit_{cell}", "preset=cpu", "model.hidden_size=64", "optim.epochs=2",
                      "task/gmm=mini_timit_tiny")
    assert later.model.hidden_size == 64 and later.optim.epochs == 2 and later.gmm.tri1_tree.max_leaves == 180


def test_multi_condition_and_gmm_decode_stages_reach_the_settings() -> None:
    s = _settings("recipe=timit_ligru", "data.multi_condition=[babble_snr5,reverb_t60_400]",
                  "task.gmm_decode_stages=[tri3]")
    assert s.multi_condition == ["babble_snr5", "reverb_t60_400"] and s.gmm_decode_stages == ["tri3"]
    assert s.train_copies == ["train_babble_snr5", "train_reverb_t60_400"]
    d = _settings("recipe=timit_ligru")
    assert d.multi_condition == [] and d.train_copies == [] and d.gmm_decode_stages is None


def test_fmllr_needs_tri3() -> None:
    from asr.errors import AsrError

    with pytest.raises(AsrError, match="features.gmm_stage: fMLLR features come from tri3"):
        _settings("features=fmllr", "features.gmm_stage=tri2")


@pytest.mark.parametrize("option", CELLS)
def test_every_model_option_builds_a_model_spec(option: str) -> None:
    spec = _settings(f"model={option}").model
    assert spec.cell == option
    if option == "mlp":
        assert (spec.splice_left, spec.splice_right) == (5, 5)
    else:
        assert spec.bidirectional and spec.hidden_size == 550


@pytest.mark.parametrize("option", ["rmsprop", "sgd", "adam"])
def test_every_optim_option_builds_an_optim_config(option: str) -> None:
    optim = _settings(f"optim={option}").optim
    assert optim.name == option
    if option == "adam":
        assert optim.lr == 0.001 and tuple(optim.betas) == (0.9, 0.999)


# ---------------------------------------------------------------------------- no dead keys


def _schema_keys(schema: type) -> dict:
    """Field name -> nested dict of field names (for dataclass-typed fields) or None."""
    hints = {f.name: f.type for f in dataclasses.fields(schema)}
    return {name: _schema_keys(t) if dataclasses.is_dataclass(t) else None for name, t in hints.items()}


def _config_keys(node: Any) -> dict | None:
    return {k: _config_keys(v) for k, v in node.items()} if isinstance(node, dict) else None


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_keys_are_exactly_the_schemas(recipe: str) -> None:
    """Every key a recipe composes is declared by its option's schema, and nothing more."""
    from omegaconf import OmegaConf

    from asr.recipe.schema import SCHEMAS, TrainSchema

    cfg = _compose(f"recipe={recipe}", *BASE, hydra_config=True)
    choices = cfg.hydra.runtime.choices
    plain = OmegaConf.to_container(cfg, resolve=False)
    del plain["hydra"]
    assert set(plain) == {f.name for f in dataclasses.fields(TrainSchema)}
    for group in GROUPS:
        option = choices[group]
        assert OmegaConf.get_type(cfg, group) is SCHEMAS[group][option]
        assert _config_keys(plain[group]) == _schema_keys(SCHEMAS[group][option]), (group, option)


def test_schemas_cover_every_option_and_match_their_consumers() -> None:
    from asr.decode.gmm_decode import GmmDecodeConfig
    from asr.features.config import TRANSFORM_FIELDS, FeatureConfig
    from asr.hmm.pipeline import GmmPipelineConfig
    from asr.recipe import schema

    assert {g: sorted(o) for g, o in schema.SCHEMAS.items()} == OPTIONS

    def names(cls: type) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    transforms = {"kind", *TRANSFORM_FIELDS}
    assert names(schema.ExtractedFeaturesSchema) == names(FeatureConfig) - {"scp"}
    assert names(schema.KaldiScpSchema) == transforms | {"scp"}
    assert names(schema.FmllrSchema) == transforms | {"gmm_stage"}
    assert names(schema.GmmDecodingSchema) == names(GmmDecodeConfig)
    sizes = inspect.signature(GmmPipelineConfig.with_sizes).parameters
    assert names(schema.GmmSizesSchema) == {n for n, p in sizes.items() if p.kind is not p.VAR_KEYWORD}


# Valid alternatives for string values; any other string gets a suffix (and must then
# change the settings or be rejected).
ALTERNATIVES = {"cmvn": "none", "window_type": "hamming", "impl": "reference", "nonlinearity": "tanh",
                "alignment_stage": "tri2", "stop_stage": "data", "front_mlp": [64], "head_mlp": [32],
                "device": "cpu", "amp": "none", "max_frames": 4000,
                "targets": "/some/exp", "multi_condition": ["babble_snr5"], "gmm_decode_stages": ["tri3"]}


def _perturbed(key: str, value: Any) -> Any:
    if key in ALTERNATIVES:
        return ALTERNATIVES[key]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 if value else 0.01
    if isinstance(value, list):
        return [_perturbed(key, v) for v in value][:2]
    return f"{value}_x"


def _leaves(node: dict, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in node.items():
        out += _leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [(f"{prefix}{k}", v)]
    return out


@pytest.mark.parametrize("group_option", [None] + [(g, o) for g in GROUPS for o in OPTIONS[g]],
                         ids=lambda go: "top" if go is None else f"{go[0]}={go[1]}")
def test_every_key_is_read(group_option: tuple[str, str] | None) -> None:
    """Changing any one key (of a group option, or of the top level) changes the settings
    ``settings_from_config`` builds, or makes it raise: no key is dead."""
    from omegaconf import OmegaConf

    from asr.cli.train import settings_from_config
    from asr.errors import AsrError

    overrides = [*BASE]
    if group_option is not None:
        overrides.append("=".join(group_option))
    if group_option == ("features", "kaldi_scp"):
        overrides.append("features.scp=/kaldi/feats.scp")
    cfg = _compose(*overrides)
    baseline = settings_from_config(cfg)
    values = OmegaConf.to_container(cfg, resolve=True)
    node = values if group_option is None else {group_option[0]: values[group_option[0]]}
    leaves = [(k, v) for k, v in _leaves(node) if group_option is not None or "." not in k]
    assert leaves
    dead = []
    for key, value in leaves:
        changed = copy.deepcopy(cfg)
        OmegaConf.update(changed, key, _perturbed(key.rsplit(".", 1)[-1], value), merge=False)
        try:
            if settings_from_config(changed) == baseline:
                dead.append(key)
        except AsrError:
            pass
    assert not dead, f"keys nothing reads: {dead}"
