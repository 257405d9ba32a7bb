"""Scoring: edit-distance alignment, error counts, 48 -> 39 folding and the decode/ files."""

from __future__ import annotations

import json
import logging

import pytest

from asr.decode.scoring import align, count_errors, format_alignment, score, score_line, write_scoring
from asr.errors import AsrError


@pytest.mark.parametrize("ref, hyp, counts", [
    ("a b c d", "a b c d", (4, 0, 0, 0)),
    ("a b c d", "a x c d", (4, 0, 0, 1)),
    ("a b c d", "a c d", (4, 0, 1, 0)),
    ("a b c d", "a b y c d", (4, 1, 0, 0)),
    ("a b c d", "", (4, 0, 4, 0)),
    ("", "a b", (0, 2, 0, 0)),
    ("a b c d e f", "x a b d e f g", (6, 2, 1, 0)),  # insert, delete, insert
    ("a b c", "c b a", (3, 0, 0, 2)),
])
def test_counts(ref: str, hyp: str, counts: tuple[int, int, int, int]) -> None:
    pairs = align(ref.split(), hyp.split())
    c = count_errors(pairs)
    assert (c.num_ref, c.ins, c.dels, c.subs) == counts
    # The alignment covers both sequences, in order.
    assert [r for r, _ in pairs if r is not None] == ref.split()
    assert [h for _, h in pairs if h is not None] == hyp.split()


def test_distance_is_minimal_against_brute_force() -> None:
    import itertools
    import random

    def dist(a: list[str], b: list[str]) -> int:  # plain recursion, exponential but tiny inputs
        if not a or not b:
            return len(a) + len(b)
        return min(dist(a[1:], b[1:]) + (a[0] != b[0]), dist(a[1:], b) + 1, dist(a, b[1:]) + 1)

    rng = random.Random(0)
    for _ in range(200):
        a = [rng.choice("abc") for _ in range(rng.randint(0, 6))]
        b = [rng.choice("abc") for _ in range(rng.randint(0, 6))]
        assert count_errors(align(a, b)).errors == dist(a, b)
    assert all(count_errors(align(list(p), list(p))).errors == 0 for p in itertools.permutations("abcd"))


def test_score_line_format() -> None:
    c = count_errors(align("a b c d e f".split(), "x a b d e f g".split()))
    assert score_line(c) == "%WER 50.00 [ 3 / 6, 2 ins, 1 del, 0 sub ]"


def test_alignment_lines_line_up() -> None:
    text = format_alignment("u1", align("sil aa b".split(), "sil ae b ch".split()))
    ref, hyp, op, csid = text.splitlines()
    assert ref.split()[2:] == ["sil", "aa", "b", "***"]
    assert hyp.split()[2:] == ["sil", "ae", "b", "ch"]
    assert op.split()[2:] == ["C", "S", "C", "I"]
    assert csid == "u1 #csid 2 1 1 0"
    assert [ref.index("aa"), ref.index("***")] == [hyp.index("ae"), hyp.index("ch")]


def test_missing_hypothesis_counts_as_deletions(caplog: pytest.LogCaptureFixture) -> None:
    refs = {"u1": "a b".split(), "u2": "c d e".split()}
    with caplog.at_level(logging.WARNING):
        r = score(refs, {"u1": ["a", "b"], "zz": ["q"]})
    assert (r.counts.num_ref, r.counts.dels, r.counts.errors) == (5, 3, 3)
    assert (r.num_missing, r.num_extra) == (1, 1)
    assert "1 of 2 reference utterance(s) have no hypothesis" in caplog.text


