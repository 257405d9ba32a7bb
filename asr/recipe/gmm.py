"""The GMM-HMM stages of a recipe: training, dev alignments, graphs, fMLLR features, baselines.

Every folder is a stage of :mod:`asr.stage` (``done.json`` last, reused while its inputs
and options are unchanged)::

    exp_dir/gmm/<stage>/             mono, tri1, tri2, tri3 (:mod:`asr.hmm.pipeline`)
    exp_dir/gmm/ali_<dev>/           dev alignments of the alignment stage (hybrid dev targets)
    exp_dir/gmm/graph_<stage>/       HCLG.fst: the stage's model with the lang folder's phone bigram
    exp_dir/gmm/fmllr_<set>/         tri3 fMLLR features of dev and test sets, adapted without transcripts
    exp_dir/gmm/fmllr_<train copy>/  ... of a multi-condition copy of train, under the clean tri3 alignments
    exp_dir/gmm/decode_<stage>/      <set>/{hyp,ref,per_utt,score}.txt and results.json (PER, scale tuned on dev)
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kaldiio
import numpy as np

from asr.data.kaldi_dir import read_data_dir
from asr.data.phones import SILENCE_48
from asr.decode.fmllr_adapt import write_fmllr_set
from asr.decode.gmm_decode import GmmDecodeConfig, decode_and_score
from asr.decode.gmm_model import hmm_view
from asr.decode.results import format_results_table
from asr.errors import AsrError
from asr.features.store import FeatureStore, compute_feature_store
from asr.graph.fst_util import read_lang_lexicon
from asr.graph.hclg import GraphOptions, build_graph
from asr.graph.ngram_lm import read_symbols_by_id
from asr.graph.word_graph import WordGraphOptions, build_word_graph
from asr.hmm.align_data import align_data_dir, fmllr_from_alignments
from asr.hmm.model import GmmHmm
from asr.hmm.pipeline import STAGES as GMM_STAGES
from asr.hmm.pipeline import GmmPipelineConfig, train_gmm_pipeline
from asr.hmm.stage_transform import load_stage_transform
from asr.recipe.lang import Lang
from asr.recipe.settings import RecipeSettings
from asr.stage import StageResult, read_done, run_stage

log = logging.getLogger(__name__)

# Code versions of the stages below (asr.stage): bump one when its output changes.
ALIGN_VERSION = 2  # 2: silence frames give no fMLLR statistics (as SAT training)
GRAPH_VERSION = 1
WORD_GRAPH_VERSION = 1
FMLLR_VERSION = 2  # 2: speakers with few frames get a diagonal or offset transform
DECODE_VERSION = 2  # 2: words too


def gmm_stages(s: RecipeSettings) -> tuple[str, ...]:
    """The GMM stages to train: mono up to ``s.alignment_stage``."""
    stage = s.alignment_stage
    if s.features_kind == "fmllr" and stage != "tri3":
        raise AsrError(f"features=fmllr needs the SAT stage tri3, but task.alignment_stage is '{stage}'")
    if stage not in GMM_STAGES:
        raise AsrError(f"task.alignment_stage: '{stage}' is not one of {', '.join(GMM_STAGES)}")
    return GMM_STAGES[: GMM_STAGES.index(stage) + 1]


def decoding_config(s: RecipeSettings) -> GmmDecodeConfig:
    return s.gmm_decoding or GmmDecodeConfig()


def train_gmms(s: RecipeSettings, sets: Mapping[str, Path], stores: Mapping[str, FeatureStore]) -> dict[str, dict]:
    """Train (or reuse) the GMM-HMM stages on the training set; returns stage -> summary."""
    cfg = dataclasses.replace(s.gmm or GmmPipelineConfig(), stages=gmm_stages(s))
    results = train_gmm_pipeline(sets[s.train_set], stores[s.train_set], s.exp_dir / "gmm", cfg)
    for stage, r in results.items():
        log.info("gmm %s: %s", stage, r)
    return results


def _data_inputs(path: Path) -> list[Path]:
    """A data dir as an upstream stage, when it is one (contaminated and prepared sets are)."""
    return [path] if read_done(path) is not None else []


def align_dev(s: RecipeSettings, sets: Mapping[str, Path], stores: Mapping[str, FeatureStore]) -> StageResult:
    """Align the dev set with the alignment stage (tri3: fMLLR from a tri2 first pass)."""
    gmm_dir, stage = s.exp_dir / "gmm", s.alignment_stage
    inputs: list[Any] = [gmm_dir / stage, stores[s.dev_set].path, *_data_inputs(sets[s.dev_set])]
    if stage == "tri3":
        inputs.append(gmm_dir / "tri2")

    def build(tmp: Path) -> dict:
        r = align_data_dir(gmm_dir, stage, sets[s.dev_set], stores[s.dev_set], tmp)
        return {"frames": r.num_frames, "failed": len(r.failed),
                "log_like_per_frame": r.log_like / max(1, r.num_frames)}

    key = {"stage": stage, "fmllr_passes": 2, "silence_phones": [SILENCE_48]}
    return run_stage(gmm_dir / f"ali_{s.dev_set}", key, build, name=f"gmm/ali_{s.dev_set}",
                     version=ALIGN_VERSION, inputs=inputs)


class GmmModels:
    """The trained GMM stages of one run, with their decoding graphs; each loaded once.

    Args:
        gmm_dir: ``exp_dir/gmm``.
        lang: the run's lang folder (its phone bigram is every graph's G).
        self_loop_scale: HMM transition scale of the graphs.
    """

    def __init__(self, gmm_dir: Path, lang: Lang, self_loop_scale: float = 0.1) -> None:
        self.gmm_dir, self.lang, self.self_loop_scale = gmm_dir, lang, self_loop_scale
        self._models: dict[str, GmmHmm] = {}
        self._graphs: dict[str, tuple[StageResult, Any]] = {}

    def model(self, stage: str) -> GmmHmm:
        if stage not in self._models:
            self._models[stage] = GmmHmm.load(self.gmm_dir / stage / "final.mdl")
        return self._models[stage]

    def graph(self, stage: str) -> tuple[StageResult, Any]:
        """The stage's graph stage (built or reused) and the loaded ``HCLG.fst``."""
        if stage not in self._graphs:
            import kaldifst

            def build(tmp: Path) -> dict:
                g = build_graph(hmm_view(self.model(stage)), self.lang.phone_lm(),
                                GraphOptions(self_loop_scale=self.self_loop_scale))
                g.write(str(tmp / "HCLG.fst"))
                return {"states": g.num_states}

            r = run_stage(self.gmm_dir / f"graph_{stage}", {"self_loop_scale": self.self_loop_scale}, build,
                          name=f"gmm/graph_{stage}", version=GRAPH_VERSION,
                          inputs=[self.gmm_dir / stage, self.lang.result])
            self._graphs[stage] = (r, kaldifst.StdVectorFst.read(str(r.path / "HCLG.fst")))
        return self._graphs[stage]

    def word_graph(self, stage: str) -> StageResult:
        """The stage's word graph (``gmm/graph_words_<stage>/HCLG.fst``: H, C, the lexicon with
        optional silence, and the word n-gram), built or reused; needs a lang folder with words."""
        import kaldifst

        if not self.lang.has_words:
            raise AsrError(f"{self.lang.path}: no lexicon, so no word graph")
        opts = WordGraphOptions(self_loop_scale=self.self_loop_scale)

        def build(tmp: Path) -> dict:
            lang = self.lang.path
            g = build_word_graph(hmm_view(self.model(stage)), read_lang_lexicon(lang / "lexicon.txt"), lang / "words.txt",
                                 kaldifst.StdVectorFst.read(str(lang / "G_words.fst")), opts)
            g.write(str(tmp / "HCLG.fst"))
            return {"states": g.num_states}

        return run_stage(self.gmm_dir / f"graph_words_{stage}", dataclasses.asdict(opts), build,
                         name=f"gmm/graph_words_{stage}", version=WORD_GRAPH_VERSION,
                         inputs=[self.gmm_dir / stage, self.lang.result])


