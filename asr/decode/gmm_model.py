"""What decoding needs from a GMM-HMM (``asr.hmm``), gathered in one place.

Graph building sees a model only through :class:`asr.graph.hmm_view.HmmView` and the
search only through a log-likelihood matrix (:func:`gmm_log_likelihoods`), so a change in
``asr.hmm``'s classes is absorbed here.
"""

from __future__ import annotations

import numpy as np
import torch

from asr.graph.hmm_view import HmmView
from asr.hmm.model import GmmHmm, MonophonePdfMap


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
