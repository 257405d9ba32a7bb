"""Decode a test set with one trained GMM-HMM stage of :mod:`asr.hmm.pipeline`.

Features are transformed as the stage was trained: deltas (mono, tri1), spliced
LDA+MLLT (tri2). tri3 (SAT) decodes in two passes like Kaldi's ``decode_fmllr.sh``:
a first pass on the speaker-independent LDA+MLLT frames gives a pdf alignment, from
which one fMLLR transform per test speaker is estimated; the adapted frames are decoded
again.
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
from asr.decode.gmm_decode import DecodeOptions, decode_gmm, decode_loglikes
from asr.decode.gmm_model import gmm_log_likelihoods
from asr.errors import AsrError
from asr.features.deltas import add_deltas
from asr.features.splice import splice_frames
from asr.hmm.fmllr import FmllrStats, accumulate_fmllr, apply_fmllr, estimate_fmllr
from asr.hmm.model import GmmHmm
from asr.hmm.trainer import align_set
from asr.hmm.training_set import TrainingSet

log = logging.getLogger(__name__)


def stage_features(stage: str, stage_dir: str | os.PathLike, static: Mapping[str, np.ndarray],
                   splice_context: int = 3) -> dict[str, np.ndarray]:
    """Speaker-independent features of a stage.

    Args:
        stage: ``mono``, ``tri1``, ``tri2`` or ``tri3``.
        stage_dir: the stage's output dir (``final.mat`` for tri2/tri3).
        static: utt -> [T, 13] CMVN-normalised static features (as given to training).
        splice_context: frames each side spliced before LDA (the pipeline's ``splice_context``).

    Returns:
        utt -> [T, D] float32: [T, 39] with deltas, or [T, 40] LDA+MLLT frames.
    """
    if stage in ("mono", "tri1"):
        return {u: add_deltas(np.asarray(x, dtype=np.float32)) for u, x in static.items()}
    if stage not in ("tri2", "tri3"):
        raise AsrError(f"unknown GMM stage {stage!r}")
    mat_path = Path(stage_dir) / "final.mat"
    if not mat_path.is_file():
        raise AsrError(f"{mat_path}: missing LDA+MLLT transform of stage {stage}")
    m = np.asarray(kaldiio.load_mat(str(mat_path)), dtype=np.float64)  # [D_out, F + 1]
    out = {}
    for u, x in static.items():
        spliced = splice_frames(np.asarray(x, dtype=np.float32), splice_context, splice_context)
        out[u] = (spliced @ m[:, :-1].T + m[:, -1]).astype(np.float32)
    return out


def adapt_fmllr(model: GmmHmm, feats: Mapping[str, np.ndarray], utt2spk: Mapping[str, str], graph,
                opts: DecodeOptions, num_passes: int = 2, num_iters: int = 10, min_count: float = 100.0,
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
                    path = decode_loglikes(gmm_log_likelihoods(model, current[u]), graph, opts)
                    if path is not None:
                        frame_pdfs[u] = path.pdfs
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
                     opts: DecodeOptions) -> dict[str, np.ndarray]:
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


def prepare_features(stage: str, stage_dir: str | os.PathLike, static: Mapping[str, np.ndarray],
                     utt2spk: Mapping[str, str], graph, model: GmmHmm,
                     adapt_opts: DecodeOptions | None = None,
                     first_pass: tuple[GmmHmm, Any] | None = None) -> dict[str, np.ndarray]:
    """The frames a stage's model decodes: :func:`stage_features`, then fMLLR for tri3.

    Args:
        adapt_opts: search options of tri3's adaptation passes (default
            :class:`DecodeOptions`: a fixed acoustic scale, as Kaldi's first pass uses).
        first_pass: tri3's first-pass model and graph (see :func:`adapt_fmllr`).
    """
    feats = stage_features(stage, stage_dir, static)
    if stage == "tri3":
        feats = adapt_fmllr(model, feats, utt2spk, graph, adapt_opts or DecodeOptions(), first_pass=first_pass)
    return feats


def decode_stage(stage: str, stage_dir: str | os.PathLike, static: Mapping[str, np.ndarray],
                 utt2spk: Mapping[str, str], graph, opts: DecodeOptions,
                 model: GmmHmm | None = None, adapt_opts: DecodeOptions | None = None,
                 first_pass: tuple[GmmHmm, Any] | None = None) -> dict[str, list[str]]:
    """Recognised phones of every utterance with a pipeline stage's model.

    Args:
        stage, stage_dir: the stage and its dir (``final.mdl``, ``final.mat``).
        static: utt -> [T, 13] CMVN-normalised static features.
        utt2spk: utt -> speaker (used by tri3's adaptation).
        graph: decoding graph of the stage's model (:func:`asr.graph.hclg.build_graph`).
        opts: search options of the final pass.
        model: the loaded model (default: read ``stage_dir/final.mdl``).
        adapt_opts: search options of tri3's adaptation passes (see :func:`prepare_features`).
        first_pass: tri3's first-pass model and graph (see :func:`adapt_fmllr`).

    Returns:
        utt -> phones (48-set), as :func:`asr.decode.gmm_decode.decode_gmm`.
    """
    model = model or GmmHmm.load(Path(stage_dir) / "final.mdl")
    feats = prepare_features(stage, stage_dir, static, utt2spk, graph, model, adapt_opts, first_pass)
    return decode_gmm(model, feats, graph, model.tm.phones, opts)


def tune_acoustic_scale(stage: str, stage_dir: str | os.PathLike, static: Mapping[str, np.ndarray],
                        utt2spk: Mapping[str, str], refs: Mapping[str, list[str]], graph,
                        scales: tuple[float, ...], opts: DecodeOptions | None = None,
                        model: GmmHmm | None = None, adapt_opts: DecodeOptions | None = None
                        ) -> tuple[float, dict[float, float]]:
    """Pick the acoustic scale with the lowest PER on a tuning (dev) set.

    Args:
        stage, stage_dir, static, utt2spk, graph, model, adapt_opts: as :func:`decode_stage`
            (tri3's adaptation is done once, with ``adapt_opts``).
        refs: utt -> reference phones (48- or 39-set) of the tuning set.
        scales: candidate acoustic scales.
        opts: other search options (``acoustic_scale`` is replaced).

    Returns:
        (best scale, scale -> PER in percent). Ties go to the first scale listed.
    """
    if not scales:
        raise AsrError("acoustic-scale tuning: no candidate scales")
    opts = opts or DecodeOptions()
    model = model or GmmHmm.load(Path(stage_dir) / "final.mdl")
    feats = prepare_features(stage, stage_dir, static, utt2spk, graph, model, adapt_opts)
    best, per, _ = tune_on_features(stage, model, feats, refs, graph, scales, opts)
    return best, per


def tune_on_features(stage: str, model: GmmHmm, feats: Mapping[str, np.ndarray], refs: Mapping[str, list[str]],
                     graph, scales: tuple[float, ...], opts: DecodeOptions
                     ) -> tuple[float, dict[float, float], dict[str, list[str]]]:
    """:func:`tune_acoustic_scale` on frames already prepared (:func:`prepare_features`).

    Returns:
        (best scale, scale -> PER in percent, the hypotheses at the best scale).
    """
    from dataclasses import replace

    from asr.decode.scoring import fold_to_39, score

    if not scales:
        raise AsrError("acoustic-scale tuning: no candidate scales")
    refs39 = fold_to_39(refs)
    per, hyps = {}, {}
    for s in scales:
        hyps[s] = decode_gmm(model, feats, graph, model.tm.phones, replace(opts, acoustic_scale=s))
        per[s] = score(refs39, fold_to_39(hyps[s])).counts.rate()
        log.info("%s: acoustic scale %.3f: PER %.2f%% on the tuning set", stage, s, per[s])
    best = min(scales, key=lambda s: per[s])
    return best, per, hyps[best]