def test_write_scoring_folds_to_39(tmp_path) -> None:
    # 48 -> 39: 'ao' -> 'aa', 'zh' -> 'sh', 'cl'/'vcl'/'epi' -> 'sil', 'ix' -> 'ih'.
    refs = {"s1_u1": "sil ao b zh sil".split(), "s1_u2": "ix n".split()}
    hyps = {"s1_u1": "cl aa b sh vcl epi".split(), "s1_u2": "ih".split()}
    out = tmp_path / "decode" / "test"
    res = write_scoring(out, refs, hyps)
    # u1 folded: ref sil aa b sh sil, hyp sil aa b sh sil sil -> 1 ins; u2: 1 del.
    assert res == {"per": round(200 / 7, 2), "wer": None, "n_utts": 2, "n_tokens": 7,
                   "ins": 1, "del": 1, "sub": 0, "n_missing": 0}
    assert (out / "score.txt").read_text() == "%WER 28.57 [ 2 / 7, 1 ins, 1 del, 0 sub ]\n"
    assert (out / "ref.txt").read_text() == "s1_u1 sil aa b sh sil\ns1_u2 ih n\n"
    assert (out / "hyp.txt").read_text() == "s1_u1 sil aa b sh sil sil\ns1_u2 ih\n"
    assert (out / "per_utt.txt").read_text().count("#csid") == 2
    json.dumps(res)  # goes into results.json as it is


def test_write_scoring_wer_and_bad_input(tmp_path) -> None:
    res = write_scoring(tmp_path, {"u": "the cat sat".split()}, {"u": "the hat sat on".split()}, metric="wer")
    assert (res["wer"], res["per"], res["sub"], res["ins"]) == (66.67, None, 1, 1)
    with pytest.raises(AsrError, match="utterance 'u'.*'xyz'"):
        write_scoring(tmp_path, {"u": ["aa"]}, {"u": ["xyz"]})
    with pytest.raises(AsrError, match="no reference"):
        score({}, {"u": ["a"]})


def _optimal_splits(ref: list[str], hyp: list[str]) -> set[tuple[int, int, int]]:
    """Every (ins, del, sub) that some minimum-cost alignment of ``ref`` and ``hyp`` has.

    Exhaustive over alignments by dynamic programming: cell (i, j) keeps the minimum cost
    of aligning ref[:i] with hyp[:j] and the set of splits of all alignments reaching it
    at that cost. A match adds nothing, so (ins, del, sub) and the cost determine each other.
    """
    n, m = len(ref), len(hyp)
    best: list[list[tuple[int, set]]] = [[(0, set())] * (m + 1) for _ in range(n + 1)]
    best[0][0] = (0, {(0, 0, 0)})
    for i in range(n + 1):
        for j in range(m + 1):
            if i == j == 0:
                continue
            moves = []
            if i and j:
                s = int(ref[i - 1] != hyp[j - 1])
                moves.append((best[i - 1][j - 1], (0, 0, s)))
            if i:
                moves.append((best[i - 1][j], (0, 1, 0)))
            if j:
                moves.append((best[i][j - 1], (1, 0, 0)))
            cost = min(c + sum(d) for (c, _), d in moves)
            splits = {(a + d[0], b + d[1], e + d[2]) for (c, prev), d in moves if c + sum(d) == cost
                      for a, b, e in prev}
            best[i][j] = (cost, splits)
    return best[n][m][1]


