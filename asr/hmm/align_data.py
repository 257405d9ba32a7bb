"""Align another data set (e.g. dev) with a trained stage, as Kaldi's ``align_si.sh`` /
``align_fmllr.sh``: the set's features go through the stage's transforms, and for tri3
per-speaker fMLLR transforms are estimated from a first pass with the tri2 model.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import kaldiio
import numpy as np
import torch

from asr.data.kaldi_dir import read_data_dir
from asr.errors import AsrError
from asr.features.deltas import add_deltas
from asr.hmm.alignment_io import write_alignments, write_fmllr
from asr.hmm.lda_mllt_training import transform_set
from asr.hmm.model import GmmHmm
from asr.hmm.sat_training import update_speaker_fmllr
from asr.hmm.trainer import AlignResult, align_set
from asr.hmm.training_set import TrainingSet

log = logging.getLogger(__name__)


def align_data_dir(gmm_dir: str | os.PathLike, stage: str, data_dir: str | os.PathLike, feats: Any,
                   out_dir: str | os.PathLike, splice_context: int = 3, fmllr_passes: int = 2) -> AlignResult:
    """Align the utterances of ``data_dir`` (with ``text.phn``) using ``gmm_dir/<stage>``.

    Args:
        gmm_dir: the ``out_dir`` of :func:`asr.hmm.pipeline.train_gmm_pipeline`.
        stage: ``mono``, ``tri1``, ``tri2`` or ``tri3`` (tri3 also needs ``tri2``).
        data_dir: Kaldi data dir with phone transcripts.
        feats: static CMVN-normalised features of that set (FeatureStore or mapping), as
            given to the pipeline.
        out_dir: receives ``ali``, ``phone_ali``, ``phones.txt``, ``pdf_counts.txt`` and,
            for tri3, ``trans.{ark,scp}`` and ``fmllr_feats.{ark,scp}``.
        splice_context: the pipeline's ``splice_context``.
        fmllr_passes: tri3: rounds of (estimate fMLLR, re-align) after the first pass.

    Returns:
        The final alignment (unaligned utterances are logged, counted and not written).
    """
    gmm_dir, out = Path(gmm_dir), Path(out_dir)
    stage_dir = gmm_dir / stage
    if not (stage_dir / "done.json").is_file():
        raise AsrError(f"{stage_dir}: stage '{stage}' has not finished training")
    model = GmmHmm.load(stage_dir / "final.mdl")
    d = read_data_dir(data_dir)
    getter = feats.load if hasattr(feats, "load") else feats.__getitem__
    static = TrainingSet.build({u: np.asarray(getter(u), dtype=np.float32) for u in d.utts if u in feats},
                               d.phones, model.tm, d.utt2spk)
    if stage in ("mono", "tri1"):
        data = static.with_feats(torch.cat([torch.from_numpy(add_deltas(static.utt_feats(i).numpy()))
                                            for i in range(len(static))]))
        result = align_set(model, data)
    else:
        transform = torch.from_numpy(np.array(kaldiio.load_mat(str(stage_dir / "final.mat"))))
        data = transform_set(static, transform, splice_context)
        if stage == "tri2":
            result = align_set(model, data)
        else:
            si_model = GmmHmm.load(gmm_dir / "tri2" / "final.mdl")
            result = align_set(si_model, data)
            transforms = None
            for _ in range(fmllr_passes):
                transforms, data, gain = update_speaker_fmllr(model, data, result.positions, transforms)
                log.info("%s: fMLLR pass, auxiliary gain %.4f per frame", data_dir, gain)
                result = align_set(model, data)
            write_fmllr(out, transforms, data)
    write_alignments(model, data, result.positions, out)
    log.info("%s aligned with %s: %d frames, avg log-likelihood %.4f, %d unaligned", data_dir, stage,
             result.num_frames, result.log_like / max(1, result.num_frames), len(result.failed))
    return result
