"""The decoding graph HCLG of a phone recogniser with a bigram phone LM, built directly.

For a phone-level LM the context expansion C and the LM G fit in one state space, so
the composed graph is written out directly instead of composing H, C, L and G:

* node ``N(a, b)``: phone ``a`` has ended and phone ``b`` comes next (LM history ``b``).
  ``a`` is the left context of ``b`` (kept only for context-dependent models; the
  utterance boundary counts as a context).
* from ``N(a, b)`` the next-but-one phone ``c`` (or the sentence end) is chosen with LM
  cost ``-ln P(c | b)``; that fixes the triphone ``a-b+c`` and so the pdfs of ``b``'s HMM
  states (:meth:`TreePdfMap.lookup`). The path runs through ``b``'s left-to-right HMM and
  reaches ``N(b, c)``, or the final state if ``c`` is the end.
* the entry arc carries the output label ``b + 1`` (phones are 1-based; 0 is epsilon).

Input labels are pdf ids + 1 (what ``kaldi_decoder.DecodableCtc`` expects: label ``i``
reads column ``i - 1``). Transition log-probabilities are scaled by ``self_loop_scale``
as Kaldi's ``add-self-loops`` does with a 2-transition topology (loop ``s * ln p``,
forward ``s * ln(1 - p)``). HMM tails with equal pdfs and the same destination are shared.

The graph is not determinised: pdf sequences do not fix phone boundaries (the input
labels would need disambiguation symbols), and the graph is small for a phone LM.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from asr.errors import AsrError
from asr.graph.fst_util import ArcList
from asr.graph.hmm_view import HmmView
from asr.graph.phone_lm import BigramLm

log = logging.getLogger(__name__)


@dataclass
class GraphOptions:
    """Options of graph building (Kaldi ``mkgraph.sh`` names).

    Attributes:
        self_loop_scale: scale of the HMM transition log-probabilities (Kaldi: 0.1).
        lm_scale: scale of the LM log-probabilities (1: tune ``acoustic_scale`` instead).
        phone_insertion_penalty: cost added per phone (nats, in LM units).
    """

    self_loop_scale: float = 0.1
    lm_scale: float = 1.0
    phone_insertion_penalty: float = 0.0


def build_graph(view: HmmView, lm: BigramLm, opts: GraphOptions | None = None):
    """The decoding graph of an acoustic model and a phone bigram.

    Args:
        view: the model (:func:`asr.decode.gmm_model.hmm_view`).
        lm: bigram over exactly the model's phones, in the same order.
        opts: scales (default :class:`GraphOptions`).

    Returns:
        ``kaldifst.StdVectorFst``: input labels pdf + 1, output labels phone id + 1,
        weights -ln (scaled) probabilities.

    Raises:
        AsrError: the LM's phones differ from the model's.
    """
    opts = opts or GraphOptions()
    if list(lm.phones) != list(view.phones):
        extra = sorted(set(lm.phones) ^ set(view.phones))
        raise AsrError(f"decoding graph: the LM's phones differ from the model's ({extra[:5]} or order)")
    v = len(view.phones)
    end = v  # "c = v" is the sentence end
    lm_cost = -opts.lm_scale * lm.log_prob_matrix() + opts.phone_insertion_penalty  # [v+1, v+1]
    loop_cost = -opts.self_loop_scale * view.log_loop
    fwd_cost = -opts.self_loop_scale * view.log_forward
    lefts = [*range(v), view.boundary] if view.context_dependent else [view.boundary]

    arcs = ArcList()
    arc = arcs.add
    start, final = 0, 1
    num_states = 2
    node: dict[tuple[int, int], int] = {}
    for a in lefts:
        for b in range(v):
            node[(a, b)] = num_states
            num_states += 1
    tails: dict[tuple, int] = {}  # (phone, pdfs of states s.., destination) -> state

    def tail(b: int, pdfs: tuple[int, ...], dest: int) -> int:
        """State for HMM state ``num_states[b] - len(pdfs)`` of ``b``, built on demand."""
        nonlocal num_states
        key = (b, pdfs, dest)
        hit = tails.get(key)
        if hit is not None:
            return hit
        st = num_states
        num_states += 1
        tails[key] = st
        h = int(view.state_offset[b]) + view.num_states[b] - len(pdfs)
        arc(st, st, pdfs[0] + 1, 0, float(loop_cost[h]))
        if len(pdfs) > 1:
            arc(st, tail(b, pdfs[1:], dest), pdfs[1] + 1, 0, float(fwd_cost[h]))
        else:
            arc(st, dest, 0, 0, float(fwd_cost[h]))
        return st

    for b in range(v):
        arc(start, node[(view.boundary, b)], 0, 0, float(lm_cost[v, b]))
    for (a, b), n in node.items():
        for c in range(v + 1):
            if c == end:
                dest = final
            else:
                dest = node[(b if view.context_dependent else view.boundary, c)]
            pdfs = tuple(view.pdf(a, b, c, s) for s in range(view.num_states[b]))
            arc(n, tail(b, pdfs, dest), pdfs[0] + 1, b + 1, float(lm_cost[b, c]))

    g = arcs.to_fst(num_states, start, {final: 0.0})
    log.info("decoding graph: %d states, %d arcs (%s model, %d phones)", num_states, len(arcs),
             "context-dependent" if view.context_dependent else "monophone", v)
    return g


def write_graph(g, out_dir: str | os.PathLike) -> Path:
    """Write ``HCLG.fst`` (OpenFst binary) into ``out_dir``; returns its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "HCLG.fst"
    g.write(str(path))
    return path