def test_score_agrees_with_kaldialign_on_random_pairs() -> None:
    import random

    import kaldialign

    rng = random.Random(1234)
    refs: dict[str, list[str]] = {}
    hyps: dict[str, list[str]] = {}
    for k in range(600):
        # Short pairs over a 3-token alphabet (many ties, empty sides included), plus some
        # long ones over a phone-sized alphabet (lengths where rapidfuzz changes algorithm).
        alphabet, top = ("abc", 7) if k < 500 else ([f"p{i}" for i in range(40)], 300)
        refs[f"u{k:03d}"] = [rng.choice(alphabet) for _ in range(rng.randint(0, top))]
        hyps[f"u{k:03d}"] = [rng.choice(alphabet) for _ in range(rng.randint(0, top))]
    refs["u_both_empty"], hyps["u_both_empty"] = [], []
    refs["u_ref_empty"], hyps["u_ref_empty"] = [], ["a", "b"]
    refs["u_hyp_empty"], hyps["u_hyp_empty"] = ["a", "b", "c"], []

    result = score(refs, hyps)
    total_errors = total_ref = 0
    n_unique = n_tied = 0
    for utt, ref in refs.items():
        hyp = hyps[utt]
        kal = kaldialign.edit_distance(ref, hyp)
        # kaldialign's own alignment agrees with its counts (guards the reading of its API).
        kal_pairs = kaldialign.align(ref, hyp, "*")
        assert sum(r != h for r, h in kal_pairs) == kal["total"]
        ours = count_errors(result.per_utt[utt])
        # The edit distance is unique, so it must always be equal.
        assert (ours.errors, ours.num_ref) == (kal["total"], kal["ref_len"]), utt
        assert [r for r, _ in result.per_utt[utt] if r is not None] == ref
        assert [h for _, h in result.per_utt[utt] if h is not None] == hyp
        total_errors += kal["total"]
        total_ref += kal["ref_len"]
        if len(ref) > 7 or len(hyp) > 7:
            continue
        # The split into ins/del/sub is not unique when several minimum-cost alignments
        # exist (a b -> b c: 2 sub, or 1 del + 1 ins). Each aligner's split must be that of
        # some optimal alignment; the two must agree when all optimal alignments share one
        # split, computed exhaustively (short pairs only).
        splits = _optimal_splits(ref, hyp)
        mine, theirs = (ours.ins, ours.dels, ours.subs), (kal["ins"], kal["del"], kal["sub"])
        assert mine in splits and theirs in splits, (ref, hyp, mine, theirs, splits)
        if len(splits) == 1:
            n_unique += 1
            assert mine == theirs, (ref, hyp)
        else:
            n_tied += 1
    assert n_unique > 200 and n_tied > 20  # both kinds of pair were exercised
    assert (result.counts.errors, result.counts.num_ref) == (total_errors, total_ref)
    assert (result.num_missing, result.num_extra) == (0, 0)


def test_special_tokens_reach_the_aligner_unchanged(tmp_path) -> None:
    # jiwer's stock transforms would strip, lower-case, expand contractions or drop Kaldi
    # non-words; none of that may happen to scoring tokens.
    ref = ["sil", "h#", "<unk>", "DON'T", "[noise]", "a.b", "ɑː", "x\ty"]
    pairs = align(ref, ref)
    assert pairs == [(t, t) for t in ref]
    assert count_errors(pairs).errors == 0
    # Case and apostrophes are significant: these are substitutions, not matches.
    pairs = align(["DON'T", "<unk>", "sil"], ["don't", "<unk>", "SIL"])
    assert pairs == [("DON'T", "don't"), ("<unk>", "<unk>"), ("sil", "SIL")]
    assert (count_errors(pairs).subs, count_errors(pairs).errors) == (2, 2)
    # "<unk>" and "[noise]" are counted like any other token, not removed.
    c = count_errors(align(["<unk>", "a", "[noise]"], ["a"]))
    assert (c.num_ref, c.dels, c.errors) == (3, 2, 2)
    # Tokens that would not survive joining on spaces (an inner space, an empty string)
    # still align as themselves.
    assert align(["a b", "", "c"], ["a b", "c"]) == [("a b", "a b"), ("", None), ("c", "c")]
    assert count_errors(align(["a b"], ["a", "b"])).errors == 2  # one token, not two
    # And end up in the written files as given.
    res = write_scoring(tmp_path, {"u": ["<unk>", "DON'T", "h#"]}, {"u": ["<unk>", "don't", "h#"]}, metric="wer")
    assert (res["sub"], res["n_tokens"]) == (1, 3)
    text = (tmp_path / "per_utt.txt").read_text()
    assert "u ref  <unk> DON'T h#" in text and "u hyp  <unk> don't h#" in text


def test_empty_reference_utterance_counts_insertions() -> None:
    r = score({"u1": [], "u2": ["a", "b"]}, {"u1": ["x", "y"], "u2": ["a", "b"]})
    assert (r.counts.num_ref, r.counts.ins, r.counts.errors) == (2, 2, 2)
    assert r.per_utt["u1"] == [(None, "x"), (None, "y")]
    assert align([], []) == []
    c = score({"u": ["a"]}, {"u": []}).counts
    assert (c.dels, c.errors, c.rate()) == (1, 1, 100.0)
    with pytest.raises(AsrError, match="no tokens"):
        score({"u": []}, {"u": ["a"]}).counts.rate()
