"""asr-train: run a recipe end to end (stages land issue by issue)."""

from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from asr.cli.common import hydra_app, report_user_errors
from asr.errors import AsrError

if TYPE_CHECKING:
    from asr.decode.nn_decode import NetworkDecodeConfig
    from asr.features.config import FeatureConfig
    from asr.nn.spec import ModelSpec
    from asr.recipe.settings import RecipeSettings

log = logging.getLogger("asr")


def settings_from_config(cfg: DictConfig) -> "RecipeSettings":
    """Plain settings from the composed config (the library never sees a DictConfig).

    Each group goes whole to the object that reads it; the keys and their types were
    checked by the schemas of :mod:`asr.recipe.schema` when Hydra composed ``cfg``.
    """
    # Imported here so that --help and --cfg stay fast (no torch import).
    from asr.decode.gmm_decode import GmmDecodeConfig
    from asr.hmm.pipeline import GmmPipelineConfig
    from asr.recipe.settings import RecipeSettings
    from asr.train.loop import TrainerConfig
    from asr.train.optim import OptimConfig

    c = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    data, feats, task = c["data"], c["features"], c["task"]
    # Absolute paths, so that the copy recorded in checkpoints finds the run from anywhere.
    c["exp_dir"] = str(Path(c["exp_dir"]).absolute())
    data["root"], data["data_dir"] = str(Path(data["root"]).absolute()), str(Path(data["data_dir"]).absolute())
    if c["cache_dir"] is not None:
        c["cache_dir"] = str(Path(c["cache_dir"]).absolute())
    if data["name"] not in ("timit", "librispeech"):
        raise AsrError(f"data.name: '{data['name']}' is not timit or librispeech (the corpus layouts there are)")
    if data.get("lexicon") is not None:
        data["lexicon"] = str(Path(data["lexicon"]).absolute())
    return RecipeSettings(
        corpus_root=Path(data["root"]),
        exp_dir=Path(c["exp_dir"]),
        data_dir=Path(data["data_dir"]),
        train_set=data["train_set"],
        dev_set=data["dev_set"],
        test_sets=data["test_sets"],
        features=feature_config(feats),
        features_kind=feats["kind"],
        task=task["name"],
        alignment_stage=task.get("alignment_stage", "tri3"),  # ctc: the stage fMLLR features need
        gmm_decode=task["gmm_decode"],
        gmm=GmmPipelineConfig.with_sizes(**task["gmm"]),
        gmm_decoding=GmmDecodeConfig(**{**task["gmm_decoding"],
                                        "acoustic_scales": tuple(task["gmm_decoding"]["acoustic_scales"])}),
        model=model_spec(c["model"]),
        optim=OptimConfig.from_dict(c["optim"]),
        trainer=TrainerConfig(**c["train"], seed=c["seed"]),
        recipe_name=c["recipe_name"],
        mono_weight=task.get("mono_weight", 1.0),
        prior_floor=task.get("prior_floor", 1e-8),
        targets=task.get("targets"),
        seed=c["seed"],
        num_workers=c["num_workers"],
        stop_stage=c["stop_stage"],
        cache_dir=Path(c["cache_dir"]) if c["cache_dir"] is not None else None,
        decoding=decode_config(c.get("decode", {})),
        config=c,
        multi_condition=list(data.get("multi_condition", [])),
        gmm_decode_stages=task.get("gmm_decode_stages"),
        allow_pipes=bool(data.get("allow_pipes", False)),  # absent from older checkpoints' configs
        corpus=data["name"],
        lexicon=Path(data["lexicon"]) if data.get("lexicon") is not None else None,
        units=task.get("units", "phones"),
        bpe_vocab_size=int(task.get("bpe_vocab_size", 500)),
    )


def decode_config(d: dict) -> "NetworkDecodeConfig":
    """The ``decode`` block as a :class:`NetworkDecodeConfig` (lists become tuples)."""
    from asr.decode.nn_decode import NetworkDecodeConfig

    return NetworkDecodeConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def model_spec(model: dict) -> "ModelSpec":
    """The ``model`` group as a :class:`ModelSpec`; a cell option the cell does not take names
    the way to switch cells (each cell's preset carries its own options)."""
    from asr.nn.spec import ModelSpec

    try:
        return ModelSpec.from_dict(model)
    except AsrError as e:
        raise AsrError(f"{e} (to change the cell, choose its preset: model={model.get('cell')})") from None


def feature_config(feats: dict) -> "FeatureConfig":
    """The ``features`` group as a :class:`FeatureConfig`; for ``features=fmllr``, the
    CMVN/delta/splice options applied on top of the tri3 fMLLR frames."""
    from asr.features.config import TRANSFORM_FIELDS, FeatureConfig

    if feats["kind"] != "fmllr":
        return FeatureConfig.from_dict(feats)
    if feats["gmm_stage"] != "tri3":
        raise AsrError(f"features.gmm_stage: fMLLR features come from tri3 (SAT), not '{feats['gmm_stage']}'")
    return FeatureConfig(**{k: feats[k] for k in TRANSFORM_FIELDS if k in feats})  # (older configs lack some)


def _sweep_job_folders(cfg: DictConfig) -> None:
    """Under ``-m`` (a sweep) every job trains in its own folder, Hydra's job folder
    (``hydra.sweep.dir``/``subdir``), and the jobs share the stages that do not depend on the
    network through ``<sweep dir>/cache`` unless ``cache_dir`` is set."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return
    if multiprocessing.get_start_method(allow_none=True) not in (None, "fork", "spawn", "forkserver"):
        # A launcher's worker (joblib's loky) sets a start method of its own, which the processes
        # our stages spawn would inherit and fail to start with ("cannot find context for 'loky'").
        multiprocessing.set_start_method("spawn", force=True)
    cfg.exp_dir = str(Path(hc.runtime.output_dir).absolute())
    if cfg.cache_dir is None:
        cfg.cache_dir = str(Path(hc.sweep.dir).absolute() / "cache")


@hydra_app("train")
@report_user_errors
def main(cfg: DictConfig) -> None:
    _sweep_job_folders(cfg)
    settings = settings_from_config(cfg)
    from asr.recipe.run import run_recipe

    done = run_recipe(settings)
    log.info("recipe %s: completed up to stage '%s' in %s", cfg.recipe_name, done, cfg.exp_dir)


if __name__ == "__main__":
    main()
