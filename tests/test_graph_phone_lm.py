"""Phone bigram LM: normalisation, ARPA round trip, and the G FST built from it."""

from __future__ import annotations

import math
from pathlib import Path

import kaldifst
import numpy as np
import pytest

from asr.data.kaldi_dir import read_data_dir
from asr.data.phones import TIMIT48
from asr.graph.phone_lm import BOS, EOS, estimate_bigram, make_g_fst, read_arpa, write_arpa
from asr.errors import AsrError

TOY = [["a", "b", "a"], ["b", "c"], ["a", "b", "c", "c"]]


def _path_cost(g, labels: list[int]) -> float:
    """Cost of the best path of G that accepts ``labels`` (inf if none)."""
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


def _check_normalised(lm) -> None:
    m = np.exp(lm.log_prob_matrix())  # [V+1 histories, V+1 next]
    np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-5)


def test_toy_bigram_normalises_and_round_trips(tmp_path: Path) -> None:
    lm = estimate_bigram(TOY, ["a", "b", "c", "d"])
    _check_normalised(lm)
    # Witten-Bell by hand: history 'c' seen 3 times ('c', '</s>' x2), 2 distinct followers;
    # p_uni(</s>) = (3 + 1) / (12 + 5).
    assert lm.log_prob(EOS, "c") == pytest.approx(math.log((2 + 2 * 4 / 17) / (3 + 2)))
    assert lm.log_prob("d", "c") == pytest.approx(math.log(2 / 5 * 1 / 17))
    assert lm.log_prob("a", "d") == pytest.approx(math.log((3 + 1) / 17))  # unseen history
    write_arpa(lm, tmp_path / "lm.arpa")
    back = read_arpa(tmp_path / "lm.arpa")
    _check_normalised(back)
    np.testing.assert_allclose(back.log_prob_matrix(), lm.log_prob_matrix(), atol=1e-6)


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(AsrError, match="transcript 1 has phone 'zz'"):
        estimate_bigram([["a"], ["zz"]], ["a"])
    (tmp_path / "bad.arpa").write_text("\\data\\\nngram 1=1\n\n\\1-grams:\nnot-a-number a\n")
    with pytest.raises(AsrError, match="bad.arpa:5: malformed"):
        read_arpa(tmp_path / "bad.arpa")


def test_g_accepts_every_training_transcript(mini_timit_dirs: dict[str, Path], tmp_path: Path) -> None:
    d = read_data_dir(mini_timit_dirs["train"])
    transcripts = {u: p.split() for u, p in d.phones.items()}
    lm = estimate_bigram(transcripts.values(), TIMIT48)
    _check_normalised(lm)
    write_arpa(lm, tmp_path / "lm.arpa")
    g = make_g_fst(tmp_path / "lm.arpa", TIMIT48, tmp_path)
    assert (tmp_path / "G.fst").is_file() and "#0" in (tmp_path / "words.txt").read_text()
    ids = {p: i + 1 for i, p in enumerate(TIMIT48)}
    for u, tr in transcripts.items():
        # Seen bigrams: the direct arc is cheaper than backing off, so the best path's cost
        # is exactly -log P(transcript).
        cost = _path_cost(g, [ids[p] for p in tr])
        assert cost == pytest.approx(-lm.sentence_log_prob(tr), rel=1e-4), u
    # A phone never seen after another is still accepted (through the back-off arc).
    assert math.isfinite(_path_cost(g, [ids["zh"], ids["zh"], ids["zh"]]))
    assert BOS not in lm.phones
