"""The decoding stage: a checkpoint's network on dev and every test set, scored, with the GMM rows.

``decode_dir`` (the exp_dir, or ``asr-decode``'s ``out=``) receives::

    decode/<set>/{hyp,ref,per_utt,score}.txt   phones, PER on 39 phones
    decode/<set>/words/...                     words, WER (when the corpus has a lexicon)
    decode/done.json                           the stage's fingerprint (reused while unchanged)
    results.json                               the run's summary (asr.decode.results)

Graphs: a hybrid network decodes through its GMM stage's graphs (``gmm/graph_<stage>``
phones, ``gmm/graph_words_<stage>`` words), a CTC network through ``graph_ctc/`` (the CTC
topology with the phone bigram, and with the lexicon and word n-gram).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from asr.data.kaldi_dir import read_data_dir
from asr.decode.network import Network, load_network
from asr.decode.nn_decode import DecodeSet, Graphs, NetworkDecodeConfig, decode_network
from asr.decode.results import WORDS_AND_GREEDY, format_results_table, history_summary, write_results
from asr.errors import AsrError
from asr.features.store import FeatureStore
from asr.graph.fst_util import read_lang_lexicon
from asr.graph.ngram_lm import read_symbol_table, read_symbols_by_id
from asr.recipe.gmm import GmmModels
from asr.recipe.lang import Lang
from asr.recipe.settings import RecipeSettings
from asr.stage import StageResult, read_done, run_stage
from asr.train.checkpoint import load_checkpoint

log = logging.getLogger(__name__)

DECODE_VERSION = 1
CTC_GRAPH_VERSION = 1


def ctc_graphs(s: RecipeSettings, lang: Lang) -> StageResult:
    """``graph_ctc/``: ``phones.fst`` (T o G_phones) and, with a lexicon, ``words.fst`` (T o L o G);
    with BPE units only ``words.fst``, L spelling each word in pieces (no optional silence)."""
    import kaldifst

    from asr.graph.ctc_graph import build_ctc_phone_graph, build_ctc_word_graph

    bpe = lang.units == "bpe"

    def build(tmp: Path) -> dict:
        tokens = read_symbol_table(lang.path / "tokens.txt")
        out: dict = {}
        if not bpe:
            g = build_ctc_phone_graph(len(tokens), kaldifst.StdVectorFst.read(str(lang.path / "G_phones.fst")))
            g.write(str(tmp / "phones.fst"))
            out["phone_states"] = g.num_states
        if lang.has_words:
            unit_ids = {t: i for t, i in tokens.items() if i > 0}  # token id = phone (or piece) id; blank 0
            w = build_ctc_word_graph(len(tokens), read_lang_lexicon(lang.path / "lexicon.txt"), unit_ids,
                                     lang.path / "words.txt", kaldifst.StdVectorFst.read(str(lang.path / "G_words.fst")),
                                     silence_phone=None if bpe else "sil")
            w.write(str(tmp / "words.fst"))
            out["word_states"] = w.num_states
        return out

    key = {"words": lang.has_words, **({"units": "bpe"} if bpe else {})}
    return run_stage(s.exp_dir / "graph_ctc", key, build, name="graph_ctc",
                     version=CTC_GRAPH_VERSION, inputs=[lang.result])


def network_graphs(s: RecipeSettings, net: Network, lang: Lang, models: GmmModels | None,
                   words: bool) -> tuple[Graphs, list[StageResult]]:
    """The graphs ``net`` decodes with, and their stages (inputs of the decoding stage)."""
    if net.kind == "hybrid":
        stage = net.checkpoint.get("alignments", {}).get("stage", s.alignment_stage)
        if models is None:
            raise AsrError("hybrid decoding needs the GMM stages (their tree and graphs)")
        phone_stage = models.graph(stage)[0]
        stages = [phone_stage]
        graphs = Graphs(phone_stage.path / "HCLG.fst", list(models.model(stage).tm.phones))
        if words:
            w = models.word_graph(stage)
            stages.append(w)
            graphs.words, graphs.word_symbols = w.path / "HCLG.fst", read_symbols_by_id(lang.path / "words.txt")
        return graphs, stages
    r = ctc_graphs(s, lang)
    units = net.task.units
    if units != lang.units:
        raise AsrError(f"the network's CTC units are {units}, the lang folder's {lang.units} ({lang.path})")
    graphs = Graphs(r.path / "phones.fst" if units == "phones" else None, list(net.task.tokens[1:]))
    if words and (r.path / "words.fst").is_file():
        graphs.words, graphs.word_symbols = r.path / "words.fst", read_symbols_by_id(lang.path / "words.txt")
    return graphs, [r]


def _decode_sets(names: list[str], sets: Mapping[str, Path], stores: Mapping[str, FeatureStore],
                 words: bool, phones: bool = True) -> dict[str, DecodeSet]:
    out = {}
    for n in names:
        if n not in stores:
            raise AsrError(f"no features of set '{n}' to decode")
        d = read_data_dir(sets[n])
        if phones and not d.phones:
            raise AsrError(f"{sets[n]}: no phone transcripts (text.phn) to score against")
        if not phones and not d.text:
            raise AsrError(f"{sets[n]}: no word transcripts (text) to score against")
        store = stores[n]
        missing = [u for u in d.utts if u not in store]
        if missing:
            log.warning("%s: %d of %d utterance(s) have no features (e.g. %s); scored as all deletions",
                        n, len(missing), len(d.utts), missing[0])
        out[n] = DecodeSet(lambda store=store: ((u, store.load(u)) for u in store.utts),
                           {u: p.split() for u, p in d.phones.items()} if phones else None,
                           {u: t.split() for u, t in d.text.items()} if (words or not phones) and d.text else None)
    return out


def checkpoint_key(path: Path, ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """What identifies a checkpoint file for reuse: its path, size, mtime and epoch."""
    st = path.stat()
    return {"checkpoint": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "epoch": int(ckpt.get("epoch", 0))}


def decode_checkpoint(s: RecipeSettings, checkpoint: Path, sets: Mapping[str, Path],
                      stores: Mapping[str, FeatureStore], lang: Lang, models: GmmModels | None,
                      gmm_results: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Decode dev and every test set with ``checkpoint``; write ``decode/`` and ``results.json``.

    Returns:
        the ``results.json`` dict.
    """
    ckpt = load_checkpoint(checkpoint)
    net = load_network(ckpt, str(checkpoint))
    cfg = s.decoding or NetworkDecodeConfig()
    words = cfg.words and lang.has_words
    graphs, graph_stages = network_graphs(s, net, lang, models, words)
    words = words and graphs.words is not None
    names = [s.dev_set, *[t for t in s.test_sets if t != s.dev_set]]
    out_dir = s.decode_dir or s.exp_dir
    inputs: list[Any] = [*graph_stages, *[stores[n].path for n in names if n in stores],
                         *[sets[n] for n in names if read_done(sets[n]) is not None]]
    key = {**checkpoint_key(checkpoint, ckpt), "decoding": dataclasses.asdict(cfg), "sets": names,
           "tune_set": s.dev_set, "words": words}
    key["decoding"].pop("progress")
    key["grid"] = {level: [dataclasses.astuple(p) for p in cfg.grid(net.kind, level)] for level in ("phones", "words")}

    def build(tmp: Path) -> dict:
        res = decode_network(net, graphs, _decode_sets(names, sets, stores, words, graphs.phones is not None),
                             s.dev_set, cfg, tmp)
        (tmp / "results.json").write_text(json.dumps(res, indent=1) + "\n")
        return {n: {"per": r["per"], "wer": r["wer"]} for n, r in res["test_sets"].items()}

    r = run_stage(out_dir / "decode", key, build, name="decode", version=DECODE_VERSION, inputs=inputs,
                  cacheable=False)
    nn = json.loads((r.path / "results.json").read_text())
    results = summarise(s, ckpt, net, nn, gmm_results or {}, checkpoint)
    write_results(out_dir / "results.json", results)
    rows = [(stage, {n: res.get(n, {}) for n in names}) for stage, res in (gmm_results or {}).items()]
    rows.append((results["model"], nn["test_sets"]))
    if results["metric"] == "wer":  # BPE units: words, from the word graph and greedy
        log.info("results (%%, tuned on %s; WER with the word n-gram, closed vocabulary, and greedy):\n%s",
                 s.dev_set, format_results_table(rows, names, WORDS_AND_GREEDY))
    else:
        log.info("results (%%, tuned on %s; phones on 39, words closed-vocabulary):\n%s", s.dev_set,
                 format_results_table(rows, names))
    return results


