"""asr-train: run a recipe end to end (stages land issue by issue)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig, OmegaConf

from asr.cli.common import CONFIG_DIR, report_user_errors

if TYPE_CHECKING:
    from asr.features.config import FeatureConfig
    from asr.hmm.pipeline import GmmPipelineConfig
    from asr.train.recipe import RecipeSettings

log = logging.getLogger("asr")


def settings_from_config(cfg: DictConfig) -> "RecipeSettings":
    """Plain settings from the composed config (the library never sees a DictConfig)."""
    # Imported here so that --help and --cfg stay fast (no torch import).
    from asr.features.config import FeatureConfig
    from asr.train.recipe import RecipeSettings

    feats = OmegaConf.to_container(cfg.features, resolve=True)
    kind = feats["kind"]
    return RecipeSettings(
        corpus_root=Path(cfg.data.root),
        exp_dir=Path(cfg.exp_dir),
        data_dir=Path(cfg.data.data_dir),
        train_set=cfg.data.train_set,
        dev_set=cfg.data.dev_set,
        test_sets=list(cfg.data.test_sets),
        features=fmllr_transforms(feats) if kind == "fmllr" else FeatureConfig.from_dict({**feats, "seed": cfg.seed}),
        features_kind=kind,
        task=cfg.task.name,
        alignment_stage=cfg.task.get("alignment_stage", "tri3"),
        gmm_decode=bool(cfg.task.get("gmm_decode", False)),
        gmm=gmm_config(cfg.task.get("gmm")),
        seed=int(cfg.seed),
        num_workers=int(cfg.num_workers),
        stop_stage=cfg.stop_stage,
    )


def gmm_config(sizes: DictConfig | None) -> "GmmPipelineConfig | None":
    """The GMM-HMM pipeline options of ``task.gmm`` (None: the pipeline's defaults)."""
    if sizes is None:
        return None
    from asr.hmm.pipeline import GmmPipelineConfig

    return GmmPipelineConfig.with_sizes(**OmegaConf.to_container(sizes, resolve=True))


def fmllr_transforms(feats: dict) -> "FeatureConfig":
    """``features=fmllr``: the CMVN/delta/splice options applied on top of the fMLLR frames."""
    from asr.features.config import TRANSFORM_FIELDS, FeatureConfig

    if feats.get("gmm_stage", "tri3") != "tri3":
        from asr.errors import AsrError

        raise AsrError(f"features.gmm_stage: fMLLR features come from tri3, not '{feats['gmm_stage']}'")
    return FeatureConfig(**{k: feats[k] for k in TRANSFORM_FIELDS if k in feats})


@hydra.main(version_base=None, config_path=CONFIG_DIR, config_name="train")
@report_user_errors
def main(cfg: DictConfig) -> None:
    from asr.train.recipe import run_recipe

    done = run_recipe(settings_from_config(cfg))
    log.info("recipe %s: completed up to stage '%s' in %s", cfg.recipe_name, done, cfg.exp_dir)


if __name__ == "__main__":
    main()
