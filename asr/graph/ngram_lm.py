"""Word n-gram language models: interpolated Witten-Bell estimation, ARPA files, G.fst.

kaldilm converts an ARPA file to the grammar FST G but estimates nothing; this module
estimates a back-off n-gram of any order ``N >= 1`` from tokenised sentences. Each
sentence is padded as ``<s> w1 ... wn </s>``; ``c(g)`` counts the occurrences of the
n-gram ``g`` (of every order up to ``N``) in the padded sentences, ``<s>`` never being
predicted. With ``V = |vocab| + 1`` (the words and ``</s>``) and ``M`` the number of
predicted tokens (words and ``</s>``):

    P_1(w)     = (c(w) + 1) / (M + V)                                  add-one unigram
    P_k(w | h) = (c(h w) + T(h) P_{k-1}(w | h')) / (c(h) + T(h))       interpolated WB
    P_k(w | h) = P_{k-1}(w | h')                                       if c(h) = 0

for a history ``h`` of ``k - 1`` words and ``h'`` ``h`` without its oldest word, where
``c(h) = sum_w c(h w)`` and ``T(h)`` is the number of distinct ``w`` with ``c(h w) > 0``.

The ARPA back-off form holds this model exactly: the explicit ``k``-grams are those seen
in training (a set closed under prefixes and suffixes) with log10 ``P_k``, and the
back-off weight of a seen history is ``bow(h) = T(h) / (c(h) + T(h))``, because for an
unseen ``h w`` the formula above is ``bow(h) P_{k-1}(w | h')``; unseen histories back off
with weight 1. Every distribution is therefore normalised over ``vocab + </s>``.

Unknown words: a training word outside the vocabulary becomes ``<unk>`` when ``<unk>`` is
in the vocabulary and is an error otherwise; scoring (:meth:`NgramLm.log_prob`,
:func:`perplexity`) maps them the same way.

Example::

    lm = estimate_ngram(sentences, vocab, order=3)
    write_arpa(lm, "lm.arpa")
    Path("words.txt").write_text(word_symbol_table(vocab))
    g = make_word_g_fst("lm.arpa", "words.txt", "G.fst")
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from asr.errors import AsrError
from asr.native_output import native_output_to_log

if TYPE_CHECKING:
    import kaldifst

__all__ = [
    "BOS", "EOS", "UNK", "DISAMBIG", "NgramLm", "estimate_ngram", "write_arpa", "read_arpa",
    "perplexity", "word_symbol_table", "read_symbol_table", "make_word_g_fst", "replace_input_label",
]

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
DISAMBIG = "#0"  # on the input side of G's back-off arcs
EPS = "<eps>"
BOS_LOG10 = -99.0  # ARPA convention for the (never predicted) <s> unigram
_LN10 = math.log(10.0)

NGram = tuple[str, ...]


@dataclass
class NgramLm:
    """A back-off n-gram LM in ARPA form (log10 tables).

    Attributes:
        order: N, the longest n-gram (1 = unigram).
        vocab: the words, without ``<s>`` / ``</s>`` (``<unk>`` is an ordinary word).
        probs: every explicit n-gram (tuple of 1..N words, oldest first) -> log10
            P(last word | the others). Holds all of ``vocab`` and ``</s>`` as unigrams and
            ``(<s>,)`` with -99.
        bows: history (tuple of 1..N-1 words) -> log10 back-off weight; a history not
            listed backs off with weight 1 (log10 0).

    Treat an instance as read-only.
    """

    order: int
    vocab: list[str]
    probs: dict[NGram, float]
    bows: dict[NGram, float]

    def _predicted(self, word: str) -> str:
        if word == BOS:
            raise AsrError(f"n-gram LM: {BOS} is never predicted")
        if (word,) in self.probs:
            return word
        if (UNK,) in self.probs:
            return UNK
        raise AsrError(f"n-gram LM: word {word!r} is not in the vocabulary (which has no {UNK})")

    def _context(self, word: str) -> str:
        if word == BOS or (word,) in self.probs or (UNK,) not in self.probs:
            return word  # an unknown context word with no <unk> simply backs off
        return UNK

    def is_known(self, word: str) -> bool:
        """Whether ``word`` is in the vocabulary (or is ``</s>``)."""
        return word != BOS and (word,) in self.probs

    def log10_prob(self, word: str, history: Sequence[str] = ()) -> float:
        """log10 P(word | history) by the ARPA back-off recursion.

        Args:
            word: a vocabulary word or ``</s>``; an unknown word is scored as ``<unk>``
                when the vocabulary has it.
            history: the preceding words, oldest first, optionally starting with ``<s>``;
                only the last ``order - 1`` are used (unknown ones as ``<unk>``).

        Raises:
            AsrError: ``word`` is ``<s>``, or unknown with no ``<unk>`` in the vocabulary.
        """
        w = self._predicted(word)
        n = self.order - 1
        hist = tuple(self._context(h) for h in history[max(0, len(history) - n):]) if n else ()
        acc = 0.0
        while True:
            lp = self.probs.get((*hist, w))
            if lp is not None:
                return acc + lp
            acc += self.bows.get(hist, 0.0)
            hist = hist[1:]

    def log_prob(self, word: str, history: Sequence[str] = ()) -> float:
        """Natural log P(word | history); see :meth:`log10_prob`."""
        return self.log10_prob(word, history) * _LN10

    def sentence_log_prob(self, words: Sequence[str]) -> float:
        """Natural log P(words), ``</s>`` included (the history starts with ``<s>``).

        Raises:
            AsrError: a word unknown to a vocabulary without ``<unk>``.
        """
        hist = [BOS]
        total = 0.0
        for w in [*words, EOS]:
            total += self.log10_prob(w, hist)
            hist.append(w)
        return total * _LN10

    def num_ngrams(self, k: int) -> int:
        """The number of explicit ``k``-grams (``<s>`` included among the unigrams)."""
        return sum(1 for g in self.probs if len(g) == k)


def _check_vocab(vocab: Sequence[str]) -> list[str]:
    words = list(vocab)
    seen: set[str] = set()
    for w in words:
        if w in (BOS, EOS):
            raise AsrError(f"n-gram LM: the vocabulary must not contain {w!r} (it is implicit)")
        if not w or any(c.isspace() for c in w):
            raise AsrError(f"n-gram LM: vocabulary word {w!r} is empty or contains whitespace")
        if w in seen:
            raise AsrError(f"n-gram LM: word {w!r} is in the vocabulary twice")
        seen.add(w)
    return words


def _count_ngrams(sentences: Iterable[Sequence[str]], vocab: list[str], order: int) -> list[Counter[NGram]]:
    """counts[k]: k-gram -> occurrences in the padded sentences, for k = 1..order."""
    known = set(vocab)
    unk = UNK if UNK in known else None
    counts: list[Counter[NGram]] = [Counter() for _ in range(order + 1)]
    num = 0
    for n, sent in enumerate(sentences):
        if isinstance(sent, str):
            raise AsrError(f"n-gram LM: sentence {n} is a string; pass a sequence of words")
        seq = [BOS]
        for w in sent:
            if w not in known:
                if unk is None:
                    raise AsrError(f"n-gram LM: sentence {n} has word {w!r}, which is not in the "
                                   f"vocabulary (and the vocabulary has no {UNK})")
                w = unk
            seq.append(w)
        seq.append(EOS)
        counts[1].update((w,) for w in seq[1:])
        for k in range(2, order + 1):
            counts[k].update(zip(*(seq[j:] for j in range(k))))
        num += 1
    if num == 0:
        raise AsrError("n-gram LM: no sentences to estimate it from")
    return counts


def estimate_ngram(sentences: Iterable[Sequence[str]], vocab: Sequence[str], order: int) -> NgramLm:
    """Interpolated Witten-Bell n-gram (see the module docstring) of tokenised sentences.

    Args:
        sentences: one word sequence per sentence, without ``<s>`` / ``</s>``.
        vocab: the words (order kept in the ARPA file); add ``<unk>`` to map training
            words outside it to ``<unk>``.
        order: N >= 1.

    Raises:
        AsrError: no sentences, a bad order or vocabulary, or (without ``<unk>``) a word
            outside the vocabulary -- naming the sentence index and the word.
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise AsrError(f"n-gram LM: order must be an integer >= 1, got {order!r}")
    words = _check_vocab(vocab)
    counts = _count_ngrams(sentences, words, order)
    predicted = [*words, EOS]
    total = sum(counts[1].values())
    # p: the probability (not its log) of every explicit n-gram, filled order by order: the
    # lower-order term of a seen k-gram g is p[g[1:]], itself a seen (k-1)-gram.
    p: dict[NGram, float] = {(w,): (counts[1][(w,)] + 1) / (total + len(predicted)) for w in predicted}
    bows: dict[NGram, float] = {}
    for k in range(2, order + 1):
        hist_count: Counter[NGram] = Counter()
        followers: Counter[NGram] = Counter()
        for g, c in counts[k].items():
            hist_count[g[:-1]] += c
            followers[g[:-1]] += 1
        for g, c in counts[k].items():
            h = g[:-1]
            t = followers[h]
            p[g] = (c + t * p[g[1:]]) / (hist_count[h] + t)
        for h, t in followers.items():
            bows[h] = math.log10(t / (hist_count[h] + t))
    probs = {(BOS,): BOS_LOG10, **{g: math.log10(v) for g, v in p.items()}}
    return NgramLm(order, words, probs, bows)