def summarise(s: RecipeSettings, ckpt: Mapping[str, Any], net: Network, nn: Mapping[str, Any],
              gmm_results: Mapping[str, Any], checkpoint: Path) -> dict[str, Any]:
    """The ``results.json`` of a run (INTERFACES.md), with the tuned values and the GMM rows."""
    spec = ckpt["model_spec"]
    exp = checkpoint.parent if checkpoint.parent.name != "checkpoints" else checkpoint.parent.parent
    rows = {n: {k: v for k, v in r.items() if not k.startswith("search_seconds")} for n, r in nn["test_sets"].items()}
    test_sets = {n: r for n, r in rows.items() if n != s.dev_set}
    return {
        "recipe": ckpt.get("recipe", s.recipe_name), "task": net.kind, "cell": spec.get("cell"),
        "features": ckpt.get("features", {}).get("kind"), "params": ckpt.get("params"),
        **history_summary(exp / "history.jsonl"), "checkpoint": str(checkpoint.resolve()),
        "checkpoint_epoch": ckpt.get("epoch"),
        "metric": "wer" if net.task.units == "bpe" else "per",
        "model": f"{spec.get('cell')} {net.kind}",
        "targets": ckpt.get("alignments", {}).get("targets") if net.kind == "hybrid" else None,
        "tuned_on": nn["tuned_on"], "decoding": nn["decoding"],
        "dev": rows.get(s.dev_set), "test_sets": test_sets,
        "gmm": {stage: {n: {"per": r.get("per"), "wer": r.get("wer")} for n, r in res.items()
                        if isinstance(r, dict) and "per" in r}
                for stage, res in gmm_results.items()},
    }
