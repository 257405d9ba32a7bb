"""Monophone flat start (Kaldi's ``gmm-init-mono`` + ``train_mono.sh``)."""

from __future__ import annotations

import torch

from asr.hmm.gmm import DiagGmmSet
from asr.hmm.model import GmmHmm, MonophonePdfMap
from asr.hmm.topology import TransitionModel
from asr.hmm.trainer import AlignResult, GmmTrainOptions, train_gmm_hmm
from asr.hmm.training_set import TrainingSet


def init_monophone(tm: TransitionModel, data: TrainingSet) -> GmmHmm:
    """One Gaussian per (phone, state), all with the global mean and variance of ``data``."""
    x = data.feats.to(torch.float64)
    mean, var = x.mean(0), x.var(0, unbiased=False).clamp_min(1e-3)
    gmm = DiagGmmSet.single_gaussian(tm.num_hmm_states, mean, var)
    return GmmHmm(tm, MonophonePdfMap(tm.num_hmm_states), gmm)


def train_mono(tm: TransitionModel, data: TrainingSet, opts: GmmTrainOptions | None = None
               ) -> tuple[GmmHmm, AlignResult, list[dict]]:
    """Flat-start monophone training: equal alignment, then Viterbi training.

    Args:
        tm: phones and topology (its transition probabilities are trained in place).
        data: training utterances with phone transcripts.
        opts: schedule (default: Kaldi's 40 iterations to 1000 Gaussians).

    Returns:
        (model, its final alignment of ``data``, per-iteration log dicts).
    """
    opts = opts or GmmTrainOptions()
    return train_gmm_hmm(init_monophone(tm, data), data, opts, stage="mono")
