"""Test-time fMLLR: per-speaker transforms of a set without its transcripts, as Kaldi's
``decode_fmllr.sh`` followed by ``make_fmllr_feats.sh`` (what pytorch-kaldi's TIMIT recipes
read for dev and test).

tri2 decodes the set's speaker-independent LDA+MLLT frames with a phone bigram graph (the
role of Kaldi's ``final.alimdl``) and the SAT (tri3) model aligns its phones; each speaker's
transform is estimated from that alignment (silence frames weighted 0.01) and refined by a
second pass that decodes the adapted frames (:func:`adapt_fmllr`). The training set needs
none of this: its transforms come from SAT training (``tri3/fmllr_feats.scp``).

Layout written by :func:`write_fmllr_set`::

    feats.ark, feats.scp    adapted frames, [T, 40] float32 per utterance
    trans.ark, trans.scp    per-speaker transforms, [40, 41] float64
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kaldiio
import numpy as np
import torch

from asr.data.phones import SILENCE_48
from asr.decode.gmm_decode import decode_gmm
from asr.decode.gmm_model import gmm_log_likelihoods
from asr.errors import AsrError
from asr.graph.search import SearchOptions, best_path
from asr.hmm.fmllr import FmllrStats, accumulate_fmllr, apply_fmllr, estimate_fmllr
from asr.hmm.model import GmmHmm
from asr.hmm.trainer import align_set
from asr.hmm.training_set import TrainingSet

log = logging.getLogger(__name__)


def adapt_fmllr(model: GmmHmm, feats: Mapping[str, np.ndarray], utt2spk: Mapping[str, str], graph,
                opts: SearchOptions, num_passes: int = 2, num_iters: int = 10, min_count: float = 100.0,
                transforms: dict[str, np.ndarray] | None = None,
                first_pass: tuple[GmmHmm, Any] | None = None,
                silence_phones: tuple[str, ...] = (SILENCE_48,), silence_weight: float = 0.01
                ) -> dict[str, np.ndarray]:
    """Per-speaker fMLLR estimated from decoding passes; returns the adapted frames.

    Pass 1 decodes the speaker-independent frames; each further pass decodes the frames
    adapted so far and re-estimates the transform (on the speaker-independent frames)
    from its better alignment, as Kaldi's ``decode_fmllr.sh`` refines its first estimate.

    Args:
        model: the SAT model.
        feats: utt -> [T, D] speaker-independent frames.
        utt2spk: utt -> speaker (an utterance without one is its own speaker).
        graph: decoding graph of ``model``.
        opts: search options of the alignment passes.
        num_passes: decoding passes that feed an estimate (at least 1).
        num_iters, min_count: :func:`asr.hmm.fmllr.estimate_fmllr` sweeps; speakers with
            fewer aligned frames keep the identity (counted in a warning).
        transforms: if given, filled with speaker -> [D, D + 1] float64 transform of the
            last pass (applied to the speaker-independent frames).
        first_pass: (speaker-independent model on the same frames, its graph), e.g. tri2,
            which Kaldi's ``final.alimdl`` stands for: it decodes pass 1, and its phones
            are force-aligned with ``model`` for the statistics. The SAT model itself
            decodes unadapted frames poorly (24.7 % PER against tri2's 15.2 % on small's dev).
        silence_phones, silence_weight: frames of pdfs of these phones count with this
            weight in the statistics (Kaldi's ``decode_fmllr.sh``: 0.01; training leaves
            silence out, so the transform fits speech).

    Returns:
        utt -> [T, D] float32 adapted frames.
    """
    by_spk: dict[str, list[str]] = {}
    for u in sorted(feats):
        by_spk.setdefault(utt2spk.get(u, u), []).append(u)
    current = {u: np.asarray(x, dtype=np.float32) for u, x in feats.items()}
    sil_ids = [model.tm.phone_id[p] for p in silence_phones if p in model.tm.phone_id]
    sil_pdfs = np.concatenate([np.zeros(0, dtype=np.int64)] +
                              [model.pdf_map.phone_pdfs(model.tm, p) for p in sil_ids])
    for pass_index in range(max(1, num_passes)):
        kept = 0
        adapted: dict[str, np.ndarray] = {}
        for spk, utts in by_spk.items():
            stats = FmllrStats.zeros(model.gmm.dim)
            if pass_index == 0 and first_pass is not None:
                frame_pdfs = _first_pass_pdfs(model, *first_pass, {u: current[u] for u in utts}, opts)
            else:
                frame_pdfs = {}
                for u in utts:
                    path = best_path(gmm_log_likelihoods(model, current[u]), graph, opts)
                    if path is not None:
                        frame_pdfs[u] = path.columns
            for u, pdfs in frame_pdfs.items():
                if len(pdfs) == len(feats[u]):
                    weights = np.where(np.isin(pdfs, sil_pdfs), silence_weight, 1.0)
                    accumulate_fmllr(model.gmm, torch.from_numpy(np.asarray(feats[u], dtype=np.float32)),
                                     torch.from_numpy(np.asarray(pdfs)), stats,
                                     weights=torch.from_numpy(weights))
            if stats.beta < min_count:
                kept += 1
                w = torch.eye(model.gmm.dim, model.gmm.dim + 1, dtype=torch.float64)
            else:
                w = _speaker_fmllr(stats, num_iters, spk)
                kept += w is None
                if w is None:
                    w = torch.eye(model.gmm.dim, model.gmm.dim + 1, dtype=torch.float64)
            for u in utts:
                adapted[u] = apply_fmllr(w, torch.from_numpy(np.asarray(feats[u], dtype=np.float32))).numpy()
            if transforms is not None:
                transforms[spk] = w.numpy()
        current = adapted
    if kept:
        log.warning("fMLLR: %d of %d test speaker(s) had fewer than %.0f aligned frames or a failed "
                    "estimate; not adapted",
                    kept, len(by_spk), min_count)
    return current


def _speaker_fmllr(stats: FmllrStats, num_iters: int, spk: str) -> torch.Tensor | None:
    """fMLLR of one test speaker, or None (logged) when the estimate fails or is a reflection."""
    try:
        return estimate_fmllr(stats, num_iters=num_iters)[0]
    except AsrError as e:
        log.warning("fMLLR for test speaker %s failed (%s); not adapted", spk, e)
        return None


def _first_pass_pdfs(model: GmmHmm, si_model: GmmHmm, si_graph, feats: Mapping[str, np.ndarray],
                     opts: SearchOptions) -> dict[str, np.ndarray]:
    """utt -> [T] pdfs of ``model``: ``si_model`` decodes, ``model`` aligns its phones."""
    hyps = decode_gmm(si_model, feats, si_graph, si_model.tm.phones, opts)
    hyps = {u: " ".join(p) for u, p in hyps.items() if p}
    if not hyps:
        return {}
    data = TrainingSet.build({u: feats[u] for u in hyps}, hyps, model.tm)
    out = {}
    for i, pos in enumerate(align_set(model, data).positions):
        if pos is not None:  # too short for its hypothesis: no statistics from it
            out[data.utts[i]] = model.chain(data.phone_ids[i]).pdfs[pos]
    return out


def write_fmllr_set(model: GmmHmm, si_frames: Mapping[str, np.ndarray], utt2spk: Mapping[str, str],
                    graph, out_dir: str | os.PathLike, opts: SearchOptions | None = None,
                    first_pass: tuple[GmmHmm, Any] | None = None) -> dict:
    """Estimate per-speaker fMLLR by decoding, and write the adapted features of one set.

    Args:
        model: the SAT (tri3) model.
        si_frames: utt -> [T, 40] speaker-independent LDA+MLLT frames (the stage transform
            applied to the CMVN-normalised static features).
        utt2spk: utt -> speaker.
        graph: decoding graph of ``model`` (:func:`asr.graph.hclg.build_graph`).
        out_dir: an existing folder (see the module docstring).
        opts: search options of the adaptation passes (default :class:`SearchOptions`).
        first_pass: the speaker-independent model and graph that decode the first pass
            (tri2; see :func:`adapt_fmllr`), or None for the SAT model.

    Returns:
        counts: ``utterances``, ``speakers``, ``frames``.
    """
    out = Path(out_dir)
    transforms: dict[str, np.ndarray] = {}
    adapted = adapt_fmllr(model, si_frames, utt2spk, graph, opts or SearchOptions(), transforms=transforms,
                          first_pass=first_pass)
    with kaldiio.WriteHelper(f"ark,scp:{out / 'trans.ark'},{out / 'trans.scp'}") as w:
        for spk in sorted(transforms):
            w(spk, transforms[spk])
    with kaldiio.WriteHelper(f"ark,scp:{out / 'feats.ark'},{out / 'feats.scp'}") as w:
        for utt in sorted(adapted):
            w(utt, np.asarray(adapted[utt], dtype=np.float32))
    summary = {"utterances": len(adapted), "speakers": len(transforms),
               "frames": int(sum(len(x) for x in adapted.values()))}
    log.info("fMLLR features of %d utterance(s), %d speaker(s) written", summary["utterances"],
             summary["speakers"])
    return summary
