"""Network decoding on hand-made posteriors: the grid search, retries and empty hypotheses,
worker processes, and tuning on dev applied unchanged to the test set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from asr.decode.grid import GridPoint, decode_grid
from asr.decode.network import Network, scores
from asr.decode.nn_decode import DecodeSet, Graphs, NetworkDecodeConfig, decode_network
from asr.graph.ctc_graph import build_ctc_phone_graph
from asr.graph.phone_lm import estimate_bigram, make_g_fst, write_arpa
from asr.graph.search import SearchOptions
from asr.train.tasks import CtcTask

PHONES = ["aa", "b", "sil"]  # TIMIT-48 labels, so that PER folding applies
TOKENS = ["<blk>", *PHONES]


class _Identity(torch.nn.Module):
    """A stand-in network whose logits are its input frames (the posteriors are designed)."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.input_size = classes

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"ctc": x}


def _net() -> Network:
    bias = np.zeros(len(TOKENS), dtype=np.float32)
    bias[0] = 1.0
    return Network(_Identity(len(TOKENS)), CtcTask(TOKENS), "ctc", bias, {})


def _frames(tokens: list[int], rng: np.random.Generator, sharp: float = 6.0) -> np.ndarray:
    """Logits whose frame-wise best path spells ``tokens`` (token ids; 0 the blank)."""
    x = rng.normal(0, 0.3, (len(tokens), len(TOKENS))).astype(np.float32)
    x[np.arange(len(tokens)), tokens] += sharp
    return x


def _phone_graph(tmp: Path) -> Path:
    lm = estimate_bigram([["aa", "b"], ["b", "aa", "sil"], ["aa"]], PHONES)
    write_arpa(lm, tmp / "lm.arpa")
    g = build_ctc_phone_graph(len(TOKENS), make_g_fst(tmp / "lm.arpa", PHONES, tmp / "g"))
    g.write(str(tmp / "phones.fst"))
    return tmp / "phones.fst"


def _two_label_graph(tmp: Path) -> Path:
    """Accepts exactly input labels 2 then 3 (one frame each), outputs 1 then 2."""
    import kaldifst

    g = kaldifst.StdVectorFst()
    for _ in range(3):
        g.add_state()
    g.start = 0
    g.add_arc(0, kaldifst.StdArc(2, 1, 0.0, 1))
    g.add_arc(1, kaldifst.StdArc(3, 2, 0.0, 2))
    g.set_final(2, 0.0)
    g.write(str(tmp / "two.fst"))
    return tmp / "two.fst"


def test_grid_decodes_every_point_and_counts_utterances_without_a_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    graph = _two_label_graph(tmp_path)
    post = {u: torch.log_softmax(torch.from_numpy(_frames(t, rng)), -1).numpy()
            for u, t in (("ok", [1, 2]), ("short", [1]), ("long", [1, 2, 2]))}
    points = [GridPoint(0.0, 1.0), GridPoint(0.0, 0.5, 1.5)]
    res = decode_grid(graph, post, _net().bias, points, SearchOptions(beam=10.0, scale_beam=False))
    for i in range(2):
        assert res.hyps[i]["ok"] == [1, 2]
        assert res.hyps[i]["short"] == [1]  # no final state after one frame: the best partial path
        assert res.not_final[i] == 1
        assert res.hyps[i]["long"] == []  # no arc for the third frame: every token dies; empty, counted, kept
        assert res.failed[i] == 1 and res.retried[i] == 1
    assert res.frames == 6


