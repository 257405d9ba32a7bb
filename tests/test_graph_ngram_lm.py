"""Word n-gram LM: normalisation, the interpolated Witten-Bell definition, ARPA, perplexity, G.fst."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from pathlib import Path

import kaldifst
import numpy as np
import pytest

from asr.data.kaldi_dir import read_data_dir
from asr.data.phones import TIMIT48
from asr.errors import AsrError
from asr.graph.ngram_lm import (BOS, DISAMBIG, EOS, UNK, NgramLm, estimate_ngram, make_word_g_fst, perplexity,
                                read_arpa, read_symbol_table, replace_input_label, word_symbol_table, write_arpa)
from asr.graph.phone_lm import estimate_bigram

VOCAB = ["a", "b", "c", "d", "e", "f"]
ORDERS = [1, 2, 3]


def _markov_corpus(seed: int = 0, num: int = 60) -> list[list[str]]:
    """Sentences of a sparse random Markov chain over VOCAB (so that context matters)."""
    rng = np.random.default_rng(seed)
    v = len(VOCAB)
    trans = rng.dirichlet([0.3] * (v + 1), size=v + 1)  # row v: <s>; column v: </s>
    out = []
    for _ in range(num):
        sent: list[str] = []
        prev = v
        while len(sent) < 12:
            nxt = int(rng.choice(v + 1, p=trans[prev]))
            if nxt == v:
                break
            sent.append(VOCAB[nxt])
            prev = nxt
        out.append(sent)
    return out


CORPUS = _markov_corpus()


def _histories(vocab: list[str], order: int) -> list[tuple[str, ...]]:
    """Every history of 0..order-1 words (``<s>`` only first), plus unseen and too-long ones."""
    out: list[tuple[str, ...]] = [()]
    for n in range(1, order):
        out += list(itertools.product(vocab, repeat=n))
        out += [(BOS, *h) for h in itertools.product(vocab, repeat=n - 1)]
    out += [("zzz",), ("zzz", vocab[0]), (BOS, *vocab, vocab[0])]
    return out


def _reference_log_prob(sents: list[list[str]], vocab: list[str], order: int, w: str, hist: tuple[str, ...]) -> float:
    """Interpolated Witten-Bell straight from its recursive definition (no back-off form)."""
    counts: Counter[tuple[str, ...]] = Counter()
    for s in sents:
        seq = [BOS, *s, EOS]
        for k in range(1, order + 1):
            for i in range(len(seq) - k + 1):
                if seq[i:i + k] != [BOS]:
                    counts[tuple(seq[i:i + k])] += 1
    predicted = [*vocab, EOS]
    total = sum(c for g, c in counts.items() if len(g) == 1)

    def p(w: str, h: tuple[str, ...]) -> float:
        if not h:
            return (counts[(w,)] + 1) / (total + len(predicted))
        followers = [counts[(*h, x)] for x in predicted if counts[(*h, x)]]
        c_h, t_h = sum(followers), len(followers)
        if c_h == 0:
            return p(w, h[1:])
        return (counts[(*h, w)] + t_h * p(w, h[1:])) / (c_h + t_h)

    return math.log(p(w, hist[max(0, len(hist) - order + 1):] if order > 1 else ()))


@pytest.mark.parametrize("order", ORDERS)
def test_every_history_is_normalised_and_matches_the_definition(order: int) -> None:
    lm = estimate_ngram(CORPUS, VOCAB, order)
    assert lm.order == order and lm.vocab == VOCAB and BOS not in lm.vocab
    for h in _histories(VOCAB, order):
        lps = np.array([lm.log_prob(w, h) for w in [*VOCAB, EOS]])
        assert np.exp(lps).sum() == pytest.approx(1.0, abs=1e-6), h
        ref = [_reference_log_prob(CORPUS, VOCAB, order, w, h) for w in [*VOCAB, EOS]]
        np.testing.assert_allclose(lps, ref, atol=1e-9, err_msg=str(h))
    # Explicit n-grams: all vocabulary unigrams, and exactly the n-grams seen in training.
    assert lm.num_ngrams(1) == len(VOCAB) + 2
    assert lm.probs[(BOS,)] == -99.0


@pytest.mark.parametrize("order", ORDERS)
def test_arpa_round_trip(order: int, tmp_path: Path) -> None:
    lm = estimate_ngram(CORPUS, VOCAB, order)
    write_arpa(lm, tmp_path / "lm.arpa")
    back = read_arpa(tmp_path / "lm.arpa")
    assert (back.order, back.vocab, set(back.probs), set(back.bows)) == (order, VOCAB, set(lm.probs), set(lm.bows))
    for h in _histories(VOCAB, order):
        for w in [*VOCAB, EOS]:
            assert back.log_prob(w, h) == pytest.approx(lm.log_prob(w, h), abs=1e-6)
    for s in CORPUS[:10]:
        assert back.sentence_log_prob(s) == pytest.approx(lm.sentence_log_prob(s), abs=1e-5)


def test_order_2_on_phone_transcripts_is_the_phone_bigram(mini_timit_dirs: dict[str, Path]) -> None:
    d = read_data_dir(mini_timit_dirs["train"])
    transcripts = [p.split() for p in d.phones.values()]
    bigram = estimate_bigram(transcripts, TIMIT48)
    lm = estimate_ngram(transcripts, TIMIT48, order=2)
    m = bigram.log_prob_matrix()  # [V+1 histories (phones, <s>), V+1 next (phones, </s>)]
    for i, h in enumerate([*TIMIT48, BOS]):
        for j, w in enumerate([*TIMIT48, EOS]):
            assert lm.log_prob(w, [h]) == pytest.approx(m[i, j], abs=1e-12)
    assert bigram.to_ngram().probs == lm.probs
    # The bigram formula by hand, on one seen and one unseen bigram.
    seqs = [[BOS, *t, EOS] for t in transcripts]
    uni = Counter(w for s in seqs for w in s[1:])
    bi = Counter(b for s in seqs for b in zip(s, s[1:]))
    h = transcripts[0][0]
    c_h = sum(c for (a, _), c in bi.items() if a == h)
    t_h = sum(1 for (a, _) in bi if a == h)
    n, v = sum(uni.values()), len(TIMIT48) + 1
    for w in [*TIMIT48, EOS]:
        expect = (bi[(h, w)] + t_h * (uni[w] + 1) / (n + v)) / (c_h + t_h)
        assert lm.log_prob(w, [h]) == pytest.approx(math.log(expect), abs=1e-12)


def test_perplexity() -> None:
    lm = estimate_ngram(CORPUS, VOCAB, 3)
    ppl, scored, oov = perplexity(lm, CORPUS)
    num_words = sum(len(s) for s in CORPUS)
    assert (scored, oov) == (num_words + len(CORPUS), 0)
    assert ppl == pytest.approx(math.exp(-sum(lm.sentence_log_prob(s) for s in CORPUS) / scored))
    rng = np.random.default_rng(1)
    words = [w for s in CORPUS for w in s]
    rng.shuffle(words)
    it = iter(words)
    shuffled = [[next(it) for _ in s] for s in CORPUS]
    assert perplexity(lm, shuffled)[0] > 1.2 * ppl
    # Without <unk>, OOVs are skipped and counted; the next word backs off past them.
    ppl2, scored2, oov2 = perplexity(lm, [["a", "zz", "b"], ["zz"]])
    assert (scored2, oov2) == (2 + 2, 2)
    expect = lm.log_prob("a", [BOS]) + lm.log_prob("b", [BOS, "a", "zz"]) + lm.log_prob(EOS, ["a", "zz", "b"]) \
        + lm.log_prob(EOS, [BOS, "zz"])
    assert lm.log_prob("b", [BOS, "a", "zz"]) == pytest.approx(lm.log_prob("b", []))
    assert ppl2 == pytest.approx(math.exp(-expect / 4))


def test_unk_maps_unknown_words() -> None:
    vocab = [*VOCAB[:4], UNK]  # e and f become <unk>
    lm = estimate_ngram(CORPUS, vocab, 2)
    assert lm.vocab == vocab
    assert lm.log_prob("e", ["f"]) == lm.log_prob(UNK, [UNK])
    assert lm.sentence_log_prob(["a", "zz"]) == pytest.approx(lm.sentence_log_prob(["a", UNK]))
    counts = Counter(w for s in CORPUS for w in s)
    _, scored, oov = perplexity(lm, CORPUS)
    assert oov == counts["e"] + counts["f"] and scored == sum(counts.values()) + len(CORPUS)


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(AsrError, match="sentence 1 has word 'zz'"):
        estimate_ngram([["a"], ["b", "zz"]], ["a", "b"], 2)
    with pytest.raises(AsrError, match="no sentences"):
        estimate_ngram([], ["a"], 2)
    with pytest.raises(AsrError, match="order"):
        estimate_ngram([["a"]], ["a"], 0)
    with pytest.raises(AsrError, match="must not contain"):
        estimate_ngram([["a"]], ["a", EOS], 2)
    with pytest.raises(AsrError, match="is a string"):
        estimate_ngram(["a b"], ["a", "b"], 2)
    lm = estimate_ngram([["a"]], ["a"], 2)
    with pytest.raises(AsrError, match="'zz' is not in the vocabulary"):
        lm.log_prob("zz", [BOS])
    with pytest.raises(AsrError, match="never predicted"):
        lm.log_prob(BOS, [])
    good = tmp_path / "good.arpa"
    write_arpa(estimate_ngram(CORPUS, VOCAB, 3), good)
    lines = good.read_text().splitlines()
    cases = {
        "count.arpa": ([ln for ln in lines if not ln.startswith("-99.0000000\t<s>")], "declares 8 1-grams"),
        "trunc.arpa": (lines[:20], "truncated"),
        "words.arpa": ([ln.replace("\ta c\t", "\ta c x\t") for ln in lines], r"words.arpa:\d+: malformed ARPA line"),
        "sect.arpa": ([ln.replace("\\3-grams:", "\\4-grams:") for ln in lines], r"sect.arpa:\d+: section .* not declared"),
    }
    for name, (text, msg) in cases.items():
        (tmp_path / name).write_text("\n".join(text) + "\n")
        with pytest.raises(AsrError, match=msg):
            read_arpa(tmp_path / name)
    with pytest.raises(AsrError, match="reserved"):
        word_symbol_table(["a", DISAMBIG])


def _arc_table(g) -> dict[int, dict[int, tuple[float, int]]]:
    return {s: {a.ilabel: (a.weight.value, a.nextstate) for a in kaldifst.ArcIterator(g, s)}
            for s in range(g.num_states)}


def _walk_cost(g, arcs, labels: list[int], backoff: int) -> float:
    """Cost of G's back-off path for ``labels`` + ``</s>``: take the word's arc, else back off."""
    cost, s = 0.0, g.start
    for lab in [*labels, None]:
        while True:
            if lab is None and math.isfinite(g.final(s).value):
                return cost + g.final(s).value
            if lab is not None and lab in arcs[s]:
                cost += arcs[s][lab][0]
                s = arcs[s][lab][1]
                break
            w, s = arcs[s][backoff]  # KeyError: no back-off arc where one is needed
            cost += w
    raise AssertionError("unreachable")


def _shortest_cost(g, labels: list[int]) -> float:
    path = kaldifst.shortest_path(kaldifst.compose(kaldifst.make_linear_acceptor(labels), g))
    if path.num_states == 0:
        return math.inf
    cost, s = 0.0, path.start
    while True:
        arcs = list(kaldifst.ArcIterator(path, s))
        if not arcs:
            return cost + path.final(s).value
        cost += arcs[0].weight.value
        s = arcs[0].nextstate


@pytest.mark.parametrize("order", ORDERS)
def test_word_g_fst_scores_sentences_like_the_lm(order: int, tmp_path: Path) -> None:
    lm = estimate_ngram(CORPUS, VOCAB, order)
    write_arpa(lm, tmp_path / "lm.arpa")
    (tmp_path / "words.txt").write_text(word_symbol_table(VOCAB))
    table = read_symbol_table(tmp_path / "words.txt")
    assert table == {"<eps>": 0, **{w: i + 1 for i, w in enumerate(VOCAB)}, DISAMBIG: 7, BOS: 8, EOS: 9}
    g = make_word_g_fst(tmp_path / "lm.arpa", tmp_path / "words.txt", tmp_path / "lang" / "G.fst")
    g2 = kaldifst.StdVectorFst.read(str(tmp_path / "lang" / "G.fst"))
    # States: one per explicit history (n-grams below the top order not ending in </s>),
    # plus the empty history; arcs: one per explicit n-gram of a word, one back-off per state.
    histories = sum(1 for n in lm.probs if len(n) < order and n[-1] != EOS)
    num_states = histories + 1 if order > 1 else 1
    word_ngrams = sum(1 for n in lm.probs if n[-1] not in (BOS, EOS))
    for fst in (g, g2):
        assert fst.num_states == num_states
        assert sum(fst.num_arcs(s) for s in range(fst.num_states)) == word_ngrams + num_states - 1
    arcs = _arc_table(g)
    backoff = table[DISAMBIG]
    for s, out in arcs.items():
        for lab in out:
            assert lab not in (table[BOS], table[EOS], 0)
        for a in kaldifst.ArcIterator(g, s):
            assert a.olabel == (0 if a.ilabel == backoff else a.ilabel)
    g_eps = replace_input_label(g, backoff, 0)
    rng = np.random.default_rng(2)
    unseen = [list(rng.choice(VOCAB, size=int(rng.integers(1, 6)))) for _ in range(10)]
    for sent in [*CORPUS, *unseen]:
        labels = [table[w] for w in sent]
        expect = -lm.sentence_log_prob(sent)
        assert _walk_cost(g, arcs, labels, backoff) == pytest.approx(expect, rel=1e-5, abs=1e-4)
        # With back-off arcs as epsilons the best path can only be cheaper than the exact
        # back-off path, and for training sentences it is that path.
        best = _shortest_cost(g_eps, labels)
        assert best <= expect + 1e-4
        if sent in CORPUS:
            assert best == pytest.approx(expect, rel=1e-5, abs=1e-4)


def test_word_g_fst_rejects_words_missing_from_the_table(tmp_path: Path) -> None:
    write_arpa(estimate_ngram(CORPUS, VOCAB, 2), tmp_path / "lm.arpa")
    (tmp_path / "words.txt").write_text(word_symbol_table(VOCAB[:-1]))
    with pytest.raises(AsrError, match="1 word.*missing, e.g. 'f'"):
        make_word_g_fst(tmp_path / "lm.arpa", tmp_path / "words.txt", tmp_path / "G.fst")
    (tmp_path / "nodis.txt").write_text("<eps> 0\na 1\n")
    with pytest.raises(AsrError, match="no #0"):
        make_word_g_fst(tmp_path / "lm.arpa", tmp_path / "nodis.txt", tmp_path / "G.fst")
    (tmp_path / "nobos.arpa").write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-0.3\ta\n-0.3\t</s>\n\\end\\\n")
    with pytest.raises(AsrError, match="no <s> unigram"):  # kaldilm would abort the process
        make_word_g_fst(tmp_path / "nobos.arpa", tmp_path / "words.txt", tmp_path / "G.fst")
    with pytest.raises(AsrError, match="missing.arpa: cannot read"):
        make_word_g_fst(tmp_path / "missing.arpa", tmp_path / "words.txt", tmp_path / "G.fst")


def test_unigram_lm_ignores_history() -> None:
    lm = estimate_ngram(CORPUS, VOCAB, 1)
    assert lm.bows == {} and lm.log_prob("a", ["b", "c"]) == lm.log_prob("a")
    assert isinstance(lm, NgramLm)