def perplexity(lm: NgramLm, sentences: Iterable[Sequence[str]]) -> tuple[float, int, int]:
    """Perplexity of ``lm`` on tokenised sentences, SRILM ``-ppl`` style.

    Every word and each sentence's ``</s>`` is scored. A word outside the vocabulary is
    an OOV: with ``<unk>`` in the vocabulary it is scored as ``<unk>``; without, it is
    skipped (not scored; the words after it back off past it).

    Returns:
        ``(ppl, num_scored, num_oov)``: ``ppl = exp(-sum ln P / num_scored)`` over the
        ``num_scored`` tokens (words + ``</s>``) scored, and ``num_oov`` the OOV words
        (mapped to ``<unk>`` or skipped).

    Raises:
        AsrError: no sentences.
    """
    total, scored, oov = 0.0, 0, 0
    has_unk = lm.is_known(UNK)
    for sent in sentences:
        hist = [BOS]
        for w in [*sent, EOS]:
            if not lm.is_known(w):
                oov += 1
                if not has_unk:
                    hist.append(w)
                    continue
            total += lm.log10_prob(w, hist)
            scored += 1
            hist.append(w)
    if scored == 0:
        raise AsrError("n-gram LM: no sentences to compute a perplexity on")
    return math.exp(-total * _LN10 / scored), scored, oov


