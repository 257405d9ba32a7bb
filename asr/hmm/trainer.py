"""Viterbi training of a GMM-HMM: align, accumulate, re-estimate, split mixtures.

Follows the shape of Kaldi's ``train_mono.sh`` / ``train_deltas.sh``: iterations of
accumulation and ML update, re-alignment on chosen iterations, and a total number of
Gaussians raised linearly up to ``max_iter_inc``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from asr.hmm.gmm import GmmStats
from asr.hmm.gmm_update import GmmUpdateOptions, mixup_targets, split_gaussians, update_gmm_ml
from asr.hmm.model import GmmHmm
from asr.hmm.topology import transition_counts
from asr.hmm.training_set import Alignments, TrainingSet
from asr.hmm.viterbi import equal_alignment, viterbi_batch

log = logging.getLogger(__name__)

MONO_REALIGN_ITERS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 23, 26, 29, 32, 35, 38)


@dataclass
class GmmTrainOptions:
    """Schedule of one GMM-HMM training stage (Kaldi's script option names).

    Attributes:
        num_iters: training iterations.
        realign_iters: iterations that start with a Viterbi re-alignment.
        max_iter_inc: last iteration that adds Gaussians.
        total_gauss: target total number of Gaussians.
        power: mixture-allocation exponent on state occupancy.
        mixup_min_count: minimum frames per Gaussian when splitting.
        perturb_factor: mean perturbation (in standard deviations) when splitting.
        batch_size: utterances per batched Viterbi pass.
        seed: seeds the splitting directions.
        update: options of the ML GMM update.
        transition_floor: floor on transition probabilities.
    """

    num_iters: int = 40
    realign_iters: tuple[int, ...] = MONO_REALIGN_ITERS
    max_iter_inc: int = 30
    total_gauss: int = 1000
    power: float = 0.25
    mixup_min_count: float = 20.0
    perturb_factor: float = 0.01
    batch_size: int = 64
    seed: int = 0
    update: GmmUpdateOptions = field(default_factory=GmmUpdateOptions)
    transition_floor: float = 0.01


@dataclass
class AlignResult:
    """Alignments of a set plus totals (log score in nats over aligned frames)."""

    positions: Alignments
    log_like: float
    num_frames: int
    failed: list[str]


def equal_alignments(model: GmmHmm, data: TrainingSet) -> AlignResult:
    """Flat-start alignments: each utterance's frames split evenly over its chain."""
    out: Alignments = []
    failed = []
    for i, ids in enumerate(data.phone_ids):
        pos = equal_alignment(int(data.offsets[i + 1] - data.offsets[i]), len(model.chain(ids).pdfs))
        out.append(pos)
        if pos is None:
            failed.append(data.utts[i])
    _report_failures(failed, "equal alignment")
    return AlignResult(out, float("nan"), sum(len(p) for p in out if p is not None), failed)


def align_set(model: GmmHmm, data: TrainingSet, batch_size: int = 64, progress: bool = False,
              scorer: Callable[[int], torch.Tensor] | None = None) -> AlignResult:
    """Viterbi-align every utterance of ``data`` to its transcript with ``model``.

    Args:
        scorer: ``scorer(i) -> [T_i, num_pdfs]`` log-likelihoods of utterance ``i``'s frames
            for every pdf, in place of the model's GMMs (a hybrid network's scaled
            posteriors, for realignment); the transition model and tree are ``model``'s.

    Utterances shorter than their chain cannot be aligned: each is named in the log,
    counted in ``failed`` and given a None alignment.
    """
    log_loop, log_fwd = model.tm.log_probs()
    order = np.argsort(np.diff(data.offsets), kind="stable")  # similar lengths batch well
    out: Alignments = [None] * len(data)
    total, frames, failed = 0.0, 0, []
    batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc="align", disable=not progress, leave=False):
        ems, los, fos = [], [], []
        for i in batch:
            chain = model.chain(data.phone_ids[i])
            if scorer is not None:
                ems.append(scorer(i)[:, torch.from_numpy(chain.pdfs)].float())  # [T, S]
            else:
                used, where = np.unique(chain.pdfs, return_inverse=True)
                ll = model.gmm.pdf_log_likelihoods(data.utt_feats(i), torch.from_numpy(used))  # [T, U]
                ems.append(ll[:, torch.from_numpy(where)])  # [T, S]
            los.append(torch.from_numpy(log_loop[chain.hmm_states]).float())
            fos.append(torch.from_numpy(log_fwd[chain.hmm_states]).float())
        for i, res in zip(batch, viterbi_batch(ems, los, fos)):
            if res is None:
                failed.append(data.utts[i])
                continue
            out[i] = res[0]
            total += res[1]
            frames += len(res[0])
    _report_failures(sorted(failed), "Viterbi alignment")
    return AlignResult(out, total, frames, sorted(failed))


def _report_failures(failed: list[str], what: str) -> None:
    for u in failed:
        log.warning("%s failed for utterance %s (fewer frames than HMM states); dropped", what, u)
    if failed:
        log.warning("%s: %d utterance(s) dropped", what, len(failed))


