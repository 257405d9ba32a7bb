"""Tree-tied triphone training (Kaldi's ``train_deltas.sh``), reused by LDA+MLLT and SAT."""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch

from asr.hmm.gmm import DiagGmmSet
from asr.hmm.model import GmmHmm
from asr.hmm.questions import cluster_phones
from asr.hmm.topology import TransitionModel
from asr.hmm.trainer import AlignResult, Alignments, GmmTrainOptions, train_gmm_hmm
from asr.hmm.training_set import TrainingSet
from asr.hmm.tree import TreeOptions, TreePdfMap, build_tree
from asr.hmm.tree_stats import TreeStats, accumulate_tree_stats

log = logging.getLogger(__name__)

TRI_REALIGN_ITERS = (10, 20, 30)


def tri_train_options(total_gauss: int = 15000, **kw) -> GmmTrainOptions:
    """Kaldi's ``train_deltas.sh`` schedule: 35 iterations, realign at 10/20/30."""
    base = dict(num_iters=35, realign_iters=TRI_REALIGN_ITERS, max_iter_inc=25, total_gauss=total_gauss)
    base.update(kw)
    return GmmTrainOptions(**base)


def init_from_tree(tree: TreePdfMap, stats: TreeStats, var_floor: float = 0.01) -> DiagGmmSet:
    """One Gaussian per leaf, the ML fit of the statistics of the events it holds.

    A leaf without data (an unseen monophone state) gets the global mean and variance.
    """
    d = stats.dim
    pdfs = tree.event_pdfs(stats.events)
    leaf = np.zeros((tree.num_pdfs, 2 * d + 1))
    np.add.at(leaf, pdfs, stats.stats)
    total = stats.stats.sum(0)
    empty = leaf[:, 0] <= 0
    leaf[empty] = total
    n = leaf[:, :1]
    mean = leaf[:, 1: d + 1] / n
    var = np.maximum(leaf[:, d + 1:] / n - mean**2, var_floor)
    return DiagGmmSet(torch.from_numpy(mean), torch.from_numpy(var),
                      torch.zeros(tree.num_pdfs, dtype=torch.float64), torch.arange(tree.num_pdfs))


def build_triphone_model(tm: TransitionModel, data: TrainingSet, ali: Alignments,
                         tree_opts: TreeOptions) -> GmmHmm:
    """Tree statistics from ``ali``, automatic questions, tree, one-Gaussian leaves."""
    stats = accumulate_tree_stats(tm, data, ali)
    questions = cluster_phones(stats, tm.num_states, tree_opts.var_floor)
    log.info("tree: %d events, %d automatic questions", len(stats.events), len(questions))
    tree = build_tree(stats, questions, tm, tree_opts)
    return GmmHmm(copy.deepcopy(tm), tree, init_from_tree(tree, stats, tree_opts.var_floor))


def train_triphone(tm: TransitionModel, data: TrainingSet, ali: Alignments, tree_opts: TreeOptions,
                   opts: GmmTrainOptions, stage: str = "tri1") -> tuple[GmmHmm, AlignResult, list[dict]]:
    """Build a tree from the alignments ``ali`` of a previous model and train on it.

    Args:
        tm: the previous model's transition model (copied; its probabilities are the start).
        data: training utterances (the features the new model uses).
        ali: chain-position alignments from the previous model (same topology).
        tree_opts: tree size and thresholds.
        opts: iteration schedule.

    Returns:
        (model, its final alignment, per-iteration log dicts).
    """
    model = build_triphone_model(tm, data, ali, tree_opts)
    return train_gmm_hmm(model, data, opts, ali=ali, stage=stage)
