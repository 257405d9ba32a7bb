"""A recipe's stages in order: data -> features -> lang -> GMM alignments -> training -> decoding.

Experiment folder (each folder a stage of :mod:`asr.stage`, reused while its inputs and
options are unchanged; see :mod:`asr.recipe.gmm` for ``gmm/``)::

    exp_dir/data/<set>/            Kaldi data dirs (clean sets from the corpus, contaminated copies)
    exp_dir/features/<set>/        the network's features (fbank, mfcc, a wrapped scp, or fMLLR)
    exp_dir/features_gmm/<set>/    the GMM front end (13 MFCCs) for the GMM-HMM stages
    exp_dir/lang/                  symbol tables, lexicon, phone bigram and word n-gram (asr.graph.lang)
    exp_dir/gmm/...                GMM-HMM stages, dev alignments, graphs, fMLLR features, baselines
    exp_dir/history.jsonl, checkpoints/, best.pt, tb/   the network (:mod:`asr.recipe.train`)
    exp_dir/decode/, results.json  decoding and scoring of dev and every test set (:mod:`asr.recipe.decode`)

With ``cache_dir`` set, these folders are links into it (``<stage>-<fingerprint>/``), so runs
that differ only in the network share them; the network's files are the run's own.
"""

from __future__ import annotations

import logging
import os

import torch

from asr.errors import AsrError
from asr.recipe.data import prepare_data_sets
from asr.recipe.decode import decode_checkpoint
from asr.recipe.features import compute_feature_stores, compute_gmm_feature_stores, needs_gmm
from asr.recipe.gmm import run_gmm_stages
from asr.recipe.lang import build_lang
from asr.recipe.train import train_network
from asr.recipe.settings import STAGES, RecipeSettings
from asr.stage import stage_cache
from asr.train.distributed import rank_zero_first

log = logging.getLogger(__name__)


def run_recipe(s: RecipeSettings) -> str:
    """Run the stages up to ``s.stop_stage``; returns the last stage completed.

    Raises:
        AsrError: a stage failed, or a stage that is not built yet was asked for.
    """
    if s.stop_stage is not None and s.stop_stage not in STAGES:
        raise AsrError(f"stop_stage: '{s.stop_stage}' is not one of {', '.join(STAGES)}")
    if s.task == "hybrid" and s.features.subsample > 1:
        raise AsrError(f"features.subsample={s.features.subsample}: hybrid targets are one pdf per 10 ms frame; "
                       "subsampling is for CTC (task=ctc)")
    with stage_cache(s.cache_dir):  # every stage so far is independent of the network
        return _run(s, s.stop_stage or STAGES[-1])


def _run(s: RecipeSettings, last: str) -> str:
    # Under torchrun, rank 0 builds the stages before training and the others then reuse them.
    on_gpu = (s.trainer is None or s.trainer.device != "cpu") and torch.cuda.is_available()
    with rank_zero_first(device_type="cuda" if on_gpu else "cpu"):
        done, st = before_training(s, last)
    if done is not None:
        return done
    result = train_network(s, *st[:3])
    if last == "train":
        return "train"
    if int(os.environ.get("RANK", "0")) == 0:  # one process decodes
        decode_checkpoint(s, result.best_path, *st)
    return "decode"


def before_training(s: RecipeSettings, last: str = "align") -> tuple[str | None, tuple]:
    """The stages up to alignments: (the last one run if that is where to stop, else None;
    (sets, network feature stores, lang, GMM models, GMM results))."""
    sets = prepare_data_sets(s)
    if last == "data":
        return "data", (sets, {}, None, None, None)
    stores = compute_feature_stores(s, sets) if s.features_kind != "fmllr" else {}
    gmm_stores = compute_gmm_feature_stores(s, sets) if needs_gmm(s) else {}
    if last == "features":
        return "features", (sets, stores, None, None, None)
    lang = build_lang(s, sets)
    gmm: dict = {}
    if needs_gmm(s):
        gmm = run_gmm_stages(s, sets, gmm_stores, lang)
        stores.update(gmm.get("fmllr_stores", {}))
    elif s.gmm_decode:
        log.warning("task.gmm_decode: no GMM stages run for task=%s with features=%s; no GMM baselines",
                    s.task, s.features_kind)
    st = (sets, stores, lang, gmm.get("models"), gmm.get("per"))
    return ("align" if last == "align" else None), st
