"""``asr-decode``: decode and score a trained checkpoint with its run's stages.

The checkpoint records its run's resolved configuration (``config``; older checkpoints:
the run's ``.hydra/config.yaml``), so the data dirs, features, lang folder and GMM stages
it was trained with are found again (and reused: the reuse rule rebuilds nothing that is
unchanged). Test sets that were never built (a new contaminated copy) are built first;
then :func:`asr.recipe.decode.decode_checkpoint` tunes on dev and scores every set.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from asr.errors import AsrError
from asr.recipe.decode import decode_checkpoint
from asr.recipe.run import before_training
from asr.recipe.settings import RecipeSettings
from asr.recipe.train import read_token_table
from asr.stage import read_done, stage_cache
from asr.train.checkpoint import load_checkpoint

log = logging.getLogger(__name__)


def experiment_of(checkpoint: Path) -> Path:
    """The exp_dir of ``best.pt`` or ``checkpoints/epoch_NNN.pt``."""
    parent = checkpoint.resolve().parent
    return parent.parent if parent.name == "checkpoints" else parent


def read_checkpoint(checkpoint: str | Path) -> dict[str, Any]:
    """Load a checkpoint, or one line saying why it cannot be decoded."""
    path = Path(checkpoint)
    if not path.is_file():
        raise AsrError(f"checkpoint={path}: no such file (give a run's best.pt or checkpoints/epoch_NNN.pt)")
    try:
        ckpt = load_checkpoint(path)
    except Exception as e:  # noqa: BLE001 - unpickling raises anything; one line instead
        raise AsrError(f"checkpoint={path}: not a readable asr checkpoint ({type(e).__name__}: "
                       f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(ckpt, dict) or "task" not in ckpt or "model" not in ckpt:
        raise AsrError(f"checkpoint={path}: not an asr model checkpoint (no task or model entry)")
    fmt = ckpt.get("format", 1)
    if fmt != 1:
        raise AsrError(f"checkpoint={path}: checkpoint format {fmt}, this asr reads format 1; "
                       "decode it with the asr version that wrote it")
    return ckpt


def recipe_config(checkpoint: Path, ckpt: dict[str, Any]) -> dict[str, Any]:
    """The run's resolved configuration as plain values."""
    cfg = ckpt.get("config")
    if cfg:
        return cfg
    hydra = experiment_of(checkpoint) / ".hydra" / "config.yaml"
    if hydra.is_file():
        log.info("checkpoint %s records no configuration; using %s", checkpoint, hydra)
        return yaml.safe_load(hydra.read_text())
    raise AsrError(f"checkpoint={checkpoint}: it records no configuration and {hydra} is missing; "
                   "decode it inside the experiment folder that trained it")


def check_stages(ckpt: dict[str, Any], where: Path) -> None:
    """The lang folder and GMM stage the checkpoint was trained with still exist, unchanged."""
    lang = ckpt.get("lang") or {}
    lang_dir = Path(lang.get("path", ""))
    if not (lang_dir / "done.json").is_file():
        raise AsrError(f"checkpoint={where}: its lang folder {lang_dir} is missing; rebuild it by running "
                       "asr-train with the run's configuration and stop_stage=align")
    done = read_done(lang_dir) or {}
    if lang.get("id") and done.get("id") != lang.get("id"):
        log.warning("checkpoint %s: its lang folder %s was rebuilt since training; decoding with the new one",
                    where, lang_dir)
    if ckpt["task"]["name"] == "hybrid":
        ali = ckpt.get("alignments") or {}
        stage_dir = Path(ali.get("dir", ""))
        if not (stage_dir / "final.mdl").is_file():
            raise AsrError(f"checkpoint={where}: its GMM stage {stage_dir} (the tree of its pdfs) is missing; "
                           "a hybrid model decodes only through the tree it was trained on")
        if ali.get("id") and (read_done(stage_dir) or {}).get("id") != ali["id"]:
            raise AsrError(f"checkpoint={where}: its GMM stage {stage_dir} was rebuilt after training, so its "
                           "pdfs may differ; retrain the network (asr-train) or restore the original stage")
    feats = ckpt.get("features") or {}
    if feats.get("kind") == "fmllr":
        stage_dir = Path(feats.get("gmm_dir", "")) / feats.get("gmm_stage", "tri3")
        if not (stage_dir / "final.mdl").is_file():
            raise AsrError(f"checkpoint={where}: the fMLLR front end's GMM stage {stage_dir} is missing")


def decode_only(s: RecipeSettings, checkpoint: Path) -> dict[str, Any]:
    """Build what decoding needs (reusing the run's stages) and decode ``checkpoint``."""
    ckpt = read_checkpoint(checkpoint)
    check_stages(ckpt, checkpoint)
    with stage_cache(s.cache_dir):
        _, (sets, stores, lang, models, gmm) = before_training(s, "align")
        if ckpt["task"]["name"] == "ctc":
            tokens = read_token_table(lang.path / "tokens.txt")
            if tokens != list(ckpt["task"]["tokens"]):
                raise AsrError(f"checkpoint={checkpoint}: its tokens differ from {lang.path / 'tokens.txt'}")
        return decode_checkpoint(s, checkpoint, sets, stores, lang, models, gmm)