def _static(store: FeatureStore, data_dir: Path) -> dict[str, np.ndarray]:
    """utt -> [T, 13] CMVN-normalised static frames of a set; utterances without features counted."""
    utts = read_data_dir(data_dir).utts
    out = {u: np.asarray(store.load(u), dtype=np.float32) for u in utts if u in store}
    if len(out) < len(utts):
        log.warning("%s: %d of %d utterance(s) have no features; they score as all deletions",
                    data_dir, len(utts) - len(out), len(utts))
    return out


def fmllr_set(s: RecipeSettings, name: str, sets: Mapping[str, Path], stores: Mapping[str, FeatureStore],
              models: GmmModels) -> StageResult:
    """tri3 fMLLR features of a dev or test set, adapted without its transcripts
    (:mod:`asr.decode.fmllr_adapt`), under ``gmm/fmllr_<name>/``."""
    gmm_dir = s.exp_dir / "gmm"
    opts = decoding_config(s).search()
    graph3, graph2 = models.graph("tri3"), models.graph("tri2")

    def build(tmp: Path) -> dict:
        si = load_stage_transform(gmm_dir / "tri3").apply_all(_static(stores[name], sets[name]))
        utt2spk = read_data_dir(sets[name]).utt2spk
        return write_fmllr_set(models.model("tri3"), si, utt2spk, graph3[1], tmp, opts,
                               first_pass=(models.model("tri2"), graph2[1]))

    key = {"first_pass": "tri2", "search": dataclasses.asdict(opts), "silence_weight": 0.01, "passes": 2}
    return run_stage(gmm_dir / f"fmllr_{name}", key, build, name=f"gmm/fmllr_{name}", version=FMLLR_VERSION,
                     inputs=[gmm_dir / "tri3", gmm_dir / "tri2", graph3[0], graph2[0], stores[name].path,
                             *_data_inputs(sets[name])])


