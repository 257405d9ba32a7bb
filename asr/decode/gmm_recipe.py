"""GMM-HMM phone recognition of test sets: LM, graphs, dev tuning, decoding, scoring.

What Kaldi's TIMIT ``run.sh`` does after each GMM stage (``mkgraph.sh``, ``decode.sh``,
``score.sh``), for the stages written by :func:`asr.hmm.pipeline.train_gmm_pipeline`:

    out_dir/lang/phone_bigram.arpa, words.txt, G.fst     bigram over the training transcripts
    out_dir/<stage>/HCLG.fst                             decoding graph
    out_dir/<stage>/decode/<set>/                        hyp.txt, ref.txt, per_utt.txt, score.txt
    out_dir/gmm_results.json                             what :func:`decode_gmm_stages` returns

The acoustic scale is chosen on the tuning set (dev) only and then used for every set.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asr.data.kaldi_dir import read_data_dir
from asr.decode.gmm_decode import DecodeOptions, GmmDecodeConfig
from asr.decode.gmm_model import hmm_view
from asr.decode.gmm_stage import decode_stage, prepare_features, tune_on_features
from asr.graph.hclg import GraphOptions, build_graph, write_graph
from asr.graph.phone_lm import BigramLm, estimate_bigram, make_g_fst, write_arpa
from asr.decode.scoring import write_scoring
from asr.errors import AsrError
from asr.hmm.model import GmmHmm

log = logging.getLogger(__name__)


def _static(feats: Any, utts: list[str]) -> dict[str, np.ndarray]:
    """utt -> [T, 13] from a FeatureStore (``.load``) or a mapping; utts without features skipped."""
    getter = feats.load if hasattr(feats, "load") else feats.__getitem__
    out = {u: np.asarray(getter(u), dtype=np.float32) for u in utts if u in feats}
    if len(out) < len(utts):
        log.warning("%d of %d utterance(s) have no features; they score as all deletions",
                    len(utts) - len(out), len(utts))
    return out


def train_phone_bigram(train_dir: str | os.PathLike, phones: list[str], lang_dir: str | os.PathLike) -> BigramLm:
    """The phone bigram of a data dir's ``text.phn``; also written as ARPA and ``G.fst``."""
    train = read_data_dir(train_dir)
    if not train.phones:
        raise AsrError(f"{train_dir}: no phone transcripts (text.phn) to train the phone LM on")
    lm = estimate_bigram([p.split() for p in train.phones.values()], phones)
    lang = Path(lang_dir)
    lang.mkdir(parents=True, exist_ok=True)
    write_arpa(lm, lang / "phone_bigram.arpa")
    make_g_fst(lang / "phone_bigram.arpa", phones, lang)
    return lm


def stage_graph(model: GmmHmm, lm: BigramLm, out_dir: str | os.PathLike, self_loop_scale: float = 0.1):
    """Build a stage's decoding graph and write it as ``out_dir/HCLG.fst``."""
    graph = build_graph(hmm_view(model), lm, GraphOptions(self_loop_scale=self_loop_scale))
    write_graph(graph, out_dir)
    return graph


