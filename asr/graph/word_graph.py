"""The word-level decoding graph HCLG of a pdf-based model (GMM-HMM or hybrid network).

Built by composition as Kaldi's ``mkgraph.sh`` does, with our own H and self-loops:

1. ``LG = min(det(L o G))`` with disambiguation symbols (:func:`asr.graph.fst_util.lg_fst`):
   L maps phones to words (optional silence), G is the word n-gram with ``#0`` on its
   back-off arcs.
2. ``CLG = C o LG`` (``kaldifst.compose_context``, triphone windows) for a
   context-dependent model; a monophone model reads phones directly (``CLG = LG``).
3. H maps *state labels* to CLG's input labels. A state label stands for one
   (HMM state id, pdf) pair, like a Kaldi transition id without the self-loop
   distinction: ``HMM state id = view.state_offset[centre] + s`` and
   ``pdf = view.pdf(left, centre, right, s)``. Each CLG label (triphone window) becomes
   the chain of its centre phone's states, one arc per state and no self-loops, with
   the CLG label as the output of the first arc. A window's "no phone" context is
   ``view.boundary``. Every CLG disambiguation symbol (``#0, #1, ...`` and ``#-1``, C's
   start symbol) becomes a fresh input disambiguation symbol of H passed through to it.
4. ``HCLG = min(det(H o CLG))`` (minimised after encoding labels and weights), then the
   disambiguation input symbols become epsilon. ``mkgraph.sh`` minimises after removing
   them, on a non-deterministic FST; minimising before, while the FST is still
   deterministic, is exact for any FST (acyclic ones included) and gave the same size
   on TIMIT. Then the HMM self-loops are added: every arc reading state label ``l`` (HMM state ``h``)
   into state ``q`` is redirected to a new state ``q'`` (one per distinct ``(q, l)``)
   with a self-loop ``l`` costing ``-self_loop_scale * log_loop[h]`` and an epsilon arc to
   ``q`` costing ``-self_loop_scale * log_forward[h]``. A visit of ``k`` frames to an HMM
   state thus costs ``k - 1`` loops and one forward transition, as in
   :mod:`asr.graph.hclg`. Finally state labels are relabelled to ``pdf + 1``.

The result: input labels ``pdf + 1`` (label ``i`` reads column ``i - 1`` of a
[T, num_pdfs] log-likelihood matrix, :func:`asr.graph.search.best_path`), output labels
the word ids of ``words.txt``, weights ``-ln`` of LM, silence and scaled HMM transition
probabilities (nats). Written as ``HCLG_words.fst`` (OpenFst binary).
"""

from __future__ import annotations

import logging
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from asr.data.lexicon import Lexicon
from asr.errors import AsrError
from asr.graph.fst_util import ArcList, FstArrays, fst_from_arrays, fst_size, fst_to_arrays, lg_fst
from asr.graph.hmm_view import HmmView
from asr.graph.ngram_lm import read_symbol_table

if TYPE_CHECKING:
    import kaldifst

log = logging.getLogger(__name__)

__all__ = ["GRAPH_FILE", "WordGraphOptions", "build_word_graph", "read_word_graph", "write_word_graph"]

GRAPH_FILE = "HCLG_words.fst"


@dataclass
class WordGraphOptions:
    """Options of word graph building (Kaldi names).

    Attributes:
        self_loop_scale: scale of the HMM transition log-probabilities (Kaldi: 0.1).
        silence_phone: the optional silence phone of L (None: no optional silence).
        silence_prob: probability of silence at the start and after each word.
        minimize: minimise det(H o CLG) (as ``mkgraph.sh``; off only to compare).
    """

    self_loop_scale: float = 0.1
    silence_phone: str | None = "sil"
    silence_prob: float = 0.5
    minimize: bool = True


@dataclass
class _H:
    """H without self-loops, and what each of its state labels means.

    Attributes:
        fst: input state labels 1..K and disambiguation symbols K+1.., output CLG labels.
        hmm_state: [K + 1] HMM state id of each state label (entry 0 unused).
        pdf: [K + 1] pdf of each state label.
        disambig: H's input disambiguation symbols.
    """

    fst: kaldifst.StdVectorFst
    hmm_state: np.ndarray
    pdf: np.ndarray
    disambig: list[int]