def _fmt(x: float) -> str:
    return f"{x:.7f}"


def write_arpa(lm: NgramLm, path: str | os.PathLike) -> None:
    """Write ``lm`` as an ARPA file: log10 values with 7 decimals, tab-separated.

    Unigrams come as ``<s>``, the vocabulary in order, ``</s>``; higher orders sorted.
    """
    by_order: list[list[NGram]] = [[] for _ in range(lm.order + 1)]
    for g in lm.probs:
        if not 1 <= len(g) <= lm.order:
            raise AsrError(f"n-gram LM: n-gram {' '.join(g)!r} does not fit order {lm.order}")
        if len(g) > 1:
            by_order[len(g)].append(g)
    unigrams = [(w,) for w in [BOS, *lm.vocab, EOS] if (w,) in lm.probs]
    listed = set(unigrams)
    by_order[1] = unigrams + sorted(g for g in lm.probs if len(g) == 1 and g not in listed)
    lines = ["", "\\data\\", *(f"ngram {k}={len(by_order[k])}" for k in range(1, lm.order + 1))]
    for k in range(1, lm.order + 1):
        lines += ["", f"\\{k}-grams:"]
        for g in by_order[k] if k == 1 else sorted(by_order[k]):
            row = f"{_fmt(lm.probs[g])}\t{' '.join(g)}"
            bow = lm.bows.get(g)
            lines.append(row if bow is None else f"{row}\t{_fmt(bow)}")
    lines += ["", "\\end\\", ""]
    Path(path).write_text("\n".join(lines), encoding="utf-8")


