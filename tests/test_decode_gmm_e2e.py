"""End to end on tiny mini-TIMIT: train a monophone GMM-HMM, decode test with a phone bigram."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from asr.data.kaldi_dir import read_data_dir
from asr.data.phones import TIMIT48
from asr.decode.gmm_decode import GmmDecodeConfig, decode_and_score, decode_gmm
from asr.decode.gmm_model import hmm_view
from asr.decode.scoring import write_scoring
from asr.features.config import FeatureConfig
from asr.features.store import compute_feature_store
from asr.graph.hclg import build_graph
from asr.graph.phone_lm import BigramLm, estimate_bigram
from asr.graph.search import SearchOptions
from asr.hmm.gmm_update import GmmUpdateOptions
from asr.hmm.model import GmmHmm
from asr.hmm.pipeline import GmmPipelineConfig, train_gmm_pipeline
from asr.hmm.stage_transform import load_stage_transform
from asr.hmm.trainer import GmmTrainOptions


def _flat_lm(phones: list[str]) -> BigramLm:
    """A phone loop without LM: every phone (and the end) equally likely after anything."""
    lp = -math.log10(len(phones) + 1)
    return BigramLm(list(phones), {w: lp for w in [*phones, "</s>"]}, {h: 0.0 for h in [*phones, "<s>"]}, {})


@pytest.mark.slow
def test_mono_decoding_beats_a_phone_loop(mini_timit_dirs: dict[str, Path], tmp_path: Path) -> None:
    cfg = FeatureConfig(kind="mfcc", dither=0.0, cmvn="speaker_mean", deltas=0)
    data, static = {}, {}
    for split in ("train", "dev", "test"):
        store = compute_feature_store(mini_timit_dirs[split], tmp_path / "feats" / split, cfg,
                                      num_workers=1, progress=False)
        data[split] = read_data_dir(mini_timit_dirs[split])
        static[split] = {u: store.load(u) for u in data[split].utts}
    mono = GmmTrainOptions(total_gauss=200, update=GmmUpdateOptions(min_gaussian_occupancy=3))
    train_gmm_pipeline(mini_timit_dirs["train"], static["train"], tmp_path / "exp",
                       GmmPipelineConfig(stages=("mono",), mono=mono))
    stage_dir = tmp_path / "exp" / "mono"
    model = GmmHmm.load(stage_dir / "final.mdl")
    transform = load_stage_transform(stage_dir)
    lm = estimate_bigram([p.split() for p in data["train"].phones.values()], TIMIT48)
    graph = build_graph(hmm_view(model), lm)
    refs = {s: {u: p.split() for u, p in data[s].phones.items()} for s in ("dev", "test")}
    out = tmp_path / "gmm_decode"
    # The acoustic scale is tuned on dev only, then used for test.
    res = decode_and_score(model, graph, {s: (lambda s=s: transform.apply_all(static[s])) for s in ("dev", "test")},
                           refs, "dev", GmmDecodeConfig(acoustic_scales=(0.05, 0.1, 0.2)), out)
    test = res["test"]
    assert test["n_missing"] == 0 and test["n_utts"] == len(data["test"].phones)
    assert min(res["tuning"].values()) == res["dev"]["per"]
    assert (out / "test/per_utt.txt").is_file()
    assert (out / "test/score.txt").read_text().startswith(f"%WER {test['per']:.2f} [")

    loop = build_graph(hmm_view(model), _flat_lm(TIMIT48))
    opts = SearchOptions(acoustic_scale=test["acoustic_scale"])
    base = write_scoring(tmp_path / "decode" / "test_loop", refs["test"],
                         decode_gmm(model, transform.apply_all(static["test"]), loop, model.tm.phones, opts))
    print(f"mono PER on tiny test: {test['per']} (dev by scale {res['tuning']}); "
          f"phone loop without LM {base['per']}")
    assert test["per"] < 50.0
    # Measured on tiny (10 x 6 sentences): 29.75 with the bigram, 34.5 with the phone loop.
    assert test["per"] < base["per"] - 3.0
