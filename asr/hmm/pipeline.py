"""The GMM-HMM recipe: mono -> tri1 -> tri2 (LDA+MLLT) -> tri3 (SAT), with outputs on disk.

Each stage writes into ``out_dir/<stage>/``:

    final.mdl                 the model (:meth:`GmmHmm.save`): transition model, tree, GMMs
    ali.{ark,scp}             pdf id per frame of each training utterance
    phone_ali.{ark,scp}       phone id per frame (``phones.txt`` numbering, Kaldi style)
    chain_ali.{ark,scp}       chain position per frame (what the next stage starts from)
    phones.txt, pdf_counts.txt, history.jsonl (one line per iteration)
    final.mat                 tri2/tri3: [40, 13 * 7 + 1] LDA+MLLT transform of spliced frames
    trans.{ark,scp}           tri3: per-speaker fMLLR transforms [40, 41] on LDA+MLLT frames
    fmllr_feats.{ark,scp}     tri3: adapted training features
    done.json                 written last: fingerprint of inputs and options, and the results

A stage whose ``done.json`` fingerprint matches its inputs (features, transcripts,
options, previous stage) is loaded instead of retrained.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kaldiio
import numpy as np
import torch

from asr.data.kaldi_dir import read_data_dir
from asr.data.phones import SILENCE_48, TIMIT48
from asr.errors import AsrError
from asr.features.deltas import add_deltas
from asr.hmm.alignment_io import write_alignments, write_fmllr
from asr.hmm.gmm_update import GmmUpdateOptions
from asr.hmm.lda_mllt_training import train_lda_mllt, transform_set
from asr.hmm.model import GmmHmm
from asr.hmm.mono import train_mono
from asr.hmm.sat_training import apply_speaker_transforms, train_sat
from asr.hmm.topology import TransitionModel
from asr.hmm.trainer import AlignResult, GmmTrainOptions
from asr.hmm.training_set import TrainingSet
from asr.hmm.tree import TreeOptions
from asr.hmm.triphone import train_triphone, tri_train_options

log = logging.getLogger(__name__)

STAGES = ("mono", "tri1", "tri2", "tri3")


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


def _fingerprint(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _data_fingerprint(data: TrainingSet) -> str:
    x = data.feats.double()
    return _fingerprint(data.utts, [ids.tolist() for ids in data.phone_ids], data.speakers,
                        data.feats.shape, round(float(x.sum()), 3), round(float((x * x).sum()), 3))


def _stage_done(stage_dir: Path, fingerprint: str) -> dict | None:
    done = stage_dir / "done.json"
    if not done.is_file():
        return None
    info = json.loads(done.read_text())
    files = ["final.mdl", "ali.scp", "phone_ali.scp", "chain_ali.scp"]
    if info.get("fingerprint") != fingerprint or not all((stage_dir / f).is_file() for f in files):
        return None
    return info


def _read_positions(stage_dir: Path, data: TrainingSet) -> list[np.ndarray | None]:
    table = kaldiio.load_scp(str(stage_dir / "chain_ali.scp"))
    return [np.asarray(table[u], dtype=np.int64) if u in table else None for u in data.utts]


def _write_stage(stage_dir: Path, model: GmmHmm, data: TrainingSet, result: AlignResult,
                 history: list[dict]) -> None:
    stage_dir.mkdir(parents=True, exist_ok=True)
    (stage_dir / "done.json").unlink(missing_ok=True)  # incomplete until rewritten
    model.save(stage_dir / "final.mdl")
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
    delta = static.with_feats(torch.cat([torch.from_numpy(add_deltas(static.utt_feats(i).numpy()))
                                         for i in range(len(static))]))
    del static_np
    results: dict[str, dict] = {}
    prev_fp = _data_fingerprint(static)
    model = positions = None
    transform = None
    for stage in cfg.stages:
        stage_dir = out / stage
        opts = getattr(cfg, stage)
        tree_opts = getattr(cfg, f"{stage}_tree", None)
        extra = {"lda_dim": cfg.lda_dim, "splice": cfg.splice_context, "mllt_iters": cfg.mllt_iters,
                 "fmllr_iters": cfg.fmllr_iters, "silence_weight": 0.0} if stage in ("tri2", "tri3") else {}
        fp = _fingerprint(prev_fp, stage, dataclasses.asdict(opts),
                          dataclasses.asdict(tree_opts) if tree_opts else None, extra, tm.state_dict())
        t0 = time.perf_counter()
        done = _stage_done(stage_dir, fp)
        if done is not None:
            log.info("%s: outputs in %s are up to date; reusing them", stage, stage_dir)
            model = GmmHmm.load(stage_dir / "final.mdl")
            positions = _read_positions(stage_dir, static)
            if stage in ("tri2", "tri3"):
                transform = torch.from_numpy(np.array(kaldiio.load_mat(str(stage_dir / "final.mat"))))
            results[stage] = {**done["results"], "reused": True}
            prev_fp = fp
            continue
        stage_tm = copy.deepcopy(tm if model is None else model.tm)
        speaker_transforms = None
        if stage == "mono":
            model, result, history = train_mono(stage_tm, delta, opts)
        elif stage == "tri1":
            model, result, history = train_triphone(stage_tm, delta, positions, tree_opts, opts, stage="tri1")
        elif stage == "tri2":
            prev_model = model
            model, result, history, transform = train_lda_mllt(
                stage_tm, static, positions, prev_model, tree_opts, opts, cfg.lda_dim,
                cfg.splice_context, cfg.mllt_iters, silence_ids)
        else:
            si = transform_set(static, transform, cfg.splice_context)
            model, result, history, speaker_transforms = train_sat(
                stage_tm, si, positions, model, tree_opts, opts, cfg.fmllr_iters, silence_ids)
        data = delta if stage in ("mono", "tri1") else static
        _write_stage(stage_dir, model, data, result, history)
        if stage in ("tri2", "tri3"):
            kaldiio.save_mat(str(stage_dir / "final.mat"), transform.numpy())
        if speaker_transforms is not None:
            write_fmllr(stage_dir, speaker_transforms, apply_speaker_transforms(si, speaker_transforms))
        positions = result.positions
        secs = time.perf_counter() - t0
        results[stage] = {"seconds": secs, "num_pdfs": model.pdf_map.num_pdfs, "num_gauss": model.gmm.num_gauss,
                          "log_like_per_frame": result.log_like / max(1, result.num_frames),
                          "num_frames": result.num_frames, "failed": len(result.failed), "reused": False}
        (stage_dir / "done.json").write_text(json.dumps({"fingerprint": fp, "results": results[stage]}, indent=1))
        log.info("%s: done in %.1fs: %d pdfs, %d Gaussians, avg log-likelihood %.4f, %d unaligned",
                 stage, secs, results[stage]["num_pdfs"], results[stage]["num_gauss"],
                 results[stage]["log_like_per_frame"], results[stage]["failed"])
        prev_fp = fp
    return results
