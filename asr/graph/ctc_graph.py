"""CTC decoding graphs: the topology T, phone graphs T o G and word graphs T o LG.

A CTC network scores ``num_tokens`` tokens per frame, token 0 being the blank and tokens
``1..num_tokens-1`` the phones in ``tokens.txt`` order (token id = phone id of
``phones.txt``). Every graph here reads input label ``token + 1`` (label ``i`` reads
column ``i - 1`` of a [T, num_tokens] log-posterior matrix, as
:func:`asr.graph.search.best_path` expects) and writes phone ids (:func:`ctc_topology`,
:func:`build_ctc_phone_graph`) or word ids of ``words.txt`` (:func:`build_ctc_word_graph`).

T collapses frame-level token sequences the CTC way: a run of one token is one symbol
(``a a -> a``), blanks separate repeats (``a <blk> a -> a a``) and may lead, trail and
sit between any two tokens. Its arcs carry no cost, so graph costs are LM (and
silence) costs only; the search adds ``-acoustic_scale * log-posterior`` per frame.

Determinisation: T is deterministic on its input and LG is determinised with its
disambiguation symbols, so ``T o LG`` is deterministic up to the epsilons left where the
disambiguation symbols were removed; determinising it again gains nothing. ``T o G_phones``
is not determinised either: G_phones' back-off arcs are plain epsilons (no ``#0``), which
makes it non-determinisable in general, and it is small. Neither graph is minimised.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING


from asr.data.lexicon import Lexicon
from asr.errors import AsrError
from asr.graph.fst_util import ArcList, fst_size, fst_to_arrays, lg_fst, remove_input_labels
from asr.graph.ngram_lm import read_symbol_table

if TYPE_CHECKING:
    import os

    import kaldifst

log = logging.getLogger(__name__)

__all__ = ["build_ctc_phone_graph", "build_ctc_word_graph", "ctc_topology"]


def ctc_topology(num_tokens: int) -> kaldifst.StdVectorFst:
    """The CTC topology T: frame-level tokens in, collapsed tokens out.

    States: 0 is "after a blank or at the start", ``t`` (1..num_tokens-1) "inside a run of
    token ``t``"; all are final with cost 0 and the start is 0. Arcs (input ``token + 1``,
    output token id, cost 0): ``0 -> 0`` reads the blank (output epsilon); ``s -> t``
    reads ``t`` and writes ``t`` for every state ``s != t``; ``t -> t`` reads ``t``
    again (output epsilon); ``t -> 0`` reads the blank. ``num_tokens ** 2`` arcs.

    Raises:
        AsrError: fewer than 2 tokens.
    """
    n = int(num_tokens)
    if n < 2:
        raise AsrError(f"CTC topology: need the blank and at least one token, got {num_tokens}")
    arcs = ArcList()
    arcs.add(0, 0, 1, 0)
    for t in range(1, n):
        arcs.add(0, t, t + 1, t)
    for s in range(1, n):
        arcs.add(s, s, s + 1, 0)
        arcs.add(s, 0, 1, 0)
        for t in range(1, n):
            if t != s:
                arcs.add(s, t, t + 1, t)
    return arcs.to_fst(n, 0, {s: 0.0 for s in range(n)})


def _compose_t(num_tokens: int, right: kaldifst.StdVectorFst, what: str) -> kaldifst.StdVectorFst:
    import kaldifst

    arr = fst_to_arrays(right)
    top = int(arr.ilabel.max(initial=0))
    if top >= num_tokens:
        raise AsrError(f"{what}: input label {top} is not a token (there are {num_tokens} with the blank)")
    t = ctc_topology(num_tokens)
    kaldifst.arcsort(t, sort_type="olabel")  # compose() matches on the left FST's outputs
    out = kaldifst.compose(t, right)
    if out.num_states == 0:
        raise AsrError(f"{what}: the graph is empty")
    return out


def build_ctc_phone_graph(num_tokens: int, g_phones: kaldifst.StdVectorFst) -> kaldifst.StdVectorFst:
    """``T o G_phones``: CTC phone recognition with a phone LM.

    Args:
        num_tokens: CTC outputs, the blank included (49 for the 48 phones).
        g_phones: :func:`asr.graph.phone_lm.make_g_fst`'s G (phone ids = token ids,
            epsilon back-off arcs); not modified.

    Returns:
        input labels token + 1, output labels phone ids, weights -ln LM probabilities.

    Raises:
        AsrError: G has a label that is not a token, or the graph is empty.
    """
    t0 = time.perf_counter()
    out = _compose_t(num_tokens, g_phones, "CTC phone graph")
    log.info("CTC phone graph: %d states, %d arcs (%.1f s)", *fst_size(out), time.perf_counter() - t0)
    return out


def build_ctc_word_graph(num_tokens: int, lexicon: Lexicon, phone_ids: Mapping[str, int],
                         words_txt: str | os.PathLike, g_words: kaldifst.StdVectorFst,
                         silence_phone: str | None = "sil", silence_prob: float = 0.5
                         ) -> kaldifst.StdVectorFst:
    """``T o LG``: CTC word recognition (EESEN's TLG).

    LG is :func:`asr.graph.fst_util.lg_fst` (determinised and minimised with
    disambiguation symbols, which are then made epsilon). The optional silence of L is
    kept on purpose: ``sil`` is a CTC token (the network was trained on phone transcripts
    with ``sil`` at the edges and in pauses), so the network emits it between words; a
    graph without it would have to explain those frames with blanks only.

    Args:
        num_tokens: CTC outputs, the blank included.
        lexicon: word -> pronunciations (phone symbols).
        phone_ids: phone symbol -> token id (``tokens.txt`` without ``<blk>``; equal to
            the ``phones.txt`` ids).
        words_txt: word symbol table (``#0`` included).
        g_words: word G with ``#0`` on its back-off arcs; not modified.
        silence_phone, silence_prob: the optional silence of L (None / 0: none).

    Returns:
        input labels token + 1, output labels word ids, weights -ln (LM and silence)
        probabilities.

    Raises:
        AsrError: see :func:`asr.graph.fst_util.lexicon_fst`; a phone id that is not a token.
    """
    t0 = time.perf_counter()
    bad = [p for p, i in phone_ids.items() if not 0 < int(i) < num_tokens]
    if bad:
        raise AsrError(f"CTC word graph: phone {bad[0]!r} has id {phone_ids[bad[0]]}, not a token 1..{num_tokens - 1}")
    words = read_symbol_table(words_txt)
    lg, disambig = lg_fst(lexicon, phone_ids, words, g_words, silence_phone, silence_prob)
    log.info("CTC word graph: LG %d states, %d arcs", *fst_size(lg))
    lg = remove_input_labels(lg, disambig)
    out = _compose_t(num_tokens, lg, "CTC word graph")
    log.info("CTC word graph: TLG %d states, %d arcs (%d words) in %.1f s", *fst_size(out), len(lexicon),
             time.perf_counter() - t0)
    return out
