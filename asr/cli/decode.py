"""asr-decode: re-decode and score a trained checkpoint (its run's stages are reused)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from asr.cli.common import hydra_app, report_user_errors

log = logging.getLogger("asr")


@hydra_app("decode")
@report_user_errors
def main(cfg: DictConfig) -> None:
    from asr.cli.train import settings_from_config
    from asr.recipe.redecode import decode_only, experiment_of, read_checkpoint, recipe_config

    checkpoint = Path(cfg.checkpoint)
    run = recipe_config(checkpoint, read_checkpoint(checkpoint))
    if cfg.data.test_sets is not None:
        run["data"]["test_sets"] = list(cfg.data.test_sets)
    run.setdefault("decode", {})
    for key, value in OmegaConf.to_container(cfg.decode).items():
        if value is not None:
            run["decode"][key] = value
    settings = settings_from_config(OmegaConf.create(run))
    settings.decode_dir = Path(cfg.out) if cfg.out is not None else experiment_of(checkpoint)
    results = decode_only(settings, checkpoint)
    log.info("asr-decode: results in %s", settings.decode_dir / "results.json")
    for name, r in results["test_sets"].items():
        print(f"{name}\tPER {r['per']}\tWER {r['wer']}")


if __name__ == "__main__":
    main()
