"""The one reuse rule across a whole recipe run on tiny mini-TIMIT (data -> features -> lang -> GMM).

Every stage folder holds a ``done.json``; a changed option rebuilds exactly the stages
that depend on it; a deleted stage is rebuilt with everything downstream of it and
nothing upstream; the lang folder and each graph are built once per run.
"""

from __future__ import annotations

import dataclasses
import os
import json
import logging
import shutil
from pathlib import Path

import pytest

from asr.decode.gmm_decode import GmmDecodeConfig
from asr.features.config import FeatureConfig
from asr.recipe.run import run_recipe
from asr.recipe.settings import RecipeSettings
from asr.stage import DONE

from test_hmm_pipeline import _small_config  # the tiny corpus' GMM sizes


def _built(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Names of the stages built (not reused) since the last ``caplog.clear()``."""
    return [r.args[0] for r in caplog.records
            if r.name == "asr.stage" and r.msg.startswith("%s: built")]


def _stage_dirs(exp: Path) -> dict[str, Path]:
    """name -> folder of every finished stage under ``exp``, from their done.json."""
    out = {}
    for done in exp.rglob(DONE):
        info = json.loads(done.read_text())
        out[info["stage"]] = done.parent
    return out


def _downstream(exp: Path, root: str) -> set[str]:
    """``root`` and every stage that reads it, directly or through others."""
    infos = {json.loads(d.read_text())["stage"]: json.loads(d.read_text()) for d in exp.rglob(DONE)}
    paths = {name: str(_stage_dirs(exp)[name]) for name in infos}
    found, frontier = {root}, [root]
    while frontier:
        p = paths[frontier.pop()]
        for name, info in infos.items():
            if name not in found and p in info["inputs"]:
                found.add(name)
                frontier.append(name)
    return found


def test_every_stage_is_reused_rebuilt_or_cascaded_by_one_rule(
        mini_timit_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    exp = tmp_path / "exp"
    s = RecipeSettings(corpus_root=mini_timit_root, exp_dir=exp, data_dir=exp / "data",
                       features=FeatureConfig(kind="fbank", num_mel_bins=23), features_kind="fbank",
                       test_sets=["test", "test_white_snr10"], gmm_decode=True, stop_stage="align",
                       gmm=_small_config(),
                       gmm_decoding=GmmDecodeConfig(acoustic_scales=(0.1, 0.2), beam=10.0, max_active=1000))
    caplog.set_level(logging.INFO)
    assert run_recipe(s) == "align"
    first = _built(caplog)
    stages = _stage_dirs(exp)
    expected = {"data/train", "data/dev", "data/test", "data/test_white_snr10", "lang",
                *(f"features/{n}" for n in ("train", "dev", "test", "test_white_snr10")),
                *(f"gmm/{st}" for st in ("mono", "tri1", "tri2", "tri3")),
                *(f"gmm/graph_{st}" for st in ("mono", "tri1", "tri2", "tri3")),
                *(f"gmm/decode_{st}" for st in ("mono", "tri1", "tri2", "tri3")),
                "gmm/ali_dev", "gmm/fmllr_dev", "gmm/fmllr_test", "gmm/fmllr_test_white_snr10"}
    assert expected <= set(stages), sorted(expected - set(stages))
    # The GMM front end's stores are stages too (a second set of feature folders).
    assert {f"features_gmm/{n}" for n in ("train", "dev", "test", "test_white_snr10")} <= set(stages)
    # Every stage built exactly once: the lang folder and each graph included.
    assert sorted(first) == sorted(set(first)) and len(first) == len(stages)
    # Every folder of the experiment is a finished stage.
    folders = [exp / "lang", *(p for group in ("data", "features", "features_gmm", "gmm")
                               for p in (exp / group).iterdir() if p.is_dir())]
    assert len(folders) == len(stages)
    for folder in folders:
        assert (folder / DONE).is_file(), folder
    assert not [p for p in exp.rglob(".*tmp-*")], "temp folders left behind"

    # Unchanged inputs: nothing is built.
    caplog.clear()
    run_recipe(s)
    assert _built(caplog) == []

    # A decoding option: only the decodes.
    caplog.clear()
    run_recipe(dataclasses.replace(s, gmm_decoding=dataclasses.replace(s.gmm_decoding, acoustic_scales=(0.08, 0.1))))
    assert sorted(_built(caplog)) == sorted(f"gmm/decode_{st}" for st in ("mono", "tri1", "tri2", "tri3"))

    # A feature option of the network's front end: only its stores (the GMMs have their own).
    caplog.clear()
    s2 = dataclasses.replace(s, features=dataclasses.replace(s.features, num_mel_bins=24),
                             gmm_decoding=dataclasses.replace(s.gmm_decoding, acoustic_scales=(0.08, 0.1)))
    run_recipe(s2)
    assert sorted(_built(caplog)) == sorted(f"features/{n}" for n in ("train", "dev", "test", "test_white_snr10"))

    # A deleted stage: it and everything downstream of it, nothing upstream. The expected
    # sets are written out (not derived from the done.json inputs, which could share a bug).
    fmllr = {f"gmm/fmllr_{n}" for n in ("dev", "test", "test_white_snr10")}
    decodes = {f"gmm/decode_{st}" for st in ("mono", "tri1", "tri2", "tri3")}
    cases = {
        "gmm/tri2": {"gmm/tri2", "gmm/tri3", "gmm/ali_dev", "gmm/graph_tri2", "gmm/graph_tri3", *fmllr,
                     "gmm/graph_words_tri2", "gmm/graph_words_tri3", "gmm/decode_tri2", "gmm/decode_tri3"},
        "data/test_white_snr10": {"data/test_white_snr10", "features/test_white_snr10",
                                  "features_gmm/test_white_snr10", "gmm/fmllr_test_white_snr10", *decodes},
        # Identical features again: the GMMs depend on their content, so they are kept.
        "features_gmm/train": {"features_gmm/train"},
    }
    for victim, want in cases.items():
        assert _downstream(exp, victim) == want, victim
        shutil.rmtree(_stage_dirs(exp)[victim])
        caplog.clear()
        run_recipe(s2)
        assert sorted(_built(caplog)) == sorted(want), victim
    assert not [p for p in exp.rglob(".*tmp-*")] and not [p for p in exp.rglob(".*.old-*")]


def test_runs_sharing_a_stage_cache_build_only_what_differs(
        mini_timit_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache"

    def settings(exp: Path, bins: int) -> RecipeSettings:
        return RecipeSettings(corpus_root=mini_timit_root, exp_dir=exp, data_dir=exp / "data",
                              features=FeatureConfig(cmvn="speaker_mean", num_mel_bins=bins), features_kind="fmllr",
                              test_sets=["test", "test_white_snr10"], gmm_decode=True, stop_stage="align",
                              gmm=_small_config(), cache_dir=cache,
                              gmm_decoding=GmmDecodeConfig(acoustic_scales=(0.1,), beam=10.0, max_active=1000))

    caplog.set_level(logging.INFO)
    run_recipe(settings(tmp_path / "a", 23))
    built_a = _built(caplog)
    caplog.clear()
    # features=fmllr: the network's features are the GMMs' (num_mel_bins is not used), so a
    # second experiment with other network options finds every stage in the cache.
    b = tmp_path / "b"
    run_recipe(settings(b, 24))
    assert _built(caplog) == [] and len(built_a) > 20
    for stage in ("gmm/tri3", "gmm/fmllr_test", "data/test_white_snr10", "features/dev", "lang"):
        link = b / stage
        assert link.is_symlink() and Path(os.readlink(link)).parent == cache, stage
    # The files inside name the cache, not the experiment that built them: b survives a's removal.
    shutil.rmtree(tmp_path / "a")
    scp = (b / "gmm" / "fmllr_test" / "feats.scp").read_text()
    assert str(cache) in scp and str(tmp_path / "a") not in scp
    from asr.features.store import FeatureStore

    store = FeatureStore(b / "features" / "test")
    assert store.load(store.utts[0]).shape[1] == 40
    caplog.clear()
    run_recipe(settings(b, 24))
    assert _built(caplog) == []
    # A changed GMM option gives new cache entries for the GMMs and what follows them only.
    caplog.clear()
    s2 = settings(b, 24)
    run_recipe(dataclasses.replace(s2, gmm=dataclasses.replace(s2.gmm, mllt_iters=(1, 2))))
    built = set(_built(caplog))
    assert "gmm/tri2" in built and "gmm/tri1" not in built and "lang" not in built
    assert not any(n.startswith(("data/", "features_gmm/")) for n in built), built
