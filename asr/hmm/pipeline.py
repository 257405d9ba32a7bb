"""The GMM-HMM recipe: mono -> tri1 -> tri2 (LDA+MLLT) -> tri3 (SAT), with outputs on disk.

Each stage writes into ``out_dir/<stage>/``:

    final.mdl                 the model (:meth:`GmmHmm.save`): transition model, tree, GMMs
    ali.{ark,scp}             pdf id per frame of each training utterance
    phone_ali.{ark,scp}       phone id per frame (``phones.txt`` numbering, Kaldi style)
    chain_ali.{ark,scp}       chain position per frame (what the next stage starts from)
    phones.txt, pdf_counts.txt, history.jsonl (one line per iteration)
    transform.json            the stage's feature transform (:mod:`asr.hmm.stage_transform`)
    final.mat                 tri2/tri3: [40, 13 * 7 + 1] LDA+MLLT transform of spliced frames
    trans.{ark,scp}           tri3: per-speaker fMLLR transforms [40, 41] on LDA+MLLT frames
    fmllr_feats.{ark,scp}     tri3: adapted training features
    done.json                 written last (:mod:`asr.stage`): fingerprint and results

Each stage is a stage of :mod:`asr.stage`: one whose ``done.json`` fingerprint matches
its inputs (features, transcripts, options, the previous stage's build) is loaded
instead of retrained.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kaldiio
import numpy as np

from asr.data.kaldi_dir import read_data_dir
from asr.data.phones import SILENCE_48, TIMIT48
from asr.errors import AsrError
from asr.hmm.alignment_io import read_positions, write_alignments, write_fmllr
from asr.hmm.gmm_update import GmmUpdateOptions
from asr.hmm.lda_mllt_training import train_lda_mllt
from asr.hmm.model import GmmHmm
from asr.hmm.mono import train_mono
from asr.hmm.sat_training import apply_speaker_transforms, train_sat
from asr.hmm.stage_transform import StageTransform, deltas_transform, lda_transform, load_stage_transform
from asr.hmm.topology import TransitionModel
from asr.hmm.trainer import AlignResult, GmmTrainOptions
from asr.hmm.training_set import TrainingSet
from asr.hmm.tree import TreeOptions
from asr.hmm.triphone import train_triphone, tri_train_options
from asr.stage import fingerprint, read_done, run_stage

log = logging.getLogger(__name__)

STAGES = ("mono", "tri1", "tri2", "tri3")
# Code version of each stage's output (asr.stage): bump one when its training changes.
STAGE_VERSIONS = {"mono": 2, "tri1": 2, "tri2": 2, "tri3": 2}


@dataclass
class GmmPipelineConfig:
    """Options of every stage (defaults: Kaldi's TIMIT ``s5`` sizes).

    Attributes:
        stages: stages to run, a prefix of ``mono, tri1, tri2, tri3``.
        num_states, silence_phones, num_silence_states: HMM topology.
        mono, tri1, tri2, tri3: iteration schedules and Gaussian totals.
        tri1_tree, tri2_tree, tri3_tree: tree sizes.
        lda_dim, splice_context, mllt_iters: tri2 features.
        fmllr_iters: tri3 fMLLR re-estimation iterations.
    """

    stages: tuple[str, ...] = STAGES
    num_states: int = 3
    silence_phones: tuple[str, ...] = (SILENCE_48,)
    # Kaldi's default silence topology has 5 states; on mini-TIMIT small, 5 rather than 3 moves
    # mono's frame accuracy from 89.3 to 90.0 % (the edge states take the onset/offset frames).
    num_silence_states: int = 5
    # Kaldi's train_mono.sh passes --min-gaussian-occupancy=3 to gmm-est.
    mono: GmmTrainOptions = field(
        default_factory=lambda: GmmTrainOptions(update=GmmUpdateOptions(min_gaussian_occupancy=3)))
    tri1: GmmTrainOptions = field(default_factory=lambda: tri_train_options(15000))
    tri2: GmmTrainOptions = field(default_factory=lambda: tri_train_options(15000))
    tri3: GmmTrainOptions = field(default_factory=lambda: tri_train_options(15000))
    tri1_tree: TreeOptions = field(default_factory=lambda: TreeOptions(max_leaves=2500))
    tri2_tree: TreeOptions = field(default_factory=lambda: TreeOptions(max_leaves=2500))
    tri3_tree: TreeOptions = field(default_factory=lambda: TreeOptions(max_leaves=2500))
    lda_dim: int = 40
    splice_context: int = 3
    mllt_iters: tuple[int, ...] = (2, 4, 6, 12)
    fmllr_iters: tuple[int, ...] = (2, 4, 6, 12)

    @classmethod
    def with_sizes(cls, leaves: int = 2500, gauss: int = 15000, mono_gauss: int = 1000, **kw: Any
                   ) -> "GmmPipelineConfig":
        """Kaldi's schedules with other model sizes: tree leaves and total Gaussians of
        tri1/tri2/tri3, Gaussians of mono (Kaldi's TIMIT: 2500 / 15000 / 1000)."""
        mono = GmmTrainOptions(total_gauss=mono_gauss, update=GmmUpdateOptions(min_gaussian_occupancy=3))
        tri = {f"{st}": tri_train_options(gauss) for st in STAGES[1:]}
        trees = {f"{st}_tree": TreeOptions(max_leaves=leaves) for st in STAGES[1:]}
        return cls(mono=mono, **tri, **trees, **kw)

    def __post_init__(self) -> None:
        if tuple(self.stages) != STAGES[: len(self.stages)]:
            raise AsrError(f"gmm stages must be a prefix of {', '.join(STAGES)}; got {list(self.stages)}")


def _load_static(feats: Any, utts: list[str]) -> dict[str, np.ndarray]:
    """utt -> [T, D] float32 from a FeatureStore (``.load``) or a mapping."""
    getter = feats.load if hasattr(feats, "load") else feats.__getitem__
    return {u: np.asarray(getter(u), dtype=np.float32) for u in utts if u in feats}


def _data_fingerprint(data: TrainingSet) -> str:
    x = data.feats.double()
    return fingerprint(data.utts, [ids.tolist() for ids in data.phone_ids], data.speakers,
                       data.feats.shape, round(float(x.sum()), 3), round(float((x * x).sum()), 3))


def _write_stage(stage_dir: Path, model: GmmHmm, data: TrainingSet, result: AlignResult,
                 history: list[dict], transform: StageTransform) -> None:
    model.save(stage_dir / "final.mdl")
    transform.save(stage_dir)
    write_alignments(model, data, result.positions, stage_dir)
    with kaldiio.WriteHelper(f"ark,scp:{stage_dir / 'chain_ali.ark'},{stage_dir / 'chain_ali.scp'}") as w:
        for u, pos in zip(data.utts, result.positions):
            if pos is not None:
                w(u, pos.astype(np.int32))
    with open(stage_dir / "history.jsonl", "w") as f:
        for h in history:
            f.write(json.dumps(h) + "\n")


def train_gmm_pipeline(train_dir: str | os.PathLike, feats: Any, out_dir: str | os.PathLike,
                       cfg: GmmPipelineConfig | None = None, phones: tuple[str, ...] = TIMIT48
                       ) -> dict[str, dict]:
    """Train the GMM-HMM stages on a data dir and write their outputs.

    Args:
        train_dir: Kaldi data dir with ``text.phn`` (48-set phones) and ``utt2spk``.
        feats: static features with per-speaker CMVN applied, no deltas (e.g. a
            ``FeatureStore`` of 13 MFCCs read with ``cmvn=speaker_mean``), or a mapping
            utt -> [T, 13] array. Deltas and LDA splicing are added here.
        out_dir: stage directories are created under it.
        cfg: options (default: Kaldi's TIMIT sizes).
        phones: phone set of the transcripts.

    Returns:
        stage -> {``seconds``, ``num_pdfs``, ``num_gauss``, ``log_like_per_frame`` (final
        alignment), ``num_frames``, ``failed`` (utterances not aligned), ``reused``}.
    """
    cfg = cfg or GmmPipelineConfig()
    out = Path(out_dir)
    d = read_data_dir(train_dir)
    if not d.phones:
        raise AsrError(f"{train_dir}: no phone transcripts (text.phn) to align to")
    tm = TransitionModel.create(list(phones), cfg.num_states, cfg.silence_phones, cfg.num_silence_states)
    # Silence frames are left out of LDA, MLLT and fMLLR statistics, as in Kaldi's scripts.
    silence_ids = [tm.phone_id[p] for p in cfg.silence_phones if p in tm.phone_id]
    static_np = _load_static(feats, d.utts)
    static = TrainingSet.build(static_np, d.phones, tm, d.utt2spk)
    delta = deltas_transform().apply_set(static)  # what mono and tri1 model
    del static_np
    results: dict[str, dict] = {}
    data_fp = _data_fingerprint(static)
    # mono depends on the training data through its content (``data_fp``: frames, transcripts,
    # speakers), not on the feature store's build, so that re-extracting identical features
    # (touched audio, a rebuilt store) does not retrain the GMMs.
    upstream: list = [train_dir] if read_done(train_dir) is not None else []
    model = positions = None
    transform: StageTransform | None = None
    for stage in cfg.stages:
        opts = getattr(cfg, stage)
        tree_opts = getattr(cfg, f"{stage}_tree", None)
        extra = {"lda_dim": cfg.lda_dim, "splice": cfg.splice_context, "mllt_iters": cfg.mllt_iters,
                 "fmllr_iters": cfg.fmllr_iters, "silence_weight": 0.0} if stage in ("tri2", "tri3") else {}
        key = {"data": data_fp, "stage": stage, "options": dataclasses.asdict(opts),
               "tree": dataclasses.asdict(tree_opts) if tree_opts else None, "extra": extra,
               "topology": tm.state_dict()}
        built: dict[str, Any] = {}

        def build(tmp: Path, stage: str = stage, opts=opts, tree_opts=tree_opts) -> dict:
            t0 = time.perf_counter()
            stage_tm = copy.deepcopy(tm if model is None else model.tm)
            speaker_transforms = si = None
            if stage == "mono":
                new_model, result, history = train_mono(stage_tm, delta, opts)
                new_transform = deltas_transform()
            elif stage == "tri1":
                new_model, result, history = train_triphone(stage_tm, delta, positions, tree_opts, opts, stage="tri1")
                new_transform = deltas_transform()
            elif stage == "tri2":
                new_model, result, history, mat = train_lda_mllt(
                    stage_tm, static, positions, model, tree_opts, opts, cfg.lda_dim,
                    cfg.splice_context, cfg.mllt_iters, silence_ids)
                new_transform = lda_transform(mat, cfg.splice_context)
            else:
                new_transform = transform  # SAT keeps tri2's LDA+MLLT
                si = new_transform.apply_set(static)
                new_model, result, history, speaker_transforms = train_sat(
                    stage_tm, si, positions, model, tree_opts, opts, cfg.fmllr_iters, silence_ids)
            data = delta if stage in ("mono", "tri1") else static
            _write_stage(tmp, new_model, data, result, history, new_transform)
            if speaker_transforms is not None:
                write_fmllr(tmp, speaker_transforms, apply_speaker_transforms(si, speaker_transforms))
            built.update(model=new_model, positions=result.positions, transform=new_transform)
            secs = time.perf_counter() - t0
            summary = {"seconds": secs, "num_pdfs": new_model.pdf_map.num_pdfs, "num_gauss": new_model.gmm.num_gauss,
                       "log_like_per_frame": result.log_like / max(1, result.num_frames),
                       "num_frames": result.num_frames, "failed": len(result.failed)}
            log.info("%s: done in %.1fs: %d pdfs, %d Gaussians, avg log-likelihood %.4f, %d unaligned",
                     stage, secs, summary["num_pdfs"], summary["num_gauss"], summary["log_like_per_frame"],
                     summary["failed"])
            return summary

        r = run_stage(out / stage, key, build, name=f"gmm/{stage}", version=STAGE_VERSIONS[stage], inputs=upstream)
        if r.reused:
            model = GmmHmm.load(r.path / "final.mdl")
            positions = read_positions(r.path, static.utts)
            transform = load_stage_transform(r.path)
        else:
            model, positions, transform = built["model"], built["positions"], built["transform"]
        results[stage] = {**r.summary, "reused": r.reused}
        upstream = [r]
    return results
