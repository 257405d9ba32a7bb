"""A recipe's stages in order: data -> features -> alignments -> training -> decoding.

Each stage reads and writes plain files under the experiment dir and is reused when its
inputs are unchanged (the stage functions it calls keep their own fingerprints).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asr.data.contaminate import contaminate_data_dir, parse_set_name
from asr.data.kaldi_dir import read_data_dir
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
        features: feature options; with ``features_kind == "fmllr"`` only its CMVN,
            delta and splicing fields are used, on the fMLLR features.
        features_kind: ``fbank``, ``mfcc``, ``kaldi_scp`` or ``fmllr``.
        task: ``hybrid`` (needs GMM-HMM alignments) or ``ctc``.
        alignment_stage: last GMM stage trained; its alignments are the hybrid targets.
        gmm_decode: decode dev and the test sets with every GMM stage trained (phone
            bigram, acoustic scale tuned on dev) for the baseline rows of the results.
        gmm: GMM-HMM pipeline options (default: Kaldi's TIMIT sizes); the stages are set
            from ``alignment_stage``.
        gmm_decoding: GMM decoding options (default: Kaldi's search, 7 acoustic scales).
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
    gmm_decode: bool = False
    gmm: Any = None
    gmm_decoding: Any = None
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
    return {
        name: compute_feature_store(path, s.exp_dir / "features" / name, s.features, s.num_workers)
        for name, path in sets.items()
    }


def gmm_feature_config(seed: int) -> FeatureConfig:
    """Kaldi's GMM front end: 13 MFCCs (23 mel bins) with per-speaker mean normalisation."""
    return FeatureConfig(kind="mfcc", num_mel_bins=23, num_ceps=13, cmvn="speaker_mean", seed=seed)


def gmm_sets(s: RecipeSettings) -> list[str]:
    """Sets the GMM-HMM stages need features of: train and dev, plus the test sets when
    they are decoded or get fMLLR features."""
    names = [s.train_set, s.dev_set]
    if s.gmm_decode or s.features_kind == "fmllr":
        names += [t for t in s.test_sets if t not in names]
    return names


def compute_gmm_feature_stores(s: RecipeSettings, sets: dict[str, Path]) -> dict[str, FeatureStore]:
    """The GMM front end's stores, under ``exp_dir/features_gmm/<set>``."""
    cfg = gmm_feature_config(s.seed)
    return {name: compute_feature_store(sets[name], s.exp_dir / "features_gmm" / name, cfg, s.num_workers)
            for name in gmm_sets(s)}


def _gmm_stages(s: RecipeSettings) -> tuple[str, ...]:
    from asr.hmm.pipeline import STAGES as GMM_STAGES

    stage = s.alignment_stage
    if s.features_kind == "fmllr" and stage != "tri3":
        raise AsrError(f"features=fmllr needs the SAT stage tri3, but task.alignment_stage is '{stage}'")
    if stage not in GMM_STAGES:
        raise AsrError(f"task.alignment_stage: '{stage}' is not one of {', '.join(GMM_STAGES)}")
    return GMM_STAGES[: GMM_STAGES.index(stage) + 1]


def train_aligner(s: RecipeSettings, sets: dict[str, Path], stores: dict[str, FeatureStore]) -> Path:
    """Train the GMM-HMM stages up to ``s.alignment_stage`` and align train and dev.

    Writes ``exp_dir/gmm/<stage>/`` (models, train alignments, priors) and
    ``exp_dir/gmm/<stage>/ali_<dev_set>/``; both are reused when their inputs are unchanged.

    Args:
        stores: the GMM front end's stores (:func:`compute_gmm_feature_stores`).

    Returns:
        the directory of the final stage.
    """
    from asr.hmm.align_data import align_data_dir
    from asr.hmm.pipeline import GmmPipelineConfig, train_gmm_pipeline

    gmm_dir = s.exp_dir / "gmm"
    cfg = dataclasses.replace(s.gmm or GmmPipelineConfig(), stages=_gmm_stages(s))
    results = train_gmm_pipeline(sets[s.train_set], stores[s.train_set], gmm_dir, cfg)
    for stage, r in results.items():
        log.info("gmm %s: %s", stage, r)
    stage_dir = gmm_dir / s.alignment_stage
    dev_ali = stage_dir / f"ali_{s.dev_set}"
    if _newer(dev_ali / "ali.scp", stage_dir / "done.json", stores[s.dev_set].path / "feats.scp"):
        log.info("alignments of %s are up to date, reusing them", s.dev_set)
    else:
        align_data_dir(gmm_dir, s.alignment_stage, sets[s.dev_set], stores[s.dev_set], dev_ali)
    return stage_dir


def _newer(output: Path, *inputs: Path) -> bool:
    """Whether ``output`` exists and is newer than every input."""
    return output.is_file() and output.stat().st_mtime > max(p.stat().st_mtime for p in inputs)