def fmllr_train_copy(s: RecipeSettings, name: str, sets: Mapping[str, Path], stores: Mapping[str, FeatureStore]
                     ) -> StageResult:
    """tri3 fMLLR features of a multi-condition copy of the training set, under ``gmm/fmllr_<name>/``:
    per-speaker transforms estimated on the copy with the clean set's tri3 alignments."""
    gmm_dir = s.exp_dir / "gmm"

    def build(tmp: Path) -> dict:
        return fmllr_from_alignments(gmm_dir, sets[name], stores[name], gmm_dir / "tri3", tmp)

    key = {"alignments": "tri3", "passes": 2, "silence_phones": [SILENCE_48]}
    return run_stage(gmm_dir / f"fmllr_{name}", key, build, name=f"gmm/fmllr_{name}", version=FMLLR_VERSION,
                     inputs=[gmm_dir / "tri3", stores[name].path, *_data_inputs(sets[name])])


def fmllr_feature_stores(s: RecipeSettings, sets: Mapping[str, Path], fmllr_sets: Mapping[str, StageResult],
                         train_copies: Mapping[str, StageResult] | None = None) -> dict[str, FeatureStore]:
    """The network's ``features=fmllr`` stores under ``exp_dir/features/<set>``: they wrap the
    tri3 fMLLR frames (train: SAT training's transforms; dev and test sets: ``fmllr_sets``;
    training copies: ``train_copies``) and add the configured CMVN/deltas/splicing."""
    tri3 = s.exp_dir / "gmm" / "tri3"
    scps = {s.train_set: (tri3 / "fmllr_feats.scp", tri3)}
    scps.update({name: (r.path / "feats.scp", r.path) for name, r in fmllr_sets.items()})
    scps.update({name: (r.path / "fmllr_feats.scp", r.path) for name, r in (train_copies or {}).items()})
    return {name: compute_feature_store(sets[name], s.exp_dir / "features" / name,
                                        dataclasses.replace(s.features, kind="kaldi_scp", scp=str(scp.resolve())),
                                        s.num_workers, inputs=[stage])
            for name, (scp, stage) in scps.items()}