def read_arpa(path: str | os.PathLike) -> NgramLm:
    """Read an ARPA file of any order (ours, SRILM's, KenLM's, ...).

    The vocabulary is the unigrams other than ``<s>`` / ``</s>``, in file order; text
    before ``\\data\\`` is ignored.

    Raises:
        AsrError: unreadable file, a malformed or duplicate line, a section not declared in
            ``\\data\\``, a count that differs from the declared one, no ``</s>`` unigram or
            no ``\\end\\`` -- naming the file (and line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not UTF-8"
        raise AsrError(f"{path}: cannot read ARPA file ({why})") from None
    declared: dict[int, int] = {}
    found: Counter[int] = Counter()
    probs: dict[NGram, float] = {}
    bows: dict[NGram, float] = {}
    section: int | None = None  # 0: \data\, k: \k-grams:
    ended = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        where = f"{path}:{lineno}"
        if line == "\\data\\":
            section = 0
            continue
        if line == "\\end\\":
            ended = section is not None
            if ended:
                break
            continue
        if section is None:
            continue  # header text before \data\
        if line.startswith("\\") and line.endswith("-grams:"):
            try:
                section = int(line[1:-7])
            except ValueError:
                raise AsrError(f"{where}: malformed section header {line!r}") from None
            if section not in declared:
                raise AsrError(f"{where}: section {line} is not declared in \\data\\")
            continue
        if section == 0:
            key, _, value = line.partition("=")
            kf = key.split()
            try:
                if len(kf) != 2 or kf[0] != "ngram":
                    raise ValueError
                k, n = int(kf[1]), int(value)
                if k < 1 or n < 0 or k in declared:
                    raise ValueError
            except ValueError:
                raise AsrError(f"{where}: malformed \\data\\ line {line!r}") from None
            declared[k] = n
            continue
        parts = line.split()
        try:
            if len(parts) not in (section + 1, section + 2):
                raise ValueError
            lp = float(parts[0])
            bow = float(parts[-1]) if len(parts) == section + 2 else None
        except ValueError:
            raise AsrError(f"{where}: malformed ARPA line {line!r}") from None
        g = tuple(parts[1:section + 1])
        if g in probs:
            raise AsrError(f"{where}: n-gram {' '.join(g)!r} listed twice")
        probs[g] = lp
        if bow is not None:
            bows[g] = bow
        found[section] += 1
    if not ended:
        raise AsrError(f"{path}: no \\data\\ ... \\end\\ (empty or truncated ARPA file?)")
    if not declared:
        raise AsrError(f"{path}: \\data\\ declares no n-grams")
    for k, n in sorted(declared.items()):
        if found[k] != n:
            raise AsrError(f"{path}: \\data\\ declares {n} {k}-grams, the file has {found[k]}")
    if (EOS,) not in probs:
        raise AsrError(f"{path}: no {EOS} unigram")
    vocab = [g[0] for g in probs if len(g) == 1 and g[0] not in (BOS, EOS)]
    return NgramLm(max(declared), vocab, probs, bows)


def word_symbol_table(words: Sequence[str]) -> str:
    """Kaldi ``words.txt`` text: ``<eps> 0``, word i as ``i + 1``, then ``#0``, ``<s>``, ``</s>``.

    Raises:
        AsrError: a reserved symbol (``<eps>``, ``#0``, ``<s>``, ``</s>``), an empty word, one
            with whitespace, or a duplicate.
    """
    ws = list(words)
    reserved = {EPS, DISAMBIG, BOS, EOS}
    seen: set[str] = set()
    for w in ws:
        if w in reserved:
            raise AsrError(f"words.txt: {w!r} is a reserved symbol, not a word")
        if not w or any(c.isspace() for c in w) or w in seen:
            raise AsrError(f"words.txt: word {w!r} is empty, contains whitespace or is repeated")
        seen.add(w)
    v = len(ws)
    rows = [f"{EPS} 0", *(f"{w} {i + 1}" for i, w in enumerate(ws)),
            f"{DISAMBIG} {v + 1}", f"{BOS} {v + 2}", f"{EOS} {v + 3}"]
    return "\n".join(rows) + "\n"


def read_symbol_table(path: str | os.PathLike) -> dict[str, int]:
    """An OpenFst text symbol table (``symbol id`` per line) as symbol -> id.

    Raises:
        AsrError: unreadable file, malformed line, or a repeated symbol or id (file:line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not UTF-8"
        raise AsrError(f"{path}: cannot read symbol table ({why})") from None
    table: dict[str, int] = {}
    ids: set[int] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        f = line.split()
        if not f:
            continue
        try:
            if len(f) != 2:
                raise ValueError
            i = int(f[1])
            if i < 0:
                raise ValueError
        except ValueError:
            raise AsrError(f"{path}:{lineno}: malformed symbol table line {line!r}") from None
        if f[0] in table or i in ids:
            raise AsrError(f"{path}:{lineno}: symbol {f[0]!r} or id {i} repeated")
        table[f[0]] = i
        ids.add(i)
    return table


def read_symbols_by_id(path: str | os.PathLike) -> dict[int, str]:
    """A symbol table as id -> symbol (the output labels of a graph back to words)."""
    return {i: sym for sym, i in read_symbol_table(path).items()}


def make_word_g_fst(arpa: str | os.PathLike, words_txt: str | os.PathLike, out_path: str | os.PathLike,
                    *, max_arpa_warnings: int = 30) -> kaldifst.StdVectorFst:
    """The grammar FST G of an ARPA LM, Kaldi style, with kaldilm's ``arpa2fst``.

    Input and output labels are the word ids of ``words_txt``; the start state is the
    ``<s>`` history, ``</s>`` becomes final weights (there are no ``<s>`` / ``</s>`` arcs),
    and back-off arcs have ``#0`` on the input and ``<eps>`` on the output side, so that
    G stays determinisable when composed later. Weights are -ln probabilities (float32).
    Arcs are sorted by input label. kaldilm's console output goes to the
    ``asr.native`` logger (:func:`asr.native_output.native_output_to_log`).

    The ARPA file is first parsed in Python (:func:`read_arpa`) and checked against the
    symbol table: kaldilm aborts the whole process on a malformed file and silently drops
    n-grams with a word missing from the table.

    Args:
        arpa: the ARPA file (any order).
        words_txt: symbol table with ``<eps> 0``, ``#0``, ``<s>``, ``</s>`` and every word
            of the LM (e.g. :func:`word_symbol_table` written to a file).
        out_path: where G is written (OpenFst binary; parent folders are created).
        max_arpa_warnings: kaldilm's limit on ARPA warnings logged (-1: all, 0: none).

    Returns:
        G as a ``kaldifst.StdVectorFst`` (also written to ``out_path``).

    Raises:
        AsrError: a bad ARPA file (or one without a ``<s>`` unigram) or symbol table, or
            an LM word missing from the table.
    """
    import kaldifst
    from kaldilm import arpa2fst

    lm = read_arpa(arpa)
    table = read_symbol_table(words_txt)
    if table.get(EPS) != 0:
        raise AsrError(f"{words_txt}: {EPS} must be symbol 0")
    for sym in (DISAMBIG, BOS, EOS):
        if sym not in table:
            raise AsrError(f"{words_txt}: no {sym} symbol")
    if (BOS,) not in lm.probs:
        raise AsrError(f"{arpa}: no {BOS} unigram (kaldilm needs one)")
    missing = [w for w in lm.vocab if w not in table]
    if not missing:  # words that only occur in higher-order n-grams
        missing = sorted({w for g in lm.probs if len(g) > 1 for w in g if w not in table})
    if missing:
        raise AsrError(f"{words_txt}: {len(missing)} word(s) of {arpa} missing, e.g. "
                       + ", ".join(repr(w) for w in missing[:5]))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with native_output_to_log():
        arpa2fst(str(arpa), output_fst=str(out), read_symbol_table=str(words_txt),
                 disambig_symbol=DISAMBIG, max_arpa_warnings=max_arpa_warnings)
    return kaldifst.StdVectorFst.read(str(out))


def replace_input_label(fst: kaldifst.StdVectorFst, old: int, new: int) -> kaldifst.StdVectorFst:
    """A copy of ``fst`` with input label ``old`` replaced by ``new``, arcs sorted by input.

    E.g. ``replace_input_label(g, words["#0"], 0)`` turns G's back-off arcs into epsilons
    (for scoring by composition and shortest path; such a G is no longer determinisable).
    """
    import kaldifst

    out = kaldifst.StdVectorFst()
    for _ in range(fst.num_states):
        out.add_state()
    if fst.num_states:
        out.start = fst.start
    for s in range(fst.num_states):
        out.set_final(s, fst.final(s))
        for a in kaldifst.ArcIterator(fst, s):
            out.add_arc(s, kaldifst.StdArc(new if a.ilabel == old else a.ilabel, a.olabel, a.weight, a.nextstate))
    kaldifst.arcsort(out, sort_type="ilabel")
    return out
