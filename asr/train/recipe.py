"""A recipe's stages in order: data -> features -> alignments -> training -> decoding.

Each stage reads and writes plain files under the experiment dir and is reused when its
inputs are unchanged (the stage functions it calls keep their own fingerprints).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from asr.data.contaminate import contaminate_data_dir, parse_set_name
from asr.data.timit import prepare_timit
from asr.errors import AsrError
from asr.features.config import FeatureConfig
from asr.features.store import FeatureStore, compute_feature_store

log = logging.getLogger(__name__)

STAGES = ("data", "features", "align", "train", "decode")


@dataclass
class RecipeSettings:
    """What the stages need, as plain values (built from the Hydra config by the CLI).

    Attributes:
        corpus_root: folder with TRAIN/ and TEST/ (LDC TIMIT or mini-TIMIT).
        exp_dir: experiment dir; data dirs go to ``data_dir``, features to ``exp_dir/features``.
        data_dir: where the Kaldi data dirs are written.
        train_set, dev_set: names of the training and validation sets.
        test_sets: clean or contaminated test-set names (``test_babble_snr5``, ...).
        features: feature options (ignored when ``features_kind == "fmllr"``).
        features_kind: ``fbank``, ``mfcc``, ``kaldi_scp`` or ``fmllr``.
        task: ``hybrid`` (needs GMM-HMM alignments) or ``ctc``.
        alignment_stage: last GMM stage trained; its alignments are the hybrid targets.
        seed: seed of contamination and dither.
        num_workers: worker processes for extraction.
        stop_stage: last stage to run (one of :data:`STAGES`), or None for all.
    """

    corpus_root: Path
    exp_dir: Path
    data_dir: Path
    train_set: str = "train"
    dev_set: str = "dev"
    test_sets: list[str] = field(default_factory=lambda: ["test"])
    features: FeatureConfig = field(default_factory=FeatureConfig)
    features_kind: str = "fbank"
    task: str = "hybrid"
    alignment_stage: str = "tri3"
    seed: int = 0
    num_workers: int = 2
    stop_stage: str | None = None


def prepare_data_sets(s: RecipeSettings) -> dict[str, Path]:
    """Write the clean data dirs and every contaminated test set; returns name -> data dir."""
    report = prepare_timit(s.corpus_root, s.data_dir)
    log.info("data dirs in %s:\n%s", s.data_dir, report.summary())
    sets = {name: s.data_dir / name for name in (s.train_set, s.dev_set)}
    for name in s.test_sets:
        base, noise, snr, t60 = parse_set_name(name)
        if not (s.data_dir / base).is_dir():
            raise AsrError(f"data.test_sets: '{name}' needs the set '{base}', which {s.data_dir} lacks")
        if noise is None and t60 is None:
            sets[name] = s.data_dir / base
            continue
        # Babble comes from training speakers: never from the set being contaminated.
        sets[name] = contaminate_data_dir(
            s.data_dir / base, s.data_dir / name, noise=noise, snr_db=snr, t60_ms=t60, seed=s.seed,
            babble_source=s.data_dir / s.train_set if noise == "babble" else None,
        )
    return sets


def compute_feature_stores(s: RecipeSettings, sets: dict[str, Path]) -> dict[str, FeatureStore]:
    """Extract (or reuse) the features of every set under ``exp_dir/features/<set>``."""
    if s.features_kind == "fmllr":
        raise AsrError("features=fmllr needs the GMM-HMM pipeline's tri3 stage, which is not built yet; "
                       "use features=fbank or features=mfcc")
    return {
        name: compute_feature_store(path, s.exp_dir / "features" / name, s.features, s.num_workers)
        for name, path in sets.items()
    }


def gmm_feature_config(seed: int) -> FeatureConfig:
    """Kaldi's GMM front end: 13 MFCCs (23 mel bins) with per-speaker mean normalisation."""
    return FeatureConfig(kind="mfcc", num_mel_bins=23, num_ceps=13, cmvn="speaker_mean", seed=seed)


def train_aligner(s: RecipeSettings, sets: dict[str, Path]) -> Path:
    """Train the GMM-HMM stages up to ``s.alignment_stage`` and align train and dev.

    Writes ``exp_dir/gmm/<stage>/`` (models, train alignments, priors) and
    ``exp_dir/gmm/<stage>/ali_<dev_set>/``; both are reused when their inputs are unchanged.

    Returns:
        the directory of the final stage.
    """
    from asr.hmm.align_data import align_data_dir
    from asr.hmm.pipeline import STAGES as GMM_STAGES
    from asr.hmm.pipeline import GmmPipelineConfig, train_gmm_pipeline

    if s.alignment_stage not in GMM_STAGES:
        raise AsrError(f"task.alignment_stage: '{s.alignment_stage}' is not one of {', '.join(GMM_STAGES)}")
    stages = GMM_STAGES[: GMM_STAGES.index(s.alignment_stage) + 1]
    cfg = gmm_feature_config(s.seed)
    stores = {
        name: compute_feature_store(sets[name], s.exp_dir / "features_gmm" / name, cfg, s.num_workers)
        for name in (s.train_set, s.dev_set)
    }
    gmm_dir = s.exp_dir / "gmm"
    results = train_gmm_pipeline(sets[s.train_set], stores[s.train_set], gmm_dir, GmmPipelineConfig(stages=stages))
    for stage, r in results.items():
        log.info("gmm %s: %s", stage, r)
    stage_dir = gmm_dir / s.alignment_stage
    dev_ali = stage_dir / f"ali_{s.dev_set}"
    newest_input = max((stage_dir / "done.json").stat().st_mtime, (stores[s.dev_set].path / "feats.scp").stat().st_mtime)
    if not ((dev_ali / "ali.scp").is_file() and (dev_ali / "ali.scp").stat().st_mtime > newest_input):
        align_data_dir(gmm_dir, s.alignment_stage, sets[s.dev_set], stores[s.dev_set], dev_ali)
    else:
        log.info("alignments of %s are up to date, reusing them", s.dev_set)
    return stage_dir


def run_recipe(s: RecipeSettings) -> str:
    """Run the stages up to ``s.stop_stage``; returns the last stage completed.

    Raises:
        AsrError: a stage failed, or a stage that is not built yet was asked for.
    """
    if s.stop_stage is not None and s.stop_stage not in STAGES:
        raise AsrError(f"stop_stage: '{s.stop_stage}' is not one of {', '.join(STAGES)}")
    last = s.stop_stage or STAGES[-1]
    sets = prepare_data_sets(s)
    if last == "data":
        return "data"
    if s.features_kind != "fmllr":
        compute_feature_stores(s, sets)
    if last == "features":
        return "features"
    if s.task == "hybrid":
        train_aligner(s, sets)
    if last == "align":
        return "align"
    raise AsrError(
        f"stage '{STAGES[STAGES.index('align') + 1]}' is not built yet; "
        "run with stop_stage=align (or data, features)"
    )