def decode_gmm_stage(s: RecipeSettings, stage: str, sets: Mapping[str, Path], stores: Mapping[str, FeatureStore],
                     models: GmmModels, fmllr_sets: Mapping[str, StageResult], names: list[str]) -> StageResult:
    """Decode and score ``names`` (dev first) with one GMM stage, under ``gmm/decode_<stage>/``."""
    gmm_dir = s.exp_dir / "gmm"
    cfg = decoding_config(s)
    graph = models.graph(stage)
    inputs: list[Any] = [gmm_dir / stage, graph[0]]
    for n in names:
        inputs += [fmllr_sets[n]] if stage == "tri3" else [stores[n].path]
        inputs += _data_inputs(sets[n])

    def frames(n: str):
        if stage == "tri3":  # already adapted (tri2 first pass, per-speaker fMLLR)
            return lambda: {u: np.array(x, dtype=np.float32)
                            for u, x in kaldiio.load_scp(str(fmllr_sets[n].path / "feats.scp")).items()}
        transform = load_stage_transform(gmm_dir / stage)
        return lambda: transform.apply_all(_static(stores[n], sets[n]))

    words = words_of(models.lang, sets, names) if cfg.words else None
    if words is not None:
        word_graph = models.word_graph(stage)
        inputs.append(word_graph)

    def build(tmp: Path) -> dict:
        refs = {}
        for n in names:
            d = read_data_dir(sets[n])
            if not d.phones:
                raise AsrError(f"{sets[n]}: no phone transcripts (text.phn) to score against")
            refs[n] = {u: p.split() for u, p in d.phones.items()}
        fr = {n: frames(n) for n in names}
        results = decode_and_score(models.model(stage), graph[1], fr, refs, s.dev_set, cfg, tmp)
        summary = {"acoustic_scale": results["acoustic_scale"], **{n: results[n]["per"] for n in names}}
        if words is not None:
            import kaldifst

            g = kaldifst.StdVectorFst.read(str(word_graph.path / "HCLG.fst"))
            w = decode_and_score(models.model(stage), g, fr, words, s.dev_set, cfg, tmp / "words",
                                 symbols=word_symbols(models.lang.path / "words.txt"), metric="wer")
            results["words"] = {"tuning": w["tuning"], "acoustic_scale": w["acoustic_scale"]}
            for n in names:
                results[n]["wer"] = w[n]["wer"]
                results[n]["word_acoustic_scale"] = w["acoustic_scale"]
            summary["wer"] = {n: w[n]["wer"] for n in names}
        (tmp / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        return summary

    key = {"decoding": dataclasses.asdict(cfg), "sets": names, "tune_set": s.dev_set, "words": words is not None}
    return run_stage(gmm_dir / f"decode_{stage}", key, build, name=f"gmm/decode_{stage}",
                     version=DECODE_VERSION, inputs=inputs)


def word_symbols(words_txt: Path) -> list[str]:
    """Output symbols of a word graph by label - 1 (``words.txt`` ids; ``#0``, ``<s>``, ``</s>`` included)."""
    by_id = read_symbols_by_id(words_txt)
    return [by_id.get(i, f"<{i}>") for i in range(1, max(by_id) + 1)]


def words_of(lang: Lang, sets: Mapping[str, Path], names: list[str]) -> dict[str, dict[str, list[str]]] | None:
    """set -> utt -> reference words of every set, or None (no lexicon, or a set without ``text``)."""
    if not lang.has_words:
        return None
    out = {}
    for n in names:
        d = read_data_dir(sets[n])
        if not d.text:
            log.warning("%s: no word transcripts (text); no word decoding", sets[n])
            return None
        out[n] = {u: t.split() for u, t in d.text.items()}
    return out


def run_gmm_stages(s: RecipeSettings, sets: Mapping[str, Path], stores: Mapping[str, FeatureStore],
                   lang: Lang) -> dict[str, Any]:
    """Everything GMM of a recipe: train, align dev, fMLLR features (``features=fmllr``), baselines.

    Returns:
        ``{"gmm": stage -> summary, "models": the stages' :class:`GmmModels`, "fmllr_stores":
        set -> store (features=fmllr), "per": stage -> results (gmm_decode)}``.
    """
    stages = gmm_stages(s)
    out: dict[str, Any] = {"gmm": train_gmms(s, sets, stores)}
    align_dev(s, sets, stores)
    models = GmmModels(s.exp_dir / "gmm", lang, decoding_config(s).self_loop_scale)
    out["models"] = models
    names = [s.dev_set] + [t for t in s.test_sets if t != s.dev_set]
    decode_stages = stages if s.gmm_decode_stages is None else tuple(s.gmm_decode_stages)
    unknown = [st for st in decode_stages if st not in stages]
    if s.gmm_decode and unknown:
        raise AsrError(f"task.gmm_decode_stages: {', '.join(unknown)} not among the stages trained "
                       f"({', '.join(stages)})")
    fmllr_names = []
    if s.features_kind == "fmllr":
        fmllr_names = [n for n in [s.dev_set, *s.test_sets] if n != s.train_set]
    if s.gmm_decode and "tri3" in decode_stages:
        fmllr_names += [n for n in names if n not in fmllr_names]
    fmllr = {n: fmllr_set(s, n, sets, stores, models) for n in dict.fromkeys(fmllr_names)}
    if s.features_kind == "fmllr":
        copies = {n: fmllr_train_copy(s, n, sets, stores) for n in s.train_copies}
        out["fmllr_stores"] = fmllr_feature_stores(s, sets, fmllr, copies)
    if s.gmm_decode and decode_stages:
        per = {}
        for stage in decode_stages:
            r = decode_gmm_stage(s, stage, sets, stores, models, fmllr, names)
            per[stage] = json.loads((r.path / "results.json").read_text())
        log.info("GMM-HMM baselines, %% (phones on 39, words closed-vocabulary; acoustic scale tuned on %s):\n%s",
                 s.dev_set, format_results_table([(st, per[st]) for st in decode_stages], names))
        out["per"] = per
    return out
