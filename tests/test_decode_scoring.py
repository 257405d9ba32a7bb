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