def test_worker_processes_give_the_same_hypotheses(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    graph = _phone_graph(tmp_path)
    seqs = [[1, 0, 2, 2, 0, 2, 3], [3, 3, 1], [2, 0, 0, 1, 1, 0, 3, 3], [0, 0, 0]]
    post = {f"u{i}": torch.log_softmax(torch.from_numpy(_frames(s, rng, sharp=2.0)), -1).numpy()
            for i, s in enumerate(seqs)}
    points = [GridPoint(b, a, p) for b in (0.0, 2.0) for a in (0.5, 2.0) for p in (0.0, 1.0)]
    opts = SearchOptions(beam=12.0, scale_beam=False)
    one = decode_grid(graph, post, _net().bias, points, opts, num_workers=1)
    two = decode_grid(graph, post, _net().bias, points, opts, num_workers=2)
    assert one.hyps == two.hyps and one.failed == two.failed
    assert one.hyps[2]["u0"] == [1, 2, 2, 3]  # acoustic scale 2: blank between the repeats keeps both
    # A blank penalty makes blanks dearer: never fewer tokens than without it.
    for u in post:
        assert len(one.hyps[4][u]) >= len(one.hyps[0][u])


def test_scores_subtract_the_scaled_bias() -> None:
    lp = np.log(np.full((2, 4), 0.25, dtype=np.float32))
    bias = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)
    np.testing.assert_allclose(scores(lp, bias, 2.0)[:, 0], lp[:, 0] - 2.0)
    np.testing.assert_allclose(scores(lp, bias, 2.0)[:, 1:], lp[:, 1:])


def _set(utts: dict[str, list[int]], refs: dict[str, list[str]], rng: np.random.Generator) -> DecodeSet:
    feats = {u: _frames(s, rng, sharp=1.5) for u, s in utts.items()}
    return DecodeSet(lambda: iter(feats.items()), refs)


@pytest.mark.parametrize("workers", [1])
def test_values_are_tuned_on_dev_and_applied_unchanged_to_test(tmp_path: Path, workers: int) -> None:
    rng = np.random.default_rng(2)
    graph = _phone_graph(tmp_path)
    ids = {p: i + 1 for i, p in enumerate(PHONES)}
    seqs = {"d1": "aa b sil", "d2": "b aa", "d3": "sil aa b b", "t1": "aa aa b", "t2": "b sil aa"}

    def frames_of(phones: str) -> list[int]:
        out = [0]
        for p in phones.split():
            out += [ids[p], ids[p], 0]
        return out

    dev = _set({u: frames_of(s) for u, s in seqs.items() if u[0] == "d"},
               {u: s.split() for u, s in seqs.items() if u[0] == "d"}, rng)
    test = _set({u: frames_of(s) for u, s in seqs.items() if u[0] == "t"},
                {u: s.split() for u, s in seqs.items() if u[0] == "t"}, rng)
    cfg = NetworkDecodeConfig(acoustic_scales=(0.3, 1.0, 3.0), blank_penalties=(0.0, 1.0), phone_penalties=(0.0, 2.0),
                              num_workers=workers)
    net = _net()
    out = tmp_path / "decode"
    res = decode_network(net, Graphs(graph, PHONES), {"test": test, "dev": dev}, "dev", cfg, out)
    tuned = res["decoding"]["phones"]
    grid = tuned["grid"]
    assert len(grid) == 12 and res["tuned_on"] == "dev"
    best_dev = min(g["error_rate"] for g in grid)
    assert res["test_sets"]["dev"]["per"] == pytest.approx(best_dev, abs=0.01)
    first_best = next(g for g in grid if g["error_rate"] == best_dev)  # ties: the first listed
    assert all(tuned[k] == first_best[k] for k in ("blank_penalty", "acoustic_scale", "insertion_penalty"))
    # The test set is decoded at exactly the dev values.
    point = GridPoint(tuned["blank_penalty"], tuned["acoustic_scale"], tuned["insertion_penalty"])
    post = {u: torch.log_softmax(torch.from_numpy(x), -1).numpy() for u, x in test.feats()}
    again = decode_grid(graph, post, net.bias, [point], cfg.search())
    hyp = {line.split()[0]: line.split()[1:] for line in (out / "test" / "hyp.txt").read_text().splitlines()}
    assert hyp == {u: [PHONES[i - 1] for i in labels] for u, labels in again.hyps[0].items()}
    for name in ("dev", "test"):
        assert (out / name / "score.txt").read_text().startswith("%WER ")
        assert "greedy_per" in res["test_sets"][name]
    json.dumps(res)  # plain values only
