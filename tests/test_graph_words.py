"""Word decoding graph HCLG and the shared FST helpers, on toy models whose best path is known."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from asr.errors import AsrError
from asr.graph.fst_util import (
    fst_from_arrays,
    fst_to_arrays,
    lexicon_fst,
    read_lang_lexicon,
    remove_input_labels,
    with_output_penalty,
)
from asr.graph.hmm_view import HmmView
from asr.graph.ngram_lm import estimate_ngram, make_word_g_fst, read_symbol_table, word_symbol_table, write_arpa
from asr.graph.search import SearchOptions, best_path
from asr.graph.word_graph import WordGraphOptions, build_word_graph, read_word_graph, write_word_graph
from fst_paths import path_cost

PHONES = ["sil", "a", "b", "c", "d", "e"]
NUM_STATES = [3, 2, 2, 2, 1, 2]
SIL, A, B, C, D, E = range(6)
# Words start with a, c or e and b, d start none, so a phone string has one parse up to
# the homophones cd / seedy; "a" is a prefix of "ab" and "eb" has two pronunciations.
LEXICON = {
    "a": [("a",)],
    "ab": [("a", "b")],
    "cd": [("c", "d")],
    "seedy": [("c", "d")],
    "eb": [("e", "b"), ("e", "a", "b")],
}
VOCAB = sorted(LEXICON)
TRAIN = [["a", "ab", "cd"], ["ab", "a"], ["eb", "a", "cd"], ["cd", "eb"], ["a", "a", "eb", "seedy"],
         ["ab", "cd", "cd"], ["eb"]]
# minimize_encoded quantises weights to multiples of 1/1024 (Kaldi's kDelta): a path of a
# few dozen arcs drifts by ~1e-3 (seen: up to 3e-3); the smallest cost term tested is 0.03.
QUANT = 1e-2
HOMOPHONES = {"cd": ("cd", "seedy"), "seedy": ("cd", "seedy")}


def _offsets() -> np.ndarray:
    return np.concatenate([[0], np.cumsum(NUM_STATES)[:-1]]).astype(np.int64)


def _view(context_dependent: bool, seed: int = 0) -> HmmView:
    """Monophone: pdf = HMM state id. Context-dependent: 4 extra pdfs for states whose pdf
    depends on a neighbour (b0 on 'left is a', a1 on 'right is the boundary', sil0 on
    'left is the boundary', e1 on 'right is sil')."""
    off = _offsets()
    n = int(sum(NUM_STATES))
    rng = np.random.default_rng(seed)
    loop = rng.uniform(0.3, 0.9, size=n)
    bnd = len(PHONES)

    def pdf(left: int, centre: int, right: int, state: int) -> int:
        base = int(off[centre] + state)
        if not context_dependent:
            return base
        if centre == B and state == 0 and left != A:
            return n
        if centre == A and state == 1 and right == bnd:
            return n + 1
        if centre == SIL and state == 0 and left != bnd:
            return n + 2
        if centre == E and state == 1 and right == SIL:
            return n + 3
        return base

    return HmmView(list(PHONES), list(NUM_STATES), off, np.log(loop), np.log1p(-loop),
                   n + 4 if context_dependent else n, context_dependent, bnd, pdf)


@pytest.fixture(scope="module")
def lang(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("lang")
    lm = estimate_ngram(TRAIN, VOCAB, order=2)
    write_arpa(lm, d / "words.arpa")
    (d / "words.txt").write_text(word_symbol_table(VOCAB))
    g = make_word_g_fst(d / "words.arpa", d / "words.txt", d / "G.fst")
    return {"lm": lm, "words_txt": d / "words.txt", "g": g, "ids": read_symbol_table(d / "words.txt")}


def _phones_of(words: list[str], sil: list[bool], prons: dict[str, int] | None = None) -> list[int]:
    """Phone ids of ``words``; ``sil[0]``: leading silence, ``sil[i + 1]``: silence after word i."""
    out = [SIL] if sil[0] else []
    for i, w in enumerate(words):
        out += [PHONES.index(p) for p in LEXICON[w][(prons or {}).get(w, 0)]]
        if sil[i + 1]:
            out.append(SIL)
    return out


def _chain(view: HmmView, phones: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(pdf, HMM state id) of each chain state of a phone sequence, with its contexts."""
    pdfs, hmm = [], []
    for i, c in enumerate(phones):
        left = phones[i - 1] if i else view.boundary
        right = phones[i + 1] if i + 1 < len(phones) else view.boundary
        for s in range(view.num_states[c]):
            pdfs.append(view.pdf(left, c, right, s))
            hmm.append(int(view.state_offset[c]) + s)
    return np.asarray(pdfs), np.asarray(hmm)


