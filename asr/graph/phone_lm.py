"""A phone bigram language model: estimation, ARPA files and the grammar FST G.

Kaldi's TIMIT recipe decodes phones with a bigram over the training transcripts; this
module estimates one with interpolated Witten-Bell smoothing, which an ARPA file holds
exactly as back-off form:

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
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.errors import AsrError

BOS, EOS = "<s>", "</s>"
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


def estimate_bigram(transcripts: Iterable[Sequence[str]], phones: Sequence[str]) -> BigramLm:
    """Witten-Bell bigram (see the module docstring) from phone transcripts.

    Args:
        transcripts: one phone sequence per utterance.
        phones: the vocabulary; a transcript symbol outside it is an error.

    Raises:
        AsrError: no transcripts, or an unknown phone.
    """
    vocab = set(phones)
    uni_counts: Counter[str] = Counter()
    bi_counts: Counter[tuple[str, str]] = Counter()
    num_utts = 0
    for n, tr in enumerate(transcripts):
        for p in tr:
            if p not in vocab:
                raise AsrError(f"phone LM: transcript {n} has phone {p!r}, not in the phone set")
        seq = [BOS, *tr, EOS]
        uni_counts.update(seq[1:])
        bi_counts.update(zip(seq[:-1], seq[1:]))
        num_utts += 1
    if num_utts == 0:
        raise AsrError("phone LM: no transcripts to estimate it from")
    words = [*phones, EOS]
    total = sum(uni_counts.values())
    p_uni = {w: (uni_counts[w] + 1) / (total + len(words)) for w in words}
    hist_count: Counter[str] = Counter()
    followers: Counter[str] = Counter()
    for (h, _), c in bi_counts.items():
        hist_count[h] += c
        followers[h] += 1
    bi = {}
    for (h, w), c in bi_counts.items():
        bi[(h, w)] = math.log10((c + followers[h] * p_uni[w]) / (hist_count[h] + followers[h]))
    bow = {h: math.log10(followers[h] / (hist_count[h] + followers[h])) if hist_count[h] else 0.0
           for h in [*phones, BOS]}
    return BigramLm(list(phones), {w: math.log10(p) for w, p in p_uni.items()}, bow, bi)


def write_arpa(lm: BigramLm, path: str | os.PathLike) -> None:
    """Write ``lm`` as an ARPA file (log10, 7 decimals; ``<s>`` has unigram -99)."""
    lines = ["", "\\data\\", f"ngram 1={len(lm.uni) + 1}", f"ngram 2={len(lm.bi)}", "", "\\1-grams:"]
    lines.append(f"-99\t{BOS}\t{lm.bow[BOS]:.7f}")
    for w in [*lm.phones, EOS]:
        lines.append(f"{lm.uni[w]:.7f}\t{w}" + (f"\t{lm.bow[w]:.7f}" if w in lm.bow else ""))
    lines += ["", "\\2-grams:"]
    lines += [f"{lp:.7f}\t{h} {w}" for (h, w), lp in sorted(lm.bi.items())]
    lines += ["", "\\end\\", ""]
    Path(path).write_text("\n".join(lines), encoding="utf-8")


def read_arpa(path: str | os.PathLike) -> BigramLm:
    """Read a bigram ARPA file as written by :func:`write_arpa` (or SRILM / kaldilm).

    Raises:
        AsrError: unreadable file, an n-gram order above 2 or a malformed line, naming
            the file and line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise AsrError(f"{path}: cannot read ARPA file ({e.strerror})") from None
    uni: dict[str, float] = {}
    bow: dict[str, float] = {}
    bi: dict[tuple[str, str], float] = {}
    section = None
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("ngram ") or line in ("\\data\\", "\\end\\"):
            continue
        if line.startswith("\\") and line.endswith("-grams:"):
            section = line[1:-7]
            if section not in ("1", "2"):
                raise AsrError(f"{path}:{lineno}: only bigram LMs are supported, found {line}")
            continue
        parts = line.split()
        try:
            if section == "1":
                w = parts[1]
                if w != BOS:
                    uni[w] = float(parts[0])
                if len(parts) > 2:
                    bow[w] = float(parts[2])
            elif section == "2":
                bi[(parts[1], parts[2])] = float(parts[0])
            else:
                raise ValueError
        except (IndexError, ValueError):
            raise AsrError(f"{path}:{lineno}: malformed ARPA line {line!r}") from None
    if EOS not in uni:
        raise AsrError(f"{path}: no {EOS} unigram")
    phones = [w for w in uni if w != EOS]
    for h in [*phones, BOS]:
        bow.setdefault(h, 0.0)
    return BigramLm(phones, uni, bow, bi)


def phone_symbol_table(phones: Sequence[str]) -> str:
    """Kaldi ``words.txt`` text: ``<eps> 0``, phone i as ``i + 1``, then ``<s>``, ``</s>``, ``#0``."""
    rows = ["<eps> 0", *(f"{p} {i + 1}" for i, p in enumerate(phones)),
            f"{BOS} {len(phones) + 1}", f"{EOS} {len(phones) + 2}", f"#0 {len(phones) + 3}"]
    return "\n".join(rows) + "\n"


def make_g_fst(arpa: str | os.PathLike, phones: Sequence[str], out_dir: str | os.PathLike):
    """The grammar FST G of an ARPA LM, with kaldilm's ``arpa2fst``.

    Phone ``phones[i]`` is label ``i + 1`` (the numbering of the decoding graph's output
    labels); back-off arcs are epsilons, the start state is the ``<s>`` history and
    ``</s>`` becomes final weights. Weights are -ln probabilities.

    Args:
        arpa: the ARPA file.
        phones: the phone set, in label order.
        out_dir: receives ``words.txt`` and ``G.fst`` (OpenFst binary).

    Returns:
        the G FST (``kaldifst.StdVectorFst``).
    """
    import kaldifst
    from kaldilm import arpa2fst

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "words.txt").write_text(phone_symbol_table(phones), encoding="utf-8")
    # With a disambiguation symbol arpa2fst drops <s>/</s> arcs; back-off arcs carry it
    # on their input side, and we turn it into epsilon (no determinisation follows).
    disambig = str(len(phones) + 3)
    text = arpa2fst(str(arpa), read_symbol_table=str(out / "words.txt"), disambig_symbol="#0",
                    max_arpa_warnings=0)
    rows = []
    for line in text.splitlines():
        f = line.split()
        if not f:
            continue
        if len(f) >= 4 and f[2] == disambig:
            f[2] = "0"
        rows.append("\t".join(f))
    g = kaldifst.compile("\n".join(rows) + "\n")
    g.write(str(out / "G.fst"))
    return g
