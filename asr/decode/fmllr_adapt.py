"""Test-time fMLLR: per-speaker transforms of a set without its transcripts, as Kaldi's
``decode_fmllr.sh`` followed by ``make_fmllr_feats.sh`` (what pytorch-kaldi's TIMIT recipes
read for dev and test).

tri2 decodes the set's speaker-independent LDA+MLLT frames with a phone bigram graph (the
role of Kaldi's ``final.alimdl``) and the SAT (tri3) model aligns its phones; each speaker's
transform is estimated from that alignment (silence frames weighted 0.01) and refined by a
second pass that decodes the adapted frames (:func:`adapt_fmllr`). The training set needs
none of this: its transforms come from SAT training (``tri3/fmllr_feats.scp``).

A speaker with few frames gets a smaller transform (Kaldi's ``--fmllr-update-type``):
full [A b] from 300 weighted frames, diagonal [diag(a) b] from 60, offset [I b] from 10,
else the identity (:func:`fmllr_update_type`).

Layout written by :func:`write_fmllr_set`::

    feats.ark, feats.scp    adapted frames, [T, 40] float32 per utterance
    trans.ark, trans.scp    per-speaker transforms, [40, 41] float64
"""

from __future__ import annotations

import logging
import math
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
from asr.hmm.fmllr import FMLLR_UPDATES, FmllrStats, accumulate_fmllr, apply_fmllr, estimate_fmllr
from asr.hmm.model import GmmHmm
from asr.hmm.trainer import align_set
from asr.hmm.training_set import TrainingSet

log = logging.getLogger(__name__)


def fmllr_update_type(beta: float, min_count_full: float = 300.0, min_count_diag: float = 60.0,
                      min_count_offset: float = 10.0) -> str:
    """The largest fMLLR shape a speaker's statistics support.

    Args:
        beta: the speaker's (weighted) aligned frames.
        min_count_full, min_count_diag, min_count_offset: frames needed for a full
            [D, D+1] transform (D + 1 parameters per dimension: a 40-dim one needs many
            frames), a diagonal one (2 per dimension) and an offset (1 per dimension).

    Returns:
        ``full``, ``diag``, ``offset`` or ``none``.
    """
    for kind, need in (("full", min_count_full), ("diag", min_count_diag), ("offset", min_count_offset)):
        if beta > 0 and beta >= need:
            return kind
    return "none"