def decode_gmm_stages(pipeline_dir: str | os.PathLike, stages: tuple[str, ...], train_dir: str | os.PathLike,
                      sets: Mapping[str, tuple[str | os.PathLike, Any]], out_dir: str | os.PathLike,
                      cfg: GmmDecodeConfig | None = None) -> dict[str, dict[str, dict]]:
    """Decode and score every set with every stage.

    Args:
        pipeline_dir: ``out_dir`` of :func:`train_gmm_pipeline` (``<stage>/final.mdl``).
        stages: stages to decode, e.g. ``("mono", "tri1", "tri2", "tri3")``.
        train_dir: data dir whose ``text.phn`` trains the phone bigram.
        sets: name -> (data dir with ``text.phn``, static features: a FeatureStore read
            with the training CMVN or a mapping utt -> [T, 13]). Must include ``cfg.tune_set``.
        out_dir: outputs (see the module docstring).
        cfg: options.

    Returns:
        stage -> set -> :func:`write_scoring`'s dict plus ``acoustic_scale``; each stage
        also has ``"tuning": {scale: PER}`` (on the tuning set).
    """
    cfg = cfg or GmmDecodeConfig()
    if cfg.tune_set not in sets:
        raise AsrError(f"GMM decoding: the tuning set '{cfg.tune_set}' is not among the sets {sorted(sets)}")
    out = Path(out_dir)
    train = read_data_dir(train_dir)
    if not train.phones:
        raise AsrError(f"{train_dir}: no phone transcripts (text.phn) to train the phone LM on")
    loaded = {}
    for name, (data_dir, feats) in sets.items():
        d = read_data_dir(data_dir)
        if not d.phones:
            raise AsrError(f"{data_dir}: no phone transcripts (text.phn) to score against")
        loaded[name] = (d, _static(feats, sorted(d.phones)), {u: p.split() for u, p in d.phones.items()})
    results: dict[str, dict[str, dict]] = {}
    graphs: dict[str, tuple[GmmHmm, Any]] = {}
    lm = None
    for stage in stages:
        stage_dir = Path(pipeline_dir) / stage
        model = GmmHmm.load(stage_dir / "final.mdl")
        if lm is None:  # the phone set comes from the model
            lm = train_phone_bigram(train_dir, model.tm.phones, out / "lang")
        graph = stage_graph(model, lm, out / stage, cfg.self_loop_scale)
        graphs[stage] = (model, graph)
        first_pass = None
        if stage == "tri3":  # tri2 decodes tri3's first pass (see adapt_fmllr)
            first_pass = graphs.get("tri2") or _load_with_graph(Path(pipeline_dir) / "tri2", lm, cfg)
        opts = DecodeOptions(beam=cfg.beam, max_active=cfg.max_active)
        d, static, refs = loaded[cfg.tune_set]
        feats = prepare_features(stage, stage_dir, static, d.utt2spk, graph, model, first_pass=first_pass)
        scale, table, tune_hyps = tune_on_features(stage, model, feats, refs, graph, cfg.acoustic_scales, opts)
        opts.acoustic_scale = scale
        results[stage] = {"tuning": {str(s): round(p, 2) for s, p in table.items()}}
        for name, (d, static, refs) in loaded.items():
            if name == cfg.tune_set:
                hyps = tune_hyps  # already decoded at this scale
            else:
                hyps = decode_stage(stage, stage_dir, static, d.utt2spk, graph, opts, model, first_pass=first_pass)
            res = write_scoring(out / stage / "decode" / name, refs, hyps)
            results[stage][name] = {**res, "acoustic_scale": scale}
            log.info("%s on %s: PER %.2f%% (acoustic scale %.3g, tuned on %s)", stage, name, res["per"],
                     scale, cfg.tune_set)
    (out / "gmm_results.json").write_text(json.dumps(results, indent=1))
    return results


def _load_with_graph(stage_dir: Path, lm: BigramLm, cfg: GmmDecodeConfig) -> tuple[GmmHmm, Any]:
    """A stage's model and its decoding graph (not written)."""
    model = GmmHmm.load(stage_dir / "final.mdl")
    return model, build_graph(hmm_view(model), lm, GraphOptions(self_loop_scale=cfg.self_loop_scale))


def format_per_table(results: Mapping[str, Mapping[str, Any]], stages: tuple[str, ...] | list[str],
                     sets: list[str]) -> str:
    """A Markdown table of PER (%) per stage (rows) and set (columns) from :func:`decode_gmm_stages`.

    >>> print(format_per_table({"mono": {"dev": {"per": 20.5, "acoustic_scale": 0.1}}}, ["mono"], ["dev"]))
    | stage | acoustic scale | dev |
    |---|---|---|
    | mono | 0.1 | 20.50 |
    """
    lines = ["| stage | acoustic scale | " + " | ".join(sets) + " |", "|---" * (len(sets) + 2) + "|"]
    for stage in stages:
        row = results[stage]
        scale = row[sets[0]]["acoustic_scale"]
        lines.append(f"| {stage} | {scale:g} | " + " | ".join(f"{row[n]['per']:.2f}" for n in sets) + " |")
    return "\n".join(lines)
