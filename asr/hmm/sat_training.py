"""tri3: speaker adaptive training with per-speaker fMLLR (Kaldi's ``train_sat.sh``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

from asr.errors import AsrError

from asr.hmm.fmllr import FmllrStats, accumulate_fmllr, apply_fmllr, compose_fmllr, estimate_fmllr
from asr.hmm.model import GmmHmm
from asr.hmm.topology import TransitionModel
from asr.hmm.trainer import AlignResult, Alignments, GmmTrainOptions, align_set, frame_pdfs, train_gmm_hmm
from asr.hmm.training_set import TrainingSet
from asr.hmm.tree import TreeOptions
from asr.hmm.triphone import build_triphone_model

log = logging.getLogger(__name__)

FMLLR_ITERS = (2, 4, 6, 12)

# speaker -> [D, D + 1] transform
SpeakerTransforms = dict[str, torch.Tensor]


def update_speaker_fmllr(model: GmmHmm, data: TrainingSet, ali: Alignments,
                         transforms: SpeakerTransforms | None = None, num_iters: int = 10,
                         min_count: float = 100.0, silence_phones: Sequence[int] = ()
                         ) -> tuple[SpeakerTransforms, TrainingSet, float]:
    """Estimate one fMLLR per speaker on ``data`` (already adapted by ``transforms``) and
    compose it with them. Frames aligned to ``silence_phones`` give no statistics (Kaldi's
    ``train_sat.sh``, silence weight 0), so the transform fits the speaker's speech.

    Speakers with fewer than ``min_count`` aligned frames, or whose estimate fails
    (singular statistics), keep their transform (identity at first); their count is logged.

    Returns:
        (composed transforms, ``data`` with the new transforms applied on top,
        auxiliary-function improvement per frame).
    """
    d = data.dim
    transforms = dict(transforms or {})
    pdfs = frame_pdfs(model, data, ali, silence_phones)
    feats = data.feats.clone()
    gain, frames, skipped = 0.0, 0.0, 0
    for spk, utts in sorted(data.speaker_index().items()):
        rows = torch.cat([torch.arange(int(data.offsets[i]), int(data.offsets[i + 1])) for i in utts])
        sel = rows[pdfs[rows] >= 0]
        stats = FmllrStats.zeros(d)
        if len(sel):
            accumulate_fmllr(model.gmm, data.feats[sel], pdfs[sel], stats)
        w = None
        if stats.beta >= min_count:
            try:
                w, auxf = estimate_fmllr(stats, num_iters=num_iters)
            except AsrError as e:  # one bad speaker must not stop training
                log.warning("fMLLR for speaker %s failed (%s); keeping its previous transform", spk, e)
        if w is None:
            skipped += 1
            transforms.setdefault(spk, torch.eye(d, d + 1, dtype=torch.float64))
            continue
        gain += auxf[-1] - auxf[0]
        frames += stats.beta
        feats[rows] = apply_fmllr(w, data.feats[rows])
        prev = transforms.get(spk, torch.eye(d, d + 1, dtype=torch.float64))
        transforms[spk] = compose_fmllr(w, prev)
    if skipped:
        log.warning("fMLLR: %d speaker(s) (fewer than %.0f frames, or a failed estimate) keep their "
                    "previous transform", skipped, min_count)
    return transforms, data.with_feats(feats), gain / max(frames, 1.0)


def apply_speaker_transforms(data: TrainingSet, transforms: SpeakerTransforms) -> TrainingSet:
    """``data`` with each speaker's transform applied (speakers without one unchanged)."""
    feats = data.feats.clone()
    for spk, utts in data.speaker_index().items():
        if spk in transforms:
            for i in utts:
                a, b = int(data.offsets[i]), int(data.offsets[i + 1])
                feats[a:b] = apply_fmllr(transforms[spk], data.feats[a:b])
    return data.with_feats(feats)


def train_sat(tm: TransitionModel, data_si: TrainingSet, ali: Alignments, prev: GmmHmm,
              tree_opts: TreeOptions, opts: GmmTrainOptions, fmllr_iters: tuple[int, ...] = FMLLR_ITERS,
              silence_phones: Sequence[int] = ()) -> tuple[GmmHmm, AlignResult, list[dict], SpeakerTransforms]:
    """SAT: fMLLR from ``prev`` (tri2) and its alignment, a new tree on adapted frames,
    then training with fMLLR re-estimated on ``fmllr_iters``.

    Args:
        tm: topology (copied).
        data_si: speaker-independent features (tri2's LDA+MLLT frames).
        ali: chain-position alignment of ``data_si`` by ``prev``.
        prev: the speaker-independent model used for the first transforms.
        tree_opts, opts: tree size and iteration schedule.
        fmllr_iters: iterations that re-estimate the transforms.
        silence_phones: phone ids whose frames give no fMLLR statistics.

    Returns:
        (model, final alignment on adapted frames, per-iteration logs, per-speaker transforms
        from ``data_si`` to the model's space).
    """
    transforms, data, gain = update_speaker_fmllr(prev, data_si, ali, silence_phones=silence_phones)
    log.info("tri3: initial fMLLR from the SI model, auxiliary gain %.4f per frame", gain)
    model = build_triphone_model(tm, data, ali, tree_opts)
    state = {"transforms": transforms, "data": data}

    def update(it: int, model: GmmHmm, data: TrainingSet, ali: Alignments) -> tuple[GmmHmm, TrainingSet]:
        if it not in fmllr_iters:
            return model, data
        state["transforms"], state["data"], gain = update_speaker_fmllr(
            model, data, ali, state["transforms"], silence_phones=silence_phones)
        log.info("tri3 iter %d: fMLLR auxiliary gain %.4f per frame", it, gain)
        return model, state["data"]

    model, result, history = train_gmm_hmm(model, data, opts, ali=ali, stage="tri3", hook=update)
    # The last transforms date from the last fMLLR iteration; as Kaldi's align_fmllr.sh,
    # re-estimate them with the final model and align once more with them.
    transforms, adapted, gain = update_speaker_fmllr(model, state["data"], result.positions, state["transforms"],
                                                     silence_phones=silence_phones)
    log.info("tri3 final: fMLLR auxiliary gain %.4f per frame", gain)
    return model, align_set(model, adapted, opts.batch_size), history, transforms
