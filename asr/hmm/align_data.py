"""Align another data set (e.g. dev) with a trained stage, as Kaldi's ``align_si.sh`` /
``align_fmllr.sh``: the set's features go through the stage's transforms, and for tri3
per-speaker fMLLR transforms are estimated from a first pass with the tri2 model
(silence frames left out of the statistics, as in SAT training).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from asr.data.kaldi_dir import read_data_dir
from asr.data.phones import SILENCE_48
from asr.errors import AsrError
from asr.hmm.alignment_io import read_positions, write_alignments, write_fmllr
from asr.hmm.model import GmmHmm
from asr.hmm.sat_training import update_speaker_fmllr
from asr.hmm.stage_transform import load_stage_transform
from asr.hmm.trainer import AlignResult, align_set
from asr.hmm.training_set import TrainingSet
from asr.stage import read_done

log = logging.getLogger(__name__)


def align_data_dir(gmm_dir: str | os.PathLike, stage: str, data_dir: str | os.PathLike, feats: Any,
                   out_dir: str | os.PathLike, fmllr_passes: int = 2,
                   silence_phones: Sequence[str] = (SILENCE_48,)) -> AlignResult:
    """Align the utterances of ``data_dir`` (with ``text.phn``) using ``gmm_dir/<stage>``.

    Args:
        gmm_dir: the ``out_dir`` of :func:`asr.hmm.pipeline.train_gmm_pipeline`.
        stage: ``mono``, ``tri1``, ``tri2`` or ``tri3`` (tri3 also needs ``tri2``).
        data_dir: Kaldi data dir with phone transcripts.
        feats: static CMVN-normalised features of that set (FeatureStore or mapping), as
            given to the pipeline; the stage's own transform (``transform.json``) is applied.
        out_dir: receives ``ali``, ``phone_ali``, ``phones.txt``, ``pdf_counts.txt`` and,
            for tri3, ``trans.{ark,scp}`` and ``fmllr_feats.{ark,scp}``.
        fmllr_passes: tri3: rounds of (estimate fMLLR, re-align) after the first pass.
        silence_phones: tri3: frames aligned to these phones give no fMLLR statistics, as
            in SAT training and Kaldi's ``align_fmllr.sh`` (silence weight 0).

    Returns:
        The final alignment (unaligned utterances are logged, counted and not written).
    """
    gmm_dir, out = Path(gmm_dir), Path(out_dir)
    stage_dir = gmm_dir / stage
    if read_done(stage_dir) is None:
        raise AsrError(f"{stage_dir}: stage '{stage}' has not finished training")
    model = GmmHmm.load(stage_dir / "final.mdl")
    d = read_data_dir(data_dir)
    getter = feats.load if hasattr(feats, "load") else feats.__getitem__
    static = TrainingSet.build({u: np.asarray(getter(u), dtype=np.float32) for u in d.utts if u in feats},
                               d.phones, model.tm, d.utt2spk)
    data = load_stage_transform(stage_dir).apply_set(static)
    if stage != "tri3":
        result = align_set(model, data)
    else:
        si_model = GmmHmm.load(gmm_dir / "tri2" / "final.mdl")
        result = align_set(si_model, data)
        sil_ids = [model.tm.phone_id[p] for p in silence_phones if p in model.tm.phone_id]
        transforms = None
        for _ in range(fmllr_passes):
            transforms, data, gain = update_speaker_fmllr(model, data, result.positions, transforms,
                                                          silence_phones=sil_ids)
            log.info("%s: fMLLR pass, auxiliary gain %.4f per frame", data_dir, gain)
            result = align_set(model, data)
        write_fmllr(out, transforms, data)
    write_alignments(model, data, result.positions, out)
    log.info("%s aligned with %s: %d frames, avg log-likelihood %.4f, %d unaligned", data_dir, stage,
             result.num_frames, result.log_like / max(1, result.num_frames), len(result.failed))
    return result


def fmllr_from_alignments(gmm_dir: str | os.PathLike, data_dir: str | os.PathLike, feats: Any,
                          ali_dir: str | os.PathLike, out_dir: str | os.PathLike, passes: int = 2,
                          silence_phones: Sequence[str] = (SILENCE_48,)) -> dict[str, int]:
    """Per-speaker tri3 fMLLR features of ``data_dir`` estimated with given alignments, not a
    first pass: a contaminated copy of the training set under the clean set's alignments
    (``ali_dir/chain_ali.scp``, same utterance ids; contamination keeps the timing).

    Args:
        gmm_dir: the pipeline's ``out_dir`` (its ``tri3`` model and LDA+MLLT are used).
        data_dir: the copy (speakers as in ``utt2spk``: each copy's speakers get their own
            transforms).
        feats: its static CMVN-normalised features (FeatureStore or mapping).
        ali_dir: stage folder holding the alignments (the clean ``tri3``).
        out_dir: receives ``trans.{ark,scp}`` and ``fmllr_feats.{ark,scp}``.
        passes: rounds of estimation (each on top of the last) with the alignments fixed.
        silence_phones: frames aligned to these give no statistics (as SAT training).

    Returns:
        ``{"utterances", "frames", "unaligned"}``: utterances without an alignment of their
        length are left out (one warning with their count) and get no features.
    """
    stage_dir = Path(gmm_dir) / "tri3"
    if read_done(stage_dir) is None:
        raise AsrError(f"{stage_dir}: stage 'tri3' has not finished training")
    model = GmmHmm.load(stage_dir / "final.mdl")
    d = read_data_dir(data_dir)
    getter = feats.load if hasattr(feats, "load") else feats.__getitem__
    positions = dict(zip(d.utts, read_positions(ali_dir, d.utts)))
    frames = {u: np.asarray(getter(u), dtype=np.float32) for u in d.utts if u in feats}
    kept = {u: x for u, x in frames.items() if positions[u] is not None and len(positions[u]) == len(x)}
    missing = [u for u in d.utts if u not in kept]
    if missing:
        log.warning("%s: %d utterance(s) without features or an alignment of their length in %s (e.g. %s); "
                    "they get no fMLLR features", data_dir, len(missing), ali_dir, missing[0])
    if not kept:
        raise AsrError(f"{data_dir}: no utterance has an alignment in {ali_dir}")
    static = TrainingSet.build(kept, d.phones, model.tm, d.utt2spk)
    data = load_stage_transform(stage_dir).apply_set(static)
    ali = [positions[u] for u in data.utts]
    sil_ids = [model.tm.phone_id[p] for p in silence_phones if p in model.tm.phone_id]
    transforms = None
    for _ in range(passes):
        transforms, data, gain = update_speaker_fmllr(model, data, ali, transforms, silence_phones=sil_ids)
        log.info("%s: fMLLR pass with fixed alignments, auxiliary gain %.4f per frame", data_dir, gain)
    write_fmllr(out_dir, transforms, data)
    return {"utterances": len(data.utts), "frames": int(data.num_frames), "unaligned": len(missing)}