def frame_pdfs(model: GmmHmm, data: TrainingSet, ali: Alignments, exclude_phones: Sequence[int] = ()
               ) -> torch.Tensor:
    """[N] pdf id of every frame of ``data``; -1 for frames of unaligned utterances and for
    frames aligned to a phone id in ``exclude_phones`` (Kaldi's ``weight-silence-post 0.0``)."""
    pdfs = np.full(data.num_frames, -1, dtype=np.int64)
    phone_of = model.tm.phone_of_hmm_state
    excluded = np.asarray(exclude_phones, dtype=np.int64)
    for i, pos in enumerate(ali):
        if pos is not None:
            chain = model.chain(data.phone_ids[i])
            utt = chain.pdfs[pos]
            if len(excluded):
                utt = np.where(np.isin(phone_of[chain.hmm_states[pos]], excluded), -1, utt)
            pdfs[data.offsets[i]: data.offsets[i + 1]] = utt
    return torch.from_numpy(pdfs)


def accumulate_set(model: GmmHmm, data: TrainingSet, ali: Alignments, chunk: int = 2_000_000
                   ) -> tuple[GmmStats, np.ndarray, np.ndarray]:
    """GMM statistics and transition counts of ``data`` under alignments ``ali``.

    Returns:
        (GMM stats, self-loop counts [num_hmm_states], forward counts [num_hmm_states]).
    """
    stats = model.gmm.new_stats()
    pdfs = frame_pdfs(model, data, ali)
    frames = torch.nonzero(pdfs >= 0).flatten()
    for start in range(0, len(frames), chunk):
        idx = frames[start: start + chunk]
        model.gmm.accumulate(data.feats[idx], pdfs[idx], stats)
    loop = np.zeros(model.tm.num_hmm_states)
    fwd = np.zeros(model.tm.num_hmm_states)
    for i, pos in enumerate(ali):
        if pos is not None:
            lo, fo = transition_counts(pos, model.chain(data.phone_ids[i]).hmm_states, model.tm.num_hmm_states)
            loop += lo
            fwd += fo
    return stats, loop, fwd


def update_model(model: GmmHmm, stats: GmmStats, loop: np.ndarray, fwd: np.ndarray,
                 opts: GmmTrainOptions, num_gauss: int, gen: torch.Generator) -> GmmHmm:
    """ML update of GMMs and transitions, then split mixtures towards ``num_gauss``."""
    gmm = update_gmm_ml(model.gmm, stats, opts.update)
    model.tm.update(loop, fwd, opts.transition_floor)
    if num_gauss > gmm.num_gauss:
        pdf_occ = torch.zeros(gmm.num_pdfs, dtype=torch.float64).index_add_(
            0, model.gmm.pdf_of_gauss, stats.occ)
        targets = mixup_targets(pdf_occ, gmm.gauss_counts(), num_gauss, opts.power, opts.mixup_min_count)
        gmm = split_gaussians(gmm, targets, opts.perturb_factor, gen)
    return GmmHmm(model.tm, model.pdf_map, gmm, model.chain_cache)


# Called at the start of an iteration (after any re-alignment, before accumulation) with
# (iteration, model, data, alignments); returns the model and data to use from then on.
IterationHook = Callable[[int, GmmHmm, TrainingSet, Alignments], tuple[GmmHmm, TrainingSet]]


def train_gmm_hmm(model: GmmHmm, data: TrainingSet, opts: GmmTrainOptions,
                  ali: Alignments | None = None, stage: str = "gmm",
                  hook: IterationHook | None = None) -> tuple[GmmHmm, AlignResult, list[dict]]:
    """Train ``model`` on ``data`` for ``opts.num_iters`` iterations.

    Args:
        model: initial model (its GMMs are re-estimated on the first iteration).
        data: training utterances.
        opts: schedule.
        ali: initial alignments (chain positions); default: equal alignment (flat start).
        stage: name used in log lines.
        hook: feature/model transform updates (MLLT, fMLLR) on chosen iterations.

    Returns:
        (trained model, final Viterbi alignment with it, one dict per iteration with
        ``iter``, ``log_like_per_frame``, ``num_gauss``, ``seconds``, ``failed``).
    """
    gen = torch.Generator().manual_seed(opts.seed)
    result = equal_alignments(model, data) if ali is None else AlignResult(ali, float("nan"), 0, [])
    num_gauss = model.gmm.num_gauss
    inc = max(0, (opts.total_gauss - num_gauss) // max(1, opts.max_iter_inc))
    history = []
    for it in range(opts.num_iters):
        t0 = time.perf_counter()
        if it in opts.realign_iters:
            result = align_set(model, data, opts.batch_size)
        if hook is not None:
            model, data = hook(it, model, data, result.positions)
        stats, loop, fwd = accumulate_set(model, data, result.positions)
        avg = stats.log_like / max(1, stats.num_frames)
        model = update_model(model, stats, loop, fwd, opts, num_gauss, gen)
        if 0 < it <= opts.max_iter_inc:
            num_gauss = min(opts.total_gauss, num_gauss + inc)
        secs = time.perf_counter() - t0
        history.append({"iter": it, "log_like_per_frame": avg, "num_gauss": model.gmm.num_gauss,
                        "seconds": secs, "failed": len(result.failed), "realigned": it in opts.realign_iters})
        log.info("%s iter %d: avg log-likelihood/frame %.4f over %d frames, %d Gaussians, %.2fs%s",
                 stage, it, avg, stats.num_frames, model.gmm.num_gauss, secs,
                 f", {len(result.failed)} utterance(s) unaligned" if result.failed else "")
    final = align_set(model, data, opts.batch_size)
    return model, final, history