def _frames(view: HmmView, phones: list[int], rng: np.random.Generator):
    """Random durations: (frame pdfs [T], transition cost at self_loop_scale 1)."""
    pdfs, hmm = _chain(view, phones)
    dur = rng.integers(1, 5, size=len(pdfs))
    trans = float(np.sum((dur - 1) * -view.log_loop[hmm] - view.log_forward[hmm]))
    return np.repeat(pdfs, dur), trans


def _indicator(cols: np.ndarray, n: int) -> np.ndarray:
    ll = np.full((len(cols), n), -20.0, dtype=np.float32)
    ll[np.arange(len(cols)), cols] = 0.0
    return ll


def _lm_best(lm, words: list[str]) -> list[str]:
    """Among the homophone variants of ``words``, the one the LM prefers."""
    variants = itertools.product(*[HOMOPHONES.get(w, (w,)) for w in words])
    return list(max(variants, key=lambda v: lm.sentence_log_prob(list(v))))


def _sil_cost(sil: list[bool], p: float) -> float:
    return sum(-math.log(p) if s else -math.log1p(-p) for s in sil)


SENTENCES = [  # (words, silence at start / after each word, pronunciation choice)
    (["a", "ab", "cd"], [False, False, False, False], {}),
    (["a", "ab", "cd"], [True, True, False, True], {}),
    (["eb", "a", "a"], [True, False, True, True], {"eb": 1}),
    (["cd", "eb"], [False, True, False], {}),
    (["ab", "a", "eb", "seedy", "cd"], [True, False, False, True, False, True], {"eb": 0}),
    (["eb"], [False, False], {"eb": 1}),
]


@pytest.fixture(scope="module", params=[False, True], ids=["mono", "tree"])
def graph(request: pytest.FixtureRequest, lang: dict) -> tuple:
    view = _view(request.param)
    opts = WordGraphOptions(self_loop_scale=0.3, silence_prob=0.3)
    return view, opts, build_word_graph(view, LEXICON, lang["words_txt"], lang["g"], opts)


def test_indicator_path_decodes_to_the_words(graph, lang) -> None:
    view, _, g = graph
    rng = np.random.default_rng(3)
    for words, sil, prons in SENTENCES:
        for _ in range(3):
            cols, _ = _frames(view, _phones_of(words, sil, prons), rng)
            path = best_path(_indicator(cols, view.num_pdfs), g, SearchOptions(acoustic_scale=1.0))
            assert path is not None and path.reached_final
            np.testing.assert_array_equal(path.columns, cols)  # label i reads column i - 1
            ids = {i: w for w, i in lang["ids"].items()}
            assert [ids[i] for i in path.labels] == _lm_best(lang["lm"], words), (words, sil)


def test_path_cost_is_lm_plus_silence_plus_transitions(graph, lang) -> None:
    view, opts, g = graph
    rng = np.random.default_rng(4)
    for words, sil, prons in SENTENCES:
        cols, trans = _frames(view, _phones_of(words, sil, prons), rng)
        expected = (-lang["lm"].sentence_log_prob(words) + _sil_cost(sil, opts.silence_prob)
                    + opts.self_loop_scale * trans)
        got = path_cost(g, list(cols + 1), [lang["ids"][w] for w in words])
        assert got == pytest.approx(expected, abs=QUANT), (words, sil)


def test_homophones_are_both_reachable(graph, lang) -> None:
    view, _, g = graph
    cols, _ = _frames(view, _phones_of(["a", "cd"], [False, False, False]), np.random.default_rng(5))
    lm = lang["lm"]
    costs = {w: path_cost(g, list(cols + 1), [lang["ids"]["a"], lang["ids"][w]]) for w in ("cd", "seedy")}
    assert all(math.isfinite(c) for c in costs.values())
    want = lm.sentence_log_prob(["a", "cd"]) - lm.sentence_log_prob(["a", "seedy"])
    assert costs["seedy"] - costs["cd"] == pytest.approx(want, abs=QUANT)


def test_impossible_paths_have_no_cost(graph, lang) -> None:
    view, _, g = graph
    cols, _ = _frames(view, _phones_of(["ab"], [False, False]), np.random.default_rng(6))
    ids = lang["ids"]
    assert path_cost(g, list(cols + 1), [ids["a"]]) == float("inf")  # wrong word
    cut = cols[cols != cols[-1]]  # the last HMM state of b never visited
    assert path_cost(g, list(cut + 1), [ids["ab"]]) == float("inf")