def _windows(view: HmmView, clg_labels: list[list[int]] | None, lg_labels: np.ndarray,
             disambig: set[int]) -> list[tuple[int, int, int] | None]:
    """Per CLG input label j: (left, centre, right) phone indices (0-based, ``boundary``
    for none), or None for a disambiguation symbol; entry 0 (epsilon) is None too.

    ``clg_labels`` are ``compose_context``'s windows (phone ids = index + 1, 0 = no
    phone, ``[-d]`` = disambiguation symbol d, ``[0]`` = ``#-1``); None for a monophone
    model, whose CLG labels are LG's phone ids and disambiguation symbols.
    """
    b = view.boundary
    out: list[tuple[int, int, int] | None] = []
    if clg_labels is None:
        top = int(lg_labels.max(initial=0))
        for j in range(top + 1):
            out.append(None if j == 0 or j in disambig else (b, j - 1, b))
        return out
    for j, win in enumerate(clg_labels):
        if j == 0 or len(win) == 1:
            if j and win[0] > 0:
                raise AsrError(f"word graph: unexpected context window {win} (context width 1?)")
            out.append(None)
            continue
        if len(win) != 3 or win[1] <= 0:
            raise AsrError(f"word graph: unexpected context window {win}")
        left, centre, right = (b if p == 0 else p - 1 for p in win)
        out.append((left, centre, right))
    return out


def _make_h(view: HmmView, windows: list[tuple[int, int, int] | None]) -> _H:
    """H (see the module docstring): start state 0 is final; each window's chain loops back
    to it, chain tails after the first arc are shared between windows."""
    labels: dict[tuple[int, int], int] = {}
    arcs = ArcList()
    num_states = 1
    tails: dict[tuple[int, ...], int] = {(): 0}

    def tail(seq: tuple[int, ...]) -> int:
        """The state from which state labels ``seq`` lead back to state 0."""
        nonlocal num_states
        hit = tails.get(seq)
        if hit is not None:
            return hit
        st = num_states
        num_states += 1
        tails[seq] = st
        nxt = tail(seq[1:])
        arcs.add(st, nxt, seq[0], 0)
        return st

    num_phones = len(view.phones)
    disambig_for: list[int] = []
    for j, win in enumerate(windows):
        if win is None:
            if j:
                disambig_for.append(j)
            continue
        left, centre, right = win
        if not 0 <= centre < num_phones:
            raise AsrError(f"word graph: CLG label {j} names phone {centre}, the model has {num_phones}")
        seq = []
        for s in range(view.num_states[centre]):
            key = (int(view.state_offset[centre]) + s, int(view.pdf(left, centre, right, s)))
            if not 0 <= key[1] < view.num_pdfs:
                raise AsrError(f"word graph: phone {view.phones[centre]!r} state {s} has pdf {key[1]}, "
                               f"outside 0..{view.num_pdfs - 1}")
            lab = labels.get(key)
            if lab is None:
                lab = labels[key] = len(labels) + 1
            seq.append(lab)
        nxt = tail(tuple(seq[1:]))
        arcs.add(0, nxt, seq[0], j)
    k = len(labels)
    disambig = []
    for n, j in enumerate(disambig_for):
        d = k + 1 + n
        disambig.append(d)
        arcs.add(0, 0, d, j)
    fst = arcs.to_fst(num_states, 0, {0: 0.0})
    hmm_state = np.zeros(k + 1, dtype=np.int64)
    pdf = np.zeros(k + 1, dtype=np.int64)
    for (h, p), lab in labels.items():
        hmm_state[lab], pdf[lab] = h, p
    return _H(fst, hmm_state, pdf, disambig)


