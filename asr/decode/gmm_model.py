"""What decoding needs from a GMM-HMM (``asr.hmm``), gathered in one place.

Graph building and decoding use only :class:`HmmView` and :func:`gmm_log_likelihoods`,
so a change in ``asr.hmm``'s classes is absorbed here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from asr.hmm.model import GmmHmm, MonophonePdfMap


@dataclass
class HmmView:
    """Topology, transition log-probabilities and pdf lookup of an acoustic model.

    Attributes:
        phones: phone symbols; phone id = index.
        num_states: states per phone.
        state_offset: [num_phones] HMM-state id of each phone's state 0.
        log_loop: [num_hmm_states] natural log of each HMM state's self-loop probability.
        log_forward: [num_hmm_states] natural log of leaving each HMM state.
        num_pdfs: number of pdfs (columns of the likelihood matrix).
        context_dependent: whether pdfs depend on the neighbouring phones.
        boundary: the context id standing for "no phone" (utterance start or end).
        pdf: (left, centre, right, state) -> pdf id; ``left``/``right`` may be ``boundary``.
    """

    phones: list[str]
    num_states: list[int]
    state_offset: np.ndarray
    log_loop: np.ndarray
    log_forward: np.ndarray
    num_pdfs: int
    context_dependent: bool
    boundary: int
    pdf: Callable[[int, int, int, int], int]


def hmm_view(model: GmmHmm) -> HmmView:
    """The decoding view of a trained :class:`~asr.hmm.model.GmmHmm`."""
    tm = model.tm
    log_loop, log_fwd = tm.log_probs()
    pm = model.pdf_map
    mono = isinstance(pm, MonophonePdfMap)
    offset = np.asarray(tm.state_offset)
    if mono:
        def pdf(left: int, centre: int, right: int, state: int) -> int:
            return int(offset[centre] + state)  # monophone pdf id = HMM-state id
    else:
        pdf = pm.lookup  # TreePdfMap: context id num_phones is the utterance boundary
    return HmmView(list(tm.phones), list(tm.num_states), offset, np.asarray(log_loop, dtype=np.float64),
                   np.asarray(log_fwd, dtype=np.float64), int(pm.num_pdfs), not mono, len(tm.phones), pdf)


def gmm_log_likelihoods(model: GmmHmm, feats: np.ndarray) -> np.ndarray:
    """Log-likelihood of every frame under every pdf.

    Args:
        model: the acoustic model.
        feats: [T, D] frames, transformed as the model was trained (deltas, LDA, fMLLR).

    Returns:
        [T, num_pdfs] float32, natural log.
    """
    with torch.no_grad():
        ll = model.gmm.log_likelihoods(torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32)))
    return ll.numpy()
