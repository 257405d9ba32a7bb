"""tri2: triphones on LDA (spliced +-3 -> 40 dims) + MLLT features (``train_lda_mllt.sh``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from asr.features.splice import splice_frames
from asr.hmm.lda_mllt import accumulate_mllt, apply_affine, estimate_lda, estimate_mllt, transform_means
from asr.hmm.model import GmmHmm
from asr.hmm.topology import TransitionModel
from asr.hmm.trainer import AlignResult, Alignments, GmmTrainOptions, frame_pdfs, train_gmm_hmm
from asr.hmm.training_set import TrainingSet
from asr.hmm.tree import TreeOptions
from asr.hmm.triphone import build_triphone_model

log = logging.getLogger(__name__)

MLLT_ITERS = (2, 4, 6, 12)


def splice_set(data: TrainingSet, context: int) -> torch.Tensor:
    """[N, D * (2 context + 1)] frames of every utterance spliced with its own neighbours."""
    out = []
    for i in range(len(data)):
        x = data.utt_feats(i).numpy()
        out.append(torch.from_numpy(np.ascontiguousarray(splice_frames(x, context, context))))
    return torch.cat(out)


def transform_set(static: TrainingSet, transform: torch.Tensor, context: int) -> TrainingSet:
    """Splice ``static`` frames and apply a [D_out, F + 1] affine transform."""
    return static.with_feats(apply_affine(transform, splice_set(static, context)))


def train_lda_mllt(tm: TransitionModel, static: TrainingSet, ali: Alignments, prev: GmmHmm,
                   tree_opts: TreeOptions, opts: GmmTrainOptions, lda_dim: int = 40, context: int = 3,
                   mllt_iters: tuple[int, ...] = MLLT_ITERS, silence_phones: Sequence[int] = ()
                   ) -> tuple[GmmHmm, AlignResult, list[dict], torch.Tensor]:
    """Estimate LDA on the pdf classes of ``prev``'s alignment, then train triphones while
    re-estimating MLLT on ``mllt_iters``.

    Args:
        tm: topology (copied).
        static: CMVN-normalised static frames (e.g. 13 MFCCs), not spliced.
        ali: chain-position alignment from ``prev`` (tri1).
        prev: the model whose pdfs are the LDA classes.
        tree_opts, opts: tree size and iteration schedule.
        lda_dim: output dimension.
        context: splicing on each side, frames.
        mllt_iters: iterations that update MLLT.
        silence_phones: phone ids whose frames are left out of the LDA and MLLT statistics
            (as Kaldi's ``train_lda_mllt.sh``: silence would otherwise take a share of the
            discriminative directions and of the MLLT fit).

    Returns:
        (model, final alignment, per-iteration logs, final transform [lda_dim, F + 1]
        mapping spliced static frames to the model's features).
    """
    spliced = splice_set(static, context)
    lda = estimate_lda(spliced, frame_pdfs(prev, static, ali, silence_phones), lda_dim)
    data = static.with_feats(apply_affine(lda, spliced))
    del spliced
    model = build_triphone_model(tm, data, ali, tree_opts)
    state = {"transform": lda}

    def update_mllt(it: int, model: GmmHmm, data: TrainingSet, ali: Alignments) -> tuple[GmmHmm, TrainingSet]:
        if it not in mllt_iters:
            return model, data
        pdfs = frame_pdfs(model, data, ali, silence_phones)
        sel = torch.nonzero(pdfs >= 0).flatten()
        g, beta = accumulate_mllt(model.gmm, data.feats[sel], pdfs[sel])
        t, auxf = estimate_mllt(g, beta)
        log.info("tri2 iter %d: MLLT auxiliary function %.4f -> %.4f per frame", it,
                 auxf[0] / beta, auxf[-1] / beta)
        w = state["transform"]
        state["transform"] = torch.cat([t @ w[:, :-1], (t @ w[:, -1])[:, None]], 1)
        new_model = GmmHmm(model.tm, model.pdf_map, transform_means(model.gmm, t), model.chain_cache)
        return new_model, data.with_feats((data.feats.double() @ t.T).float())

    model, result, history = train_gmm_hmm(model, data, opts, ali=ali, stage="tri2", hook=update_mllt)
    return model, result, history, state["transform"]