def _add_self_loops(arr: FstArrays, loop_cost: np.ndarray, fwd_cost: np.ndarray) -> FstArrays:
    """The HMM self-loops (module docstring, step 4) on a graph whose non-epsilon input
    labels are all state labels; ``loop_cost`` / ``fwd_cost`` are indexed by state label."""
    n = arr.num_states
    emit = np.flatnonzero(arr.ilabel != 0)
    pairs = np.stack([arr.dst[emit], arr.ilabel[emit].astype(np.int64)], axis=1)
    uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    u = len(uniq)
    new = n + np.arange(u, dtype=np.int64)
    dst = arr.dst.copy()
    dst[emit] = new[inv]
    lab = uniq[:, 1]
    src2 = np.repeat(new, 2)
    dst2 = np.stack([new, uniq[:, 0]], axis=1).reshape(-1)
    ilab2 = np.stack([lab, np.zeros(u, np.int64)], axis=1).reshape(-1)
    w2 = np.stack([loop_cost[lab], fwd_cost[lab]], axis=1).reshape(-1)
    return FstArrays(arr.start, np.concatenate([arr.final, np.full(u, np.inf, np.float32)]),
                     np.concatenate([arr.src, src2]), np.concatenate([dst, dst2]),
                     np.concatenate([arr.ilabel, ilab2.astype(np.int32)]),
                     np.concatenate([arr.olabel, np.zeros(2 * u, np.int32)]),
                     np.concatenate([arr.weight, w2.astype(np.float32)]))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build_word_graph(view: HmmView, lexicon: Lexicon, words_txt: str | os.PathLike,
                     g_words: kaldifst.StdVectorFst, opts: WordGraphOptions | None = None
                     ) -> kaldifst.StdVectorFst:
    """The word decoding graph HCLG (see the module docstring).

    Args:
        view: the acoustic model (:func:`asr.decode.gmm_model.hmm_view`).
        lexicon: word -> pronunciations in the model's phones (``view.phones``).
        words_txt: the word symbol table (``<eps> 0``, words, ``#0``, ``<s>``, ``</s>``).
        g_words: the word grammar with ``#0`` on the input side of its back-off arcs
            (:func:`asr.graph.ngram_lm.make_word_g_fst`); not modified.
        opts: options (default :class:`WordGraphOptions`).

    Returns:
        ``kaldifst.StdVectorFst``: input labels pdf + 1, output labels word ids of
        ``words_txt``, weights -ln probabilities (HMM transitions scaled).

    Raises:
        AsrError: a lexicon word missing from ``words_txt`` or with an empty
            pronunciation, a lexicon phone not in the model, a bad symbol table, or an
            empty graph.
    """
    import kaldifst

    opts = opts or WordGraphOptions()
    t0 = time.perf_counter()
    words = read_symbol_table(words_txt)
    phone_ids = {p: i + 1 for i, p in enumerate(view.phones)}
    lg, disambig = lg_fst(lexicon, phone_ids, words, g_words, opts.silence_phone, opts.silence_prob)
    log.info("word graph: LG %d states, %d arcs (%.1f s)", *fst_size(lg), time.perf_counter() - t0)
    if view.context_dependent:
        clg, clg_labels = kaldifst.compose_context(disambig, 3, 1, lg)
        windows = _windows(view, clg_labels, np.zeros(0, np.int64), set(disambig))
        log.info("word graph: CLG %d states, %d arcs, %d context windows (%.1f s)", *fst_size(clg),
                 len(clg_labels), time.perf_counter() - t0)
    else:
        clg = lg
        windows = _windows(view, None, fst_to_arrays(lg).ilabel, set(disambig))
    h = _make_h(view, windows)
    kaldifst.arcsort(h.fst, sort_type="olabel")  # compose() matches on the left FST's outputs
    log.info("word graph: H %d states, %d arcs, %d state labels", *fst_size(h.fst), len(h.pdf) - 1)
    hclg = kaldifst.compose(h.fst, clg)
    del clg, lg
    log.info("word graph: H o CLG %d states, %d arcs (%.1f s)", *fst_size(hclg), time.perf_counter() - t0)
    if hclg.num_states == 0:
        raise AsrError("word graph: H o CLG is empty (lexicon phones without HMMs?)")
    if kaldifst.determinize_star(hclg, use_log=True):
        raise AsrError("word graph: determinisation of H o CLG stopped early")
    log.info("word graph: det(H o CLG) %d states, %d arcs (%.1f s)", *fst_size(hclg), time.perf_counter() - t0)
    if opts.minimize:
        kaldifst.minimize_encoded(hclg)
        log.info("word graph: minimised %d states, %d arcs (%.1f s)", *fst_size(hclg), time.perf_counter() - t0)
    arr = fst_to_arrays(hclg)
    del hclg
    arr.ilabel = np.where(arr.ilabel >= len(h.pdf), 0, arr.ilabel).astype(np.int32)  # disambig -> eps
    loop = -opts.self_loop_scale * view.log_loop[h.hmm_state]
    fwd = -opts.self_loop_scale * view.log_forward[h.hmm_state]
    arr = _add_self_loops(arr, loop, fwd)
    pdf_label = np.concatenate([[0], h.pdf[1:] + 1])
    arr.ilabel = pdf_label[arr.ilabel].astype(np.int32)
    out = fst_from_arrays(arr)
    log.info("word graph: HCLG %d states, %d arcs (%s model, %d words, %d pdfs) in %.1f s, peak RSS %.0f MB",
             arr.num_states, arr.num_arcs, "context-dependent" if view.context_dependent else "monophone",
             len(lexicon), view.num_pdfs, time.perf_counter() - t0, _peak_rss_mb())
    return out


def write_word_graph(graph: kaldifst.StdVectorFst, out_dir: str | os.PathLike) -> Path:
    """Write ``HCLG_words.fst`` (OpenFst binary) into ``out_dir`` (created); returns its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / GRAPH_FILE
    graph.write(str(path))
    return path


def read_word_graph(path: str | os.PathLike) -> kaldifst.StdVectorFst:
    """Read a word graph: ``path`` is the file or a folder holding ``HCLG_words.fst``.

    Raises:
        AsrError: no such file.
    """
    import kaldifst

    p = Path(path)
    if p.is_dir():
        p = p / GRAPH_FILE
    if not p.is_file():
        raise AsrError(f"{p}: no word decoding graph there")
    return kaldifst.StdVectorFst.read(str(p))
