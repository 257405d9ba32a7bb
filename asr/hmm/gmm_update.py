"""Maximum-likelihood re-estimation of a :class:`DiagGmmSet` and mixture splitting."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import torch

from asr.hmm.gmm import DiagGmmSet, GmmStats


@dataclass
class GmmUpdateOptions:
    """Options of the ML update (Kaldi's ``gmm-est`` names).

    Attributes:
        min_variance: absolute variance floor per dimension.
        variance_floor_fraction: variances are also floored at this fraction of the
            global (all-frames) variance of each dimension.
        min_gaussian_occupancy: a Gaussian seen for fewer frames keeps its mean and variance,
            and is removed if its pdf has others (Kaldi ``--min-gaussian-occupancy``).
        min_gaussian_weight: Gaussians lighter than this are removed likewise.
    """

    min_variance: float = 1e-3
    variance_floor_fraction: float = 0.01
    min_gaussian_occupancy: float = 10.0
    min_gaussian_weight: float = 1e-5


def update_gmm_ml(model: DiagGmmSet, stats: GmmStats, opts: GmmUpdateOptions | None = None) -> DiagGmmSet:
    """A new model re-estimated from ``stats`` (accumulated with ``model``).

    Pdfs with no occupancy keep their parameters unchanged.
    """
    opts = opts or GmmUpdateOptions()
    occ = stats.occ
    pdf = model.pdf_of_gauss
    pdf_occ = torch.zeros(model.num_pdfs, dtype=torch.float64).index_add_(0, pdf, occ)
    total = float(occ.sum())
    floor = torch.full((model.dim,), opts.min_variance, dtype=torch.float64)
    if total > 0:
        global_mean = stats.sum_x.sum(0) / total
        global_var = stats.sum_x2.sum(0) / total - global_mean**2
        floor = torch.maximum(floor, opts.variance_floor_fraction * global_var)

    safe = occ.clamp_min(1e-10)[:, None]
    new_means = stats.sum_x / safe
    new_vars = torch.maximum(stats.sum_x2 / safe - new_means**2, floor)
    enough = occ >= opts.min_gaussian_occupancy
    means = torch.where(enough[:, None], new_means, model.means)
    variances = torch.where(enough[:, None], new_vars, model.variances)

    seen_pdf = pdf_occ[pdf] > 0
    weights = torch.where(seen_pdf, occ / pdf_occ[pdf].clamp_min(1e-10), model.log_weights.exp())
    # Drop under-trained Gaussians, but never a pdf's last one (keep its heaviest).
    drop = seen_pdf & ((occ < opts.min_gaussian_occupancy) | (weights < opts.min_gaussian_weight))
    keep = ~drop
    kept_per_pdf = torch.zeros(model.num_pdfs, dtype=torch.int64).index_add_(0, pdf, keep.long())
    for p in torch.nonzero(kept_per_pdf == 0).flatten().tolist():
        members = torch.nonzero(pdf == p).flatten()
        keep[members[torch.argmax(occ[members])]] = True
    weights = weights.clamp_min(opts.min_gaussian_weight)[keep]
    pdf = pdf[keep]
    wsum = torch.zeros(model.num_pdfs, dtype=torch.float64).index_add_(0, pdf, weights)
    weights = weights / wsum[pdf]
    return DiagGmmSet(means[keep], variances[keep], weights.log(), pdf)


def mixup_targets(pdf_occ: torch.Tensor, current: torch.Tensor, target_total: int,
                  power: float = 0.25, min_count: float = 20.0) -> torch.Tensor:
    """Number of Gaussians each pdf should have (Kaldi's ``GetSplitTargets``).

    Gaussians are handed out one at a time to the pdf with the highest
    ``occ**power / num_gauss``, never giving a pdf fewer than ``min_count`` frames per
    Gaussian, and never fewer Gaussians than it has now.

    Args:
        pdf_occ: [P] frames per pdf.
        current: [P] current Gaussians per pdf.
        target_total: wanted total number of Gaussians.
        power: exponent on occupancy.
        min_count: minimum frames per Gaussian.

    Returns:
        [P] int64 target count per pdf (sum may be below ``target_total``).
    """
    counts = current.clone().to(torch.int64)
    occ = pdf_occ.tolist()
    # Max-heap on occ^power / n; ties broken by pdf index for determinism.
    heap = [(-(o**power) / int(n), p) for p, (o, n) in enumerate(zip(occ, counts.tolist())) if o > 0]
    heapq.heapify(heap)
    total = int(counts.sum())
    while total < target_total and heap:
        _, p = heapq.heappop(heap)
        n = int(counts[p])
        if occ[p] / (n + 1) < min_count:
            continue  # this pdf cannot support another Gaussian
        counts[p] = n + 1
        total += 1
        heapq.heappush(heap, (-(occ[p] ** power) / (n + 1), p))
    return counts


def split_gaussians(model: DiagGmmSet, targets: torch.Tensor, perturb_factor: float = 0.01,
                    generator: torch.Generator | None = None) -> DiagGmmSet:
    """Split Gaussians until each pdf has ``targets[p]`` of them.

    The heaviest Gaussian of a pdf is split in two of half its weight, with means moved
    by +- ``perturb_factor`` standard deviations along a random direction (as Kaldi's
    ``DiagGmm::Split``). Deterministic for a given ``generator`` state.
    """
    gen = generator or torch.Generator().manual_seed(0)
    counts = model.gauss_counts()
    means, variances = list(model.means), list(model.variances)
    weights = list(model.log_weights.exp())
    pdf = model.pdf_of_gauss.tolist()
    members: dict[int, list[int]] = {}
    for g, p in enumerate(pdf):
        members.setdefault(p, []).append(g)
    for p in range(model.num_pdfs):
        for _ in range(int(targets[p]) - int(counts[p])):
            g = max(members[p], key=lambda i: float(weights[i]))
            noise = torch.randn(model.dim, generator=gen, dtype=torch.float64)
            delta = perturb_factor * variances[g].sqrt() * noise
            weights[g] = weights[g] / 2
            means.append(means[g] + delta)
            means[g] = means[g] - delta
            variances.append(variances[g].clone())
            weights.append(weights[g].clone())
            pdf.append(p)
            members[p].append(len(pdf) - 1)
    return DiagGmmSet(torch.stack(means), torch.stack(variances), torch.stack(weights).log(),
                      torch.tensor(pdf, dtype=torch.int64))