def adapt_fmllr(model: GmmHmm, feats: Mapping[str, np.ndarray], utt2spk: Mapping[str, str], graph,
                opts: SearchOptions, num_passes: int = 2, num_iters: int = 10, min_count: float | None = None,
                transforms: dict[str, np.ndarray] | None = None,
                first_pass: tuple[GmmHmm, Any] | None = None,
                silence_phones: tuple[str, ...] = (SILENCE_48,), silence_weight: float = 0.01,
                min_count_full: float = 300.0, min_count_diag: float = 60.0, min_count_offset: float = 10.0,
                kinds: dict[str, str] | None = None) -> dict[str, np.ndarray]:
    """Per-speaker fMLLR estimated from decoding passes; returns the adapted frames.

    Pass 1 decodes the speaker-independent frames; each further pass decodes the frames
    adapted so far and re-estimates the transform (on the speaker-independent frames)
    from its better alignment, as Kaldi's ``decode_fmllr.sh`` refines its first estimate.

    Each speaker's transform shape follows its weighted frame count beta in that pass
    (:func:`fmllr_update_type`): full, diag, offset or none. A shape whose estimate fails
    (singular statistics, a reflection) falls back to the next smaller one the frame
    count allows, down to the identity. One line
    logs how many speakers got each shape.

    Args:
        model: the SAT model.
        feats: utt -> [T, D] speaker-independent frames.
        utt2spk: utt -> speaker (an utterance without one is its own speaker).
        graph: decoding graph of ``model``.
        opts: search options of the alignment passes.
        num_passes: decoding passes that feed an estimate (at least 1).
        num_iters: :func:`asr.hmm.fmllr.estimate_fmllr` sweeps of a full estimate.
        min_count: the former two-way rule, kept for old callers: full from this many
            frames, else the identity (no diag or offset). None (default): the three
            thresholds below.
        transforms: if given, filled with speaker -> [D, D + 1] float64 transform of the
            last pass (applied to the speaker-independent frames).
        first_pass: (speaker-independent model on the same frames, its graph), e.g. tri2,
            which Kaldi's ``final.alimdl`` stands for: it decodes pass 1, and its phones
            are force-aligned with ``model`` for the statistics. The SAT model itself
            decodes unadapted frames poorly (24.7 % PER against tri2's 15.2 % on small's dev).
        silence_phones, silence_weight: frames of pdfs of these phones count with this
            weight in the statistics (Kaldi's ``decode_fmllr.sh``: 0.01; training leaves
            silence out, so the transform fits speech).
        min_count_full, min_count_diag, min_count_offset: weighted frames (beta) a speaker
            needs for a full, diagonal or offset-only transform (Kaldi's
            ``--fmllr-update-type`` full / diag / offset); below all three: identity.
        kinds: if given, filled with speaker -> shape of the last pass's transform
            (``full``, ``diag``, ``offset`` or ``none``).

    Returns:
        utt -> [T, D] float32 adapted frames.

    Raises:
        AsrError: a negative frame threshold.
    """
    if min_count is not None:
        given = {"min_count": min_count}
        thresholds = (min_count, math.inf, math.inf)
    else:
        given = {"min_count_full": min_count_full, "min_count_diag": min_count_diag,
                 "min_count_offset": min_count_offset}
        thresholds = (min_count_full, min_count_diag, min_count_offset)
    for name, value in given.items():
        if not value >= 0:  # also rejects NaN
            raise AsrError(f"fMLLR frame threshold {name} must be >= 0, got {value}")
    by_spk: dict[str, list[str]] = {}
    for u in sorted(feats):
        by_spk.setdefault(utt2spk.get(u, u), []).append(u)
    current = {u: np.asarray(x, dtype=np.float32) for u, x in feats.items()}
    sil_ids = [model.tm.phone_id[p] for p in silence_phones if p in model.tm.phone_id]
    sil_pdfs = np.concatenate([np.zeros(0, dtype=np.int64)] +
                              [model.pdf_map.phone_pdfs(model.tm, p) for p in sil_ids])
    chosen: dict[str, str] = {}
    failed = 0
    for pass_index in range(max(1, num_passes)):
        chosen, failed = {}, 0
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
            w, kind, fell_back = _speaker_fmllr(stats, num_iters, spk, thresholds)
            chosen[spk] = kind
            failed += fell_back
            for u in utts:
                adapted[u] = apply_fmllr(w, torch.from_numpy(np.asarray(feats[u], dtype=np.float32))).numpy()
            if transforms is not None:
                transforms[spk] = w.numpy()
        current = adapted
    if kinds is not None:
        kinds.update(chosen)
    counts = {k: sum(v == k for v in chosen.values()) for k in FMLLR_UPDATES}
    log.info("fMLLR of %d test speaker(s): %s (frames needed: full %.0f, diag %.0f, offset %.0f)%s",
             len(chosen), ", ".join(f"{counts[k]} {k}" for k in FMLLR_UPDATES), *thresholds,
             f"; {failed} fell back to a smaller transform after a failed estimate" if failed else "")
    return current


def _speaker_fmllr(stats: FmllrStats, num_iters: int, spk: str, thresholds: tuple[float, float, float]
                   ) -> tuple[torch.Tensor, str, bool]:
    """fMLLR of one test speaker: (W [D, D+1] float64, its shape, whether a larger shape
    was tried and failed). The largest shape ``stats.beta`` allows is tried first; one
    that fails (singular statistics, a reflection) gives way to the next smaller one that
    the frame count still allows, down to the identity."""
    allowed = [k for k, need in zip(FMLLR_UPDATES, thresholds) if stats.beta > 0 and stats.beta >= need]
    for kind in allowed:
        try:
            return estimate_fmllr(stats, num_iters=num_iters, update=kind)[0], kind, kind != allowed[0]
        except AsrError as e:
            # Per speaker at debug level only; the summary line counts the fallbacks.
            log.debug("fMLLR (%s) for test speaker %s failed (%s)", kind, spk, e)
    d = stats.k.shape[0]
    return torch.eye(d, d + 1, dtype=torch.float64), "none", bool(allowed)


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
        counts: ``utterances``, ``speakers``, ``frames``, and ``updates``: transform shape
        (``full``, ``diag``, ``offset``, ``none``) -> speakers.
    """
    out = Path(out_dir)
    transforms: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    adapted = adapt_fmllr(model, si_frames, utt2spk, graph, opts or SearchOptions(), transforms=transforms,
                          first_pass=first_pass, kinds=kinds)
    with kaldiio.WriteHelper(f"ark,scp:{out / 'trans.ark'},{out / 'trans.scp'}") as w:
        for spk in sorted(transforms):
            w(spk, transforms[spk])
    with kaldiio.WriteHelper(f"ark,scp:{out / 'feats.ark'},{out / 'feats.scp'}") as w:
        for utt in sorted(adapted):
            w(utt, np.asarray(adapted[utt], dtype=np.float32))
    summary = {"utterances": len(adapted), "speakers": len(transforms),
               "frames": int(sum(len(x) for x in adapted.values())),
               "updates": {k: sum(v == k for v in kinds.values()) for k in FMLLR_UPDATES}}
    log.info("fMLLR features of %d utterance(s), %d speaker(s) written", summary["utterances"],
             summary["speakers"])
    return summary