def fmllr_feature_stores(s: RecipeSettings, sets: dict[str, Path], gmm_stores: dict[str, FeatureStore]
                         ) -> dict[str, FeatureStore]:
    """Stores of tri3 fMLLR features for every set, under ``exp_dir/features/<set>``.

    Train uses the transforms of SAT training (``gmm/tri3/fmllr_feats.scp``). Dev and the
    test sets are adapted without their transcripts: a first-pass decode with tri2, then
    per-speaker fMLLR (``gmm/tri3/fmllr_<set>/``), as Kaldi's ``decode_fmllr.sh``. The stores wrap
    those scp files (``kind=kaldi_scp``) and add the configured CMVN/deltas/splicing.
    """
    from dataclasses import replace

    from asr.decode.fmllr_sets import fmllr_set_done, write_fmllr_set
    from asr.decode.gmm_recipe import stage_graph, train_phone_bigram
    from asr.hmm.model import GmmHmm

    stage_dir = s.exp_dir / "gmm" / "tri3"
    scps = {s.train_set: stage_dir / "fmllr_feats.scp"}
    model = graph = first_pass = None
    for name in gmm_sets(s)[1:]:
        out = stage_dir / f"fmllr_{name}"
        store = gmm_stores[name]
        fingerprint = {"first_pass": "tri2", "model": (stage_dir / "done.json").stat().st_mtime_ns,
                       "feats": (store.path / "config.json").stat().st_mtime_ns}
        if not fmllr_set_done(out, fingerprint):
            if graph is None:
                model = GmmHmm.load(stage_dir / "final.mdl")
                lm = train_phone_bigram(sets[s.train_set], model.tm.phones, s.exp_dir / "gmm" / "lang")
                graph = stage_graph(model, lm, stage_dir / "graph")
                si_model = GmmHmm.load(s.exp_dir / "gmm" / "tri2" / "final.mdl")
                first_pass = (si_model, stage_graph(si_model, lm, s.exp_dir / "gmm" / "tri2" / "graph"))
            d = read_data_dir(sets[name])
            static = {u: store.load(u) for u in d.utts if u in store}
            write_fmllr_set(stage_dir, static, d.utt2spk, graph, out, fingerprint, model=model,
                            first_pass=first_pass)
        else:
            log.info("fMLLR features of %s are up to date, reusing them", name)
        scps[name] = out / "feats.scp"
    return {name: compute_feature_store(sets[name], s.exp_dir / "features" / name,
                                        replace(s.features, kind="kaldi_scp", scp=str(scp.absolute())),
                                        s.num_workers)
            for name, scp in scps.items()}


def decode_gmm_baselines(s: RecipeSettings, sets: dict[str, Path], gmm_stores: dict[str, FeatureStore]
                         ) -> dict[str, dict[str, dict]]:
    """Decode dev and the test sets with every GMM stage; log and return the PER table.

    Outputs go to ``exp_dir/gmm/decode/`` (see :mod:`asr.decode.gmm_recipe`); they are
    reused while newer than every stage's model.
    """
    import json

    from asr.decode.gmm_recipe import decode_gmm_stages, format_per_table

    stages = _gmm_stages(s)
    gmm_dir = s.exp_dir / "gmm"
    out = gmm_dir / "decode"
    names = [s.dev_set] + [t for t in s.test_sets if t != s.dev_set]
    results_file = out / "gmm_results.json"
    previous = json.loads(results_file.read_text()) if results_file.is_file() else {}
    if (_newer(results_file, *[gmm_dir / st / "done.json" for st in stages])
            and all(st in previous and all(n in previous[st] for n in names) for st in stages)):
        log.info("GMM decoding results in %s are up to date, reusing them", out)
        results = previous
    else:
        results = decode_gmm_stages(gmm_dir, stages, sets[s.train_set],
                                    {n: (sets[n], gmm_stores[n]) for n in names}, out, s.gmm_decoding)
    log.info("GMM-HMM baselines, PER %% on 39 phones (acoustic scale tuned on %s):\n%s",
             s.dev_set, format_per_table(results, stages, names))
    return results


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
    needs_gmm = s.task == "hybrid" or s.features_kind == "fmllr"
    gmm_stores = compute_gmm_feature_stores(s, sets) if needs_gmm else {}
    if last == "features":
        return "features"
    if needs_gmm:
        train_aligner(s, sets, gmm_stores)
        if s.features_kind == "fmllr":
            fmllr_feature_stores(s, sets, gmm_stores)
        if s.gmm_decode:
            decode_gmm_baselines(s, sets, gmm_stores)
    if last == "align":
        return "align"
    raise AsrError(
        f"stage '{STAGES[STAGES.index('align') + 1]}' is not built yet; "
        "run with stop_stage=align (or data, features)"
    )
