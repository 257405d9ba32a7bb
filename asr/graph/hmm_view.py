"""What graph building needs to know of an acoustic model's HMMs (no model class needed).

GMM-HMMs (:func:`asr.decode.gmm_model.hmm_view`) and, later, hybrid networks sharing their
tree give the same view, so :mod:`asr.graph` never imports ``asr.hmm``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


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
