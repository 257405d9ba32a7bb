"""Drawing frames and state paths from a GMM-HMM (for tests and sanity checks)."""

from __future__ import annotations

import numpy as np
import torch

from asr.hmm.model import GmmHmm


def sample_utterance(model: GmmHmm, phone_ids: np.ndarray, gen: torch.Generator
                     ) -> tuple[torch.Tensor, np.ndarray]:
    """Walk the chain of ``phone_ids`` with the model's transition probabilities.

    Returns:
        (frames [T, D] float64 drawn from each visited pdf's GMM,
         positions [T] int64 chain state of each frame).
    """
    chain = model.chain(phone_ids)
    loop = torch.from_numpy(model.tm.self_loop[chain.hmm_states])
    positions = []
    for s in range(len(chain.pdfs)):
        n = 1
        while float(torch.rand((), generator=gen, dtype=torch.float64)) < float(loop[s]):
            n += 1
        positions += [s] * n
    pos = np.asarray(positions, dtype=np.int64)
    gmm = model.gmm
    pdfs = torch.from_numpy(chain.pdfs[pos])
    # Pick a Gaussian of each frame's pdf by its weight, then draw from it.
    w = torch.exp(torch.cat([gmm.log_weights, torch.tensor([-np.inf], dtype=torch.float64)]))
    idx = gmm.gauss_index[pdfs]  # [T, K]
    k = torch.multinomial(w[idx], 1, generator=gen).squeeze(1)
    g = idx[torch.arange(len(pos)), k]
    x = gmm.means[g] + gmm.variances[g].sqrt() * torch.randn(len(pos), gmm.dim, generator=gen,
                                                              dtype=torch.float64)
    return x, pos
