"""The feature stages: the network's front end and the GMM front end, one store per set."""

from __future__ import annotations

from pathlib import Path

from asr.features.config import FeatureConfig
from asr.features.store import FeatureStore, compute_feature_store
from asr.recipe.settings import RecipeSettings


def compute_feature_stores(s: RecipeSettings, sets: dict[str, Path]) -> dict[str, FeatureStore]:
    """Extract (or reuse) the network's features of every set under ``exp_dir/features/<set>``."""
    return {name: compute_feature_store(path, s.exp_dir / "features" / name, s.features, s.num_workers,
                                        allow_pipes=s.allow_pipes)
            for name, path in sets.items()}


def gmm_feature_config(seed: int) -> FeatureConfig:
    """Kaldi's GMM front end: 13 MFCCs (23 mel bins) with per-speaker mean normalisation."""
    return FeatureConfig(kind="mfcc", num_mel_bins=23, num_ceps=13, cmvn="speaker_mean", seed=seed)


def needs_gmm(s: RecipeSettings) -> bool:
    """Whether the GMM-HMM stages run: hybrid targets, or fMLLR features."""
    return s.task == "hybrid" or s.features_kind == "fmllr"


def gmm_sets(s: RecipeSettings) -> list[str]:
    """Sets the GMM stages need features of: train and dev, plus the test sets when they are
    decoded by the GMMs or get fMLLR features, and the training copies that get fMLLR features."""
    names = [s.train_set, s.dev_set]
    if s.gmm_decode or s.features_kind == "fmllr":
        names += [t for t in s.test_sets if t not in names]
    if s.features_kind == "fmllr":  # the training copies' fMLLR features
        names += [t for t in s.train_copies if t not in names]
    return names


def compute_gmm_feature_stores(s: RecipeSettings, sets: dict[str, Path]) -> dict[str, FeatureStore]:
    """The GMM front end's stores, under ``exp_dir/features_gmm/<set>``."""
    cfg = gmm_feature_config(s.seed)
    return {name: compute_feature_store(sets[name], s.exp_dir / "features_gmm" / name, cfg, s.num_workers,
                                        allow_pipes=s.allow_pipes)
            for name in gmm_sets(s)}
