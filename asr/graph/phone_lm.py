"""A phone bigram language model: estimation, ARPA files and the grammar FST G.

Kaldi's TIMIT recipe decodes phones with a bigram over the training transcripts; this
module estimates one with interpolated Witten-Bell smoothing, the order-2 case of
:func:`asr.graph.ngram_lm.estimate_ngram`, which an ARPA file holds exactly as back-off
form:

    p_uni(w)   = (c(w) + 1) / (N + V)                       w in phones + </s>
    P(w | h)   = (c(h, w) + T(h) p_uni(w)) / (c(h) + T(h))  seen bigrams
    bow(h)     = T(h) / (c(h) + T(h))                       unseen: P(w | h) = bow(h) p_uni(w)

with ``c(h)`` the count of ``h`` as a history, ``T(h)`` its number of distinct followers,
``N`` the tokens and ``V`` the vocabulary size (add-one on the unigram keeps every phone
possible). A history never seen backs off with weight 1.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.errors import AsrError
from asr.graph import ngram_lm
from asr.graph.ngram_lm import BOS, BOS_LOG10, EOS, NgramLm

_LOG10 = math.log(10.0)


@dataclass
class BigramLm:
    """A back-off bigram over ``phones``, with ARPA-style log10 tables.

    Attributes:
        phones: the vocabulary (without ``<s>`` / ``</s>``).
        uni: w -> log10 p_uni(w), for w in ``phones`` and ``</s>``.
        bow: h -> log10 back-off weight, for h in ``phones`` and ``<s>``.
        bi: (h, w) -> log10 P(w | h) of the bigrams seen in training.
    """

    phones: list[str]
    uni: dict[str, float]
    bow: dict[str, float]
    bi: dict[tuple[str, str], float]

    def log_prob(self, word: str, history: str) -> float:
        """Natural log P(word | history); ``history`` may be ``<s>``, ``word`` may be ``</s>``."""
        lp = self.bi.get((history, word))
        if lp is None:
            lp = self.bow.get(history, 0.0) + self.uni[word]
        return lp * _LOG10

    def sentence_log_prob(self, phones: Sequence[str]) -> float:
        """Natural log probability of a whole transcript, ``</s>`` included."""
        hist = [BOS, *phones]
        return sum(self.log_prob(w, h) for h, w in zip(hist, [*phones, EOS]))

    def log_prob_matrix(self) -> np.ndarray:
        """[V + 1, V + 1] natural-log probabilities, float64.

        Row ``i < V`` is history ``phones[i]``, row ``V`` is ``<s>``; column ``j < V`` is
        ``phones[j]``, column ``V`` is ``</s>``.
        """
        v = len(self.phones)
        hist = [*self.phones, BOS]
        words = [*self.phones, EOS]
        out = np.empty((v + 1, v + 1))
        for i, h in enumerate(hist):
            for j, w in enumerate(words):
                out[i, j] = self.log_prob(w, h)
        return out

    def to_ngram(self) -> NgramLm:
        """The same model as an order-2 :class:`~asr.graph.ngram_lm.NgramLm`."""
        probs = {(BOS,): BOS_LOG10, **{(w,): lp for w, lp in self.uni.items()}, **self.bi}
        return NgramLm(2, list(self.phones), probs, {(h,): b for h, b in self.bow.items()})

    @classmethod
    def from_ngram(cls, lm: NgramLm) -> BigramLm:
        """The bigram view of an order-1 or -2 n-gram LM (missing back-off weights are 0)."""
        if lm.order > 2:
            raise AsrError(f"phone LM: only bigram LMs are supported, got order {lm.order}")
        uni = {w: lm.probs[(w,)] for w in [*lm.vocab, EOS]}
        bow = {g[0]: b for g, b in lm.bows.items() if len(g) == 1}
        for h in [*lm.vocab, BOS]:
            bow.setdefault(h, 0.0)
        bi = {(g[0], g[1]): lp for g, lp in lm.probs.items() if len(g) == 2}
        return cls(list(lm.vocab), uni, bow, bi)


def estimate_bigram(transcripts: Iterable[Sequence[str]], phones: Sequence[str]) -> BigramLm:
    """Witten-Bell bigram (see the module docstring) from phone transcripts.

    Args:
        transcripts: one phone sequence per utterance.
        phones: the vocabulary; a transcript symbol outside it is an error (no ``<unk>``
            mapping, even if ``<unk>`` were a phone).

    Raises:
        AsrError: no transcripts, or an unknown phone.
    """
    vocab = set(phones)
    checked = []
    for n, tr in enumerate(transcripts):
        tr = list(tr)
        for p in tr:
            if p not in vocab:
                raise AsrError(f"phone LM: transcript {n} has phone {p!r}, not in the phone set")
        checked.append(tr)
    if not checked:
        raise AsrError("phone LM: no transcripts to estimate it from")
    return BigramLm.from_ngram(ngram_lm.estimate_ngram(checked, phones, order=2))


def write_arpa(lm: BigramLm, path: str | os.PathLike) -> None:
    """Write ``lm`` as an ARPA file (log10, 7 decimals; ``<s>`` has unigram -99)."""
    ngram_lm.write_arpa(lm.to_ngram(), path)


def read_arpa(path: str | os.PathLike) -> BigramLm:
    """Read a unigram or bigram ARPA file (ours, SRILM's, kaldilm's, ...).

    Raises:
        AsrError: unreadable file, an n-gram order above 2 or a malformed line, naming
            the file (and line); see :func:`asr.graph.ngram_lm.read_arpa`.
    """
    lm = ngram_lm.read_arpa(path)
    if lm.order > 2:
        raise AsrError(f"{path}: only bigram LMs are supported, found order {lm.order}")
    return BigramLm.from_ngram(lm)


def phone_symbol_table(phones: Sequence[str]) -> str:
    """Kaldi ``words.txt`` text: ``<eps> 0``, phone i as ``i + 1``, then ``<s>``, ``</s>``, ``#0``."""
    rows = ["<eps> 0", *(f"{p} {i + 1}" for i, p in enumerate(phones)),
            f"{BOS} {len(phones) + 1}", f"{EOS} {len(phones) + 2}", f"#0 {len(phones) + 3}"]
    return "\n".join(rows) + "\n"


def make_g_fst(arpa: str | os.PathLike, phones: Sequence[str], out_dir: str | os.PathLike):
    """The grammar FST G of an ARPA LM, with kaldilm's ``arpa2fst``.

    Phone ``phones[i]`` is label ``i + 1`` (the numbering of the decoding graph's output
    labels); back-off arcs are epsilons (no determinisation follows), the start state is
    the ``<s>`` history and ``</s>`` becomes final weights. Weights are -ln probabilities;
    arcs are sorted by input label. kaldilm's console output goes to the ``asr.native``
    logger.

    Args:
        arpa: the ARPA file.
        phones: the phone set, in label order.
        out_dir: receives ``words.txt`` and ``G.fst`` (OpenFst binary).

    Returns:
        the G FST (``kaldifst.StdVectorFst``).

    Raises:
        AsrError: a bad ARPA file, or one with a phone outside ``phones``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "words.txt").write_text(phone_symbol_table(phones), encoding="utf-8")
    g = ngram_lm.make_word_g_fst(arpa, out / "words.txt", out / "G.fst", max_arpa_warnings=0)
    g = ngram_lm.replace_input_label(g, len(phones) + 3, 0)  # #0 -> <eps>
    g.write(str(out / "G.fst"))
    return g
