"""CTC graphs: the topology T, T o G_phones and the word graph T o LG, on indicator matrices."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from asr.errors import AsrError
from asr.graph.ctc_graph import build_ctc_phone_graph, build_ctc_word_graph, ctc_topology
from asr.graph.fst_util import fst_to_arrays, with_output_penalty
from asr.graph.ngram_lm import estimate_ngram, make_word_g_fst, read_symbol_table, word_symbol_table, write_arpa
from asr.graph.phone_lm import estimate_bigram, make_g_fst
from asr.graph.phone_lm import write_arpa as write_phone_arpa
from asr.graph.search import SearchOptions, best_path
from fst_paths import path_cost

PHONES = ["sil", "a", "b", "c"]  # token id = phone index + 1; token 0 is the blank
NUM_TOKENS = len(PHONES) + 1
# "a" is a prefix of "ab" and of "aa"; "ca" and "kah" are homophones. Words start with a or c.
LEXICON = {"a": [("a",)], "aa": [("a", "a")], "ab": [("a", "b")], "ca": [("c", "a")], "kah": [("c", "a")]}
VOCAB = sorted(LEXICON)
TRAIN = [["a", "ab"], ["ab", "a", "ca"], ["ca", "aa"], ["a", "a", "ca"], ["kah"], ["aa", "ab"]]
HOMOPHONES = {"ca": ("ca", "kah"), "kah": ("ca", "kah")}


def _frames(tokens: list[int], rng: np.random.Generator, blanks: bool = True) -> np.ndarray:
    """Frame-level tokens of a token sequence: runs of 1..3 frames, 0..2 blanks between
    tokens (at least 1 between repeats), 0..2 leading and trailing."""
    out = [0] * int(rng.integers(0, 3)) if blanks else []
    for i, t in enumerate(tokens):
        if i:
            gap = int(rng.integers(0, 3)) if blanks else 0
            out += [0] * max(gap, int(tokens[i - 1] == t))
        out += [t] * int(rng.integers(1, 4))
    out += [0] * int(rng.integers(0, 3)) if blanks else []
    return np.asarray(out, dtype=np.int64)


def _indicator(cols: np.ndarray, n: int) -> np.ndarray:
    ll = np.full((len(cols), n), -20.0, dtype=np.float32)
    ll[np.arange(len(cols)), cols] = 0.0
    return ll


def _decode(graph, cols: np.ndarray) -> list[int]:
    path = best_path(_indicator(cols, NUM_TOKENS), graph, SearchOptions(acoustic_scale=1.0))
    assert path is not None and path.reached_final
    np.testing.assert_array_equal(path.columns, cols)  # label token + 1 reads column token
    return path.labels


TOKEN_SEQS = [[1, 2, 2, 3], [4], [2, 2, 2], [3, 1, 3, 4, 4, 1], [1, 1]]


def test_topology_collapses_runs_and_blanks() -> None:
    t = ctc_topology(NUM_TOKENS)
    assert t.num_states == NUM_TOKENS and sum(t.num_arcs(s) for s in range(t.num_states)) == NUM_TOKENS ** 2
    rng = np.random.default_rng(0)
    for seq in TOKEN_SEQS:
        for _ in range(4):
            assert _decode(t, _frames(seq, rng)) == seq
    # By hand: a a -> a; a <blk> a -> a a; blanks only -> nothing.
    assert path_cost(t, [3, 3], [2]) == 0.0
    assert path_cost(t, [3, 3], [2, 2]) == float("inf")
    assert path_cost(t, [3, 1, 3], [2, 2]) == 0.0
    assert path_cost(t, [1, 1, 1], []) == 0.0
    assert path_cost(t, [1, 3, 4, 1], [2, 3]) == 0.0
    with pytest.raises(AsrError, match="at least one token"):
        ctc_topology(1)


def test_phone_graph_decodes_and_costs_the_lm(tmp_path: Path) -> None:
    phone_utts = [["sil", "a", "b", "sil"], ["sil", "c", "a", "a", "sil"], ["sil", "b", "sil"]]
    lm = estimate_bigram(phone_utts, PHONES)
    write_phone_arpa(lm, tmp_path / "p.arpa")
    g = make_g_fst(tmp_path / "p.arpa", PHONES, tmp_path / "g")
    graph = build_ctc_phone_graph(NUM_TOKENS, g)
    rng = np.random.default_rng(1)
    for utt in [*phone_utts, ["sil", "a", "a", "a", "c", "sil"], ["b", "b"]]:
        seq = [PHONES.index(p) + 1 for p in utt]
        cols = _frames(seq, rng)
        assert _decode(graph, cols) == seq
        assert path_cost(graph, list(cols + 1), seq) == pytest.approx(-lm.sentence_log_prob(utt), abs=1e-4)
    with pytest.raises(AsrError, match="not a token"):
        build_ctc_phone_graph(3, g)


@pytest.fixture(scope="module")
def word_lang(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("ctc_lang")
    lm = estimate_ngram(TRAIN, VOCAB, order=2)
    write_arpa(lm, d / "words.arpa")
    (d / "words.txt").write_text(word_symbol_table(VOCAB))
    g = make_word_g_fst(d / "words.arpa", d / "words.txt", d / "G.fst")
    phone_ids = {p: i + 1 for i, p in enumerate(PHONES)}
    graph = build_ctc_word_graph(NUM_TOKENS, LEXICON, phone_ids, d / "words.txt", g, silence_prob=0.25)
    return {"lm": lm, "ids": read_symbol_table(d / "words.txt"), "graph": graph, "g": g,
            "words_txt": d / "words.txt", "phone_ids": phone_ids}


def _tokens(words: list[str], sil: list[bool]) -> list[int]:
    out = [1] if sil[0] else []
    for w, s in zip(words, sil[1:]):
        out += [PHONES.index(p) + 1 for p in LEXICON[w][0]] + ([1] if s else [])
    return out


WORD_SENTS = [  # (words, silence at start / after each word)
    (["a", "ab"], [False, False, False]),
    (["a", "a", "ca"], [True, False, True, True]),  # a a across words: blank needed
    (["aa", "ab", "a"], [False, True, False, False]),
    (["ca"], [True, False]),
    (["kah", "aa"], [False, False, True]),
]


def test_word_graph_decodes_words_and_costs_lm_and_silence(word_lang) -> None:
    lm, ids, graph = word_lang["lm"], word_lang["ids"], word_lang["graph"]
    names = {i: w for w, i in ids.items()}
    rng = np.random.default_rng(2)
    for words, sil in WORD_SENTS:
        variants = itertools.product(*[HOMOPHONES.get(w, (w,)) for w in words])
        expected = list(max(variants, key=lambda v: lm.sentence_log_prob(list(v))))
        for _ in range(3):
            cols = _frames(_tokens(words, sil), rng)
            assert [names[i] for i in _decode(graph, cols)] == expected, (words, sil)
        cost = path_cost(graph, list(cols + 1), [ids[w] for w in words])
        sil_cost = sum(-math.log(0.25) if s else -math.log(0.75) for s in sil)
        # LG is minimised after quantising weights to 1/1024 (Kaldi's kDelta).
        assert cost == pytest.approx(-lm.sentence_log_prob(words) + sil_cost, abs=5e-3), (words, sil)


def test_word_graph_without_blanks_between_different_tokens(word_lang) -> None:
    ids, graph = word_lang["ids"], word_lang["graph"]
    cols = _frames(_tokens(["ab", "ca"], [False] * 3), np.random.default_rng(3), blanks=False)
    assert 0 not in cols
    assert _decode(graph, cols) == [ids["ab"], ids["ca"]] or _decode(graph, cols) == [ids["ab"], ids["kah"]]
    # Labels: blank 1, sil 2, a 3, b 4. "a a" without a blank is one "a", so not "a a".
    assert path_cost(graph, [3, 3], [ids["a"], ids["a"]]) == float("inf")
    assert math.isfinite(path_cost(graph, [3, 3], [ids["a"]]))
    assert math.isfinite(path_cost(graph, [3, 1, 3], [ids["a"], ids["a"]]))
    assert math.isfinite(path_cost(graph, [3, 1, 3], [ids["aa"]]))


def test_word_graph_output_penalty(word_lang) -> None:
    ids, graph = word_lang["ids"], word_lang["graph"]
    pen = with_output_penalty(graph, -1.5)
    rng = np.random.default_rng(4)
    for words, sil in WORD_SENTS:
        cols = _frames(_tokens(words, sil), rng)
        out = [ids[w] for w in words]
        assert path_cost(pen, list(cols + 1), out) - path_cost(graph, list(cols + 1), out) == \
            pytest.approx(-1.5 * len(words), abs=1e-4)


def test_word_graph_no_silence_and_errors(word_lang) -> None:
    ids = word_lang["ids"]
    quiet = build_ctc_word_graph(NUM_TOKENS, LEXICON, word_lang["phone_ids"], word_lang["words_txt"],
                                 word_lang["g"], silence_phone=None)
    assert math.isfinite(path_cost(quiet, [3, 4], [ids["ab"]]))  # labels: sil 2, a 3, b 4
    assert path_cost(quiet, [2, 3, 4, 2], [ids["ab"]]) == float("inf")  # no silence arcs
    assert math.isfinite(path_cost(word_lang["graph"], [2, 3, 4, 2], [ids["ab"]]))
    arr = fst_to_arrays(quiet)
    assert arr.ilabel.max() == NUM_TOKENS  # no disambiguation symbol is left
    with pytest.raises(AsrError, match="phone 'c' has id 9"):
        build_ctc_word_graph(NUM_TOKENS, LEXICON, {**word_lang["phone_ids"], "c": 9}, word_lang["words_txt"],
                             word_lang["g"])
    with pytest.raises(AsrError, match="word 'ab' has an empty pronunciation"):
        build_ctc_word_graph(NUM_TOKENS, {**LEXICON, "ab": [()]}, word_lang["phone_ids"], word_lang["words_txt"],
                             word_lang["g"])