def test_no_silence_option(lang) -> None:
    view = _view(True)
    opts = WordGraphOptions(silence_phone=None)
    g = build_word_graph(view, LEXICON, lang["words_txt"], lang["g"], opts)
    rng = np.random.default_rng(7)
    words = ["a", "ab", "cd"]
    quiet, trans = _frames(view, _phones_of(words, [False] * 4), rng)
    ids = [lang["ids"][w] for w in words]
    assert path_cost(g, list(quiet + 1), ids) == pytest.approx(
        -lang["lm"].sentence_log_prob(words) + 0.1 * trans, abs=QUANT)
    noisy, _ = _frames(view, _phones_of(words, [True, False, True, False]), rng)
    assert path_cost(g, list(noisy + 1), ids) == float("inf")


def test_minimised_graph_equals_unminimised(lang) -> None:
    view = _view(True)
    full = build_word_graph(view, LEXICON, lang["words_txt"], lang["g"], WordGraphOptions(minimize=False))
    small = build_word_graph(view, LEXICON, lang["words_txt"], lang["g"])
    assert small.num_states < full.num_states
    rng = np.random.default_rng(8)
    for words, sil, prons in SENTENCES:
        cols, _ = _frames(view, _phones_of(words, sil, prons), rng)
        ids = [lang["ids"][w] for w in words]
        assert path_cost(small, list(cols + 1), ids) == pytest.approx(path_cost(full, list(cols + 1), ids),
                                                                       abs=QUANT)


def test_output_penalty_adds_per_word(graph, lang, tmp_path: Path) -> None:
    view, _, g = graph
    pen = with_output_penalty(g, 2.5)
    assert (pen.num_states, sum(pen.num_arcs(s) for s in range(pen.num_states))) == \
        (g.num_states, sum(g.num_arcs(s) for s in range(g.num_states)))
    rng = np.random.default_rng(9)
    for words, sil, prons in SENTENCES:
        cols, _ = _frames(view, _phones_of(words, sil, prons), rng)
        ids = [lang["ids"][w] for w in words]
        before, after = path_cost(g, list(cols + 1), ids), path_cost(pen, list(cols + 1), ids)
        assert after - before == pytest.approx(2.5 * len(words), abs=1e-3)
        path = best_path(_indicator(cols, view.num_pdfs), pen, SearchOptions(acoustic_scale=1.0))
        assert len(path.labels) == len(words)
    back = read_word_graph(write_word_graph(pen, tmp_path))
    assert back.to_str() == pen.to_str()


def test_fst_arrays_round_trip() -> None:
    import kaldifst

    f = kaldifst.StdVectorFst()
    for _ in range(4):
        f.add_state()
    f.start = 1
    f.add_arc(1, kaldifst.StdArc(3, 0, 0.5, 2))
    f.add_arc(1, kaldifst.StdArc(0, 7, 1.25, 0))
    f.add_arc(2, kaldifst.StdArc(4, 4, -1.0, 2))
    f.add_arc(0, kaldifst.StdArc(2, 1, 0.0, 3))
    f.set_final(3, 0.75)
    arr = fst_to_arrays(f)
    arr0 = fst_to_arrays(f)
    assert arr.start == 1 and arr.num_states == 4 and arr.num_arcs == 4
    np.testing.assert_array_equal(arr.src, [0, 1, 1, 2])
    np.testing.assert_array_equal(arr.ilabel, [2, 3, 0, 4])
    assert np.isinf(arr.final[:3]).all() and arr.final[3] == 0.75
    assert fst_from_arrays(arr).to_str() == f.to_str()
    gone = fst_to_arrays(remove_input_labels(f, [3, 4]))
    np.testing.assert_array_equal(gone.ilabel, [2, 0, 0, 0])
    arr.src = arr.src[::-1].copy()  # unsorted arcs are grouped (stable) by source state
    arr.dst, arr.ilabel = arr.dst[::-1].copy(), arr.ilabel[::-1].copy()
    arr.olabel, arr.weight = arr.olabel[::-1].copy(), arr.weight[::-1].copy()
    g = fst_to_arrays(fst_from_arrays(arr))
    np.testing.assert_array_equal(g.ilabel, [2, 0, 3, 4])
    with pytest.raises(AsrError, match="outside"):
        arr.dst[0] = 9
        fst_from_arrays(arr)
    table = kaldifst.SymbolTable()
    for sym in ["<eps>", "x", "y", "z", "w"]:
        table.add_symbol(sym)
    f.input_symbols = table  # a longer binary header: read arc by arc, same arrays
    slow = fst_to_arrays(f)
    np.testing.assert_array_equal(slow.dst, fst_to_arrays(fst_from_arrays(slow)).dst)
    np.testing.assert_array_equal(slow.weight, [0.0, 0.5, 1.25, -1.0])
    np.testing.assert_array_equal(slow.src, [0, 1, 1, 2])
    assert fst_from_arrays(slow).to_str() == fst_from_arrays(arr0).to_str()  # symbols dropped


def test_lexicon_fst_disambiguation(lang) -> None:
    phone_ids = {p: i + 1 for i, p in enumerate(PHONES)}
    fst, dis = lexicon_fst(LEXICON, phone_ids, lang["ids"])
    # "a" (prefix of "ab") gets #1, the homophones cd / seedy #1 and #2: #0, #1, #2.
    assert dis == [7, 8, 9]
    arr = fst_to_arrays(fst)
    d0 = arr.ilabel == 7
    assert d0.sum() == 1 and arr.olabel[d0][0] == lang["ids"]["#0"] and arr.src[d0] == arr.dst[d0]
    assert set(arr.ilabel[np.isin(arr.ilabel, [8, 9])]) == {8, 9}
    assert sorted(arr.olabel[arr.olabel > 0].tolist()) == sorted(
        [lang["ids"][w] for w in LEXICON for _ in LEXICON[w]] + [lang["ids"]["#0"]])
    _, plain = lexicon_fst(LEXICON, phone_ids, lang["ids"], disambig=False)
    assert plain == []


def test_lexicon_errors(lang) -> None:
    phone_ids = {p: i + 1 for i, p in enumerate(PHONES)}
    with pytest.raises(AsrError, match="'ab' has an empty pronunciation"):
        lexicon_fst({**LEXICON, "ab": [()]}, phone_ids, lang["ids"])
    with pytest.raises(AsrError, match="word 'zz' is not in the word symbol table"):
        lexicon_fst({**LEXICON, "zz": [("a",)]}, phone_ids, lang["ids"])
    with pytest.raises(AsrError, match="phone 'q' of word 'ab'"):
        lexicon_fst({**LEXICON, "ab": [("q",)]}, phone_ids, lang["ids"])
    with pytest.raises(AsrError, match="silence_prob"):
        lexicon_fst(LEXICON, phone_ids, lang["ids"], silence_prob=1.0)
    with pytest.raises(AsrError, match="phone 'q' of word 'ab'"):
        build_word_graph(_view(False), {**LEXICON, "ab": [("q",)]}, lang["words_txt"], lang["g"])


def test_read_lang_lexicon(tmp_path: Path) -> None:
    (tmp_path / "lexicon.txt").write_text("a ah\na ax\nab ah b\na ah\n")
    assert read_lang_lexicon(tmp_path / "lexicon.txt") == {"a": [("ah",), ("ax",)], "ab": [("ah", "b")]}
    (tmp_path / "bad.txt").write_text("a ah\nb\n")
    with pytest.raises(AsrError, match="bad.txt:2"):
        read_lang_lexicon(tmp_path / "bad.txt")


DEMO = Path("/tmp/demo_mix/timit_ligru")


@pytest.mark.slow
@pytest.mark.skipif(not (DEMO / "gmm/tri3/final.mdl").is_file(), reason="no trained TIMIT demo")
def test_real_tri3_word_graph_decodes_dev() -> None:
    import kaldialign
    import kaldifst
    import kaldiio

    from asr.decode.gmm_model import gmm_log_likelihoods, hmm_view
    from asr.hmm.model import GmmHmm

    model = GmmHmm.load(DEMO / "gmm/tri3/final.mdl")
    g = build_word_graph(hmm_view(model), read_lang_lexicon(DEMO / "lang/lexicon.txt"), DEMO / "lang/words.txt",
                         kaldifst.StdVectorFst.read(str(DEMO / "lang/G_words.fst")))
    words = {i: w for w, i in read_symbol_table(DEMO / "lang/words.txt").items()}
    ref = dict(line.split(maxsplit=1) for line in (DEMO / "data/dev/text").read_text().splitlines())
    feats = kaldiio.load_scp(str(DEMO / "gmm/fmllr_dev/feats.scp"))
    errs = total = 0
    for utt in list(feats.keys())[:8]:  # the first speaker's
        path = best_path(gmm_log_likelihoods(model, np.array(feats[utt])), g, SearchOptions(acoustic_scale=0.1))
        r = ref[utt].split()
        errs += kaldialign.edit_distance(r, [words[i] for i in path.labels])["total"]
        total += len(r)
    assert errs / total < 0.3
