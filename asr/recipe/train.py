"""The training stage: datasets, task and checkpoint description from the earlier stages, then
:func:`asr.train.loop.run_training` in ``exp_dir`` (history, checkpoints, ``best.pt``, ``tb/``).

Hybrid targets are the alignments of ``task.alignment_stage`` (tri3: ``gmm/tri3/ali.scp`` for
train, ``gmm/ali_<dev>/ali.scp`` for dev), or with ``task.targets`` the realignments of an
earlier hybrid network (:mod:`asr.recipe.realign`); CTC targets are the phone transcripts
(``text.phn``) as ids of the lang folder's ``tokens.txt``, or with BPE units the words'
pieces (:mod:`asr.graph.bpe`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asr.data.kaldi_dir import read_data_dir
from asr.errors import AsrError
from asr.features.loader import ConcatFeatureDataset, FeatureDataset
from asr.features.store import FeatureStore
from asr.graph.bpe import MODEL_FILE as BPE_MODEL_FILE
from asr.graph.bpe import BpeUnits
from asr.graph.ngram_lm import read_symbol_table
from asr.hmm.model import GmmHmm
from asr.recipe.features import gmm_feature_config
from asr.recipe.lang import Lang
from asr.recipe.realign import realign_set, source_checkpoint
from asr.recipe.settings import RecipeSettings
from asr.stage import read_done
from asr.train.loop import TrainResult, run_training
from asr.train.optim import OptimConfig
from asr.train.tasks import CtcTask, HybridTask, tokens_of

log = logging.getLogger(__name__)


def read_token_table(path: Path) -> list[str]:
    """``tokens.txt`` (``symbol id`` per line, ids 0..N-1) as a list of symbols by id."""
    by_id = {i: sym for sym, i in read_symbol_table(path).items()}
    if sorted(by_id) != list(range(len(by_id))):
        raise AsrError(f"{path}: token ids are not 0..{len(by_id) - 1}")
    return [by_id[i] for i in range(len(by_id))]


def pdf_phones(model: GmmHmm) -> list[int]:
    """[num_pdfs] the phone (index into ``model.tm.phones``) that owns each pdf."""
    owner: dict[int, int] = {}
    for phone in range(len(model.tm.phones)):
        for pdf in model.pdf_map.phone_pdfs(model.tm, phone).tolist():
            if owner.setdefault(int(pdf), phone) != phone:
                raise AsrError(f"pdf {pdf} is shared by phones {model.tm.phones[owner[pdf]]} and "
                               f"{model.tm.phones[phone]}; the monophone head needs one phone per pdf")
    if sorted(owner) != list(range(len(owner))):
        raise AsrError("the GMM model has pdfs that no phone reaches")
    return [owner[i] for i in range(len(owner))]


def log_priors(counts_path: Path, num_pdfs: int, floor: float) -> torch.Tensor:
    """[num_pdfs] log prior of each pdf from the training alignments' counts; a pdf seen
    less than ``floor`` of the time (never, say) gets ``floor``, so it is not -inf."""
    counts = np.asarray(counts_path.read_text().split(), dtype=np.float64)
    if len(counts) != num_pdfs:
        raise AsrError(f"{counts_path}: {len(counts)} counts for {num_pdfs} pdfs")
    priors = np.maximum(counts / max(counts.sum(), 1.0), floor)
    unseen = int((counts == 0).sum())
    if unseen:
        log.warning("priors: %d of %d pdfs never occur in the training alignments; floored at %g",
                    unseen, num_pdfs, floor)
    return torch.from_numpy(np.log(priors / priors.sum())).to(torch.float32)


def _features_meta(s: RecipeSettings, store: FeatureStore) -> dict[str, Any]:
    meta: dict[str, Any] = {"kind": s.features_kind, "options": dataclasses.asdict(store.cfg),
                            "dim": store.dim, "train_store": str(store.path.resolve())}
    if s.features_kind == "fmllr":
        gmm_dir = (s.exp_dir / "gmm").resolve()
        meta.update(gmm_dir=str(gmm_dir), gmm_stage="tri3", gmm_stage_id=(read_done(gmm_dir / "tri3") or {}).get("id"),
                    gmm_front_end=dataclasses.asdict(gmm_feature_config(s.seed)))
    return meta


def _hybrid(s: RecipeSettings, sets: Mapping[str, Path], stores: Mapping[str, FeatureStore]
            ) -> tuple[HybridTask, FeatureDataset, FeatureDataset, dict]:
    gmm_dir = s.exp_dir / "gmm"
    stage_dir = gmm_dir / s.alignment_stage
    model = GmmHmm.load(stage_dir / "final.mdl")
    task = HybridTask(pdf_phones(model), list(model.tm.phones), s.mono_weight)
    ali = {s.train_set: stage_dir, s.dev_set: gmm_dir / f"ali_{s.dev_set}"}
    targets: dict[str, Any] = {"targets": s.alignment_stage}
    if s.targets is not None:  # realignments by an earlier hybrid network (same GMM stage's tree)
        source = source_checkpoint(s.targets)
        ali = {n: realign_set(s, n, sets[n], stores[n], source).path for n in (s.train_set, s.dev_set)}
        targets = {"targets": "realign", "source": str(source.resolve())}
    train = _with_copies(s, stores, FeatureDataset(stores[s.train_set], alignments=ali[s.train_set] / "ali.scp"),
                         lambda name: FeatureDataset(stores[name], alignments=ali[s.train_set] / "ali.scp"))
    dev = FeatureDataset(stores[s.dev_set], alignments=ali[s.dev_set] / "ali.scp")
    priors = log_priors(ali[s.train_set] / "pdf_counts.txt", task.num_pdfs, s.prior_floor)
    meta = {"priors": priors, "alignments": {"stage": s.alignment_stage, "dir": str(stage_dir.resolve()),
                                             "id": (read_done(stage_dir) or {}).get("id"),
                                             "train": str(ali[s.train_set].resolve()), **targets}}
    return task, train, dev, meta


def _ctc(s: RecipeSettings, sets: Mapping[str, Path], stores: Mapping[str, FeatureStore],
         lang: Lang) -> tuple[CtcTask, FeatureDataset, FeatureDataset, dict]:
    tokens = read_token_table(lang.path / "tokens.txt")
    if lang.units == "bpe":
        return _ctc_bpe(s, sets, stores, lang, tokens)
    ids = {t: i for i, t in enumerate(tokens)}

    def dataset(name: str) -> FeatureDataset:
        d = read_data_dir(sets[name])
        if not d.phones:
            raise AsrError(f"{sets[name]}: no phone transcripts (text.phn) for CTC targets")
        return FeatureDataset(stores[name], tokens=tokens_of({u: p.split() for u, p in d.phones.items()}, ids))

    train = _with_copies(s, stores, dataset(s.train_set), dataset)
    return CtcTask(tokens), train, dataset(s.dev_set), {}


def _ctc_bpe(s: RecipeSettings, sets: Mapping[str, Path], stores: Mapping[str, FeatureStore], lang: Lang,
             tokens: list[str]) -> tuple[CtcTask, FeatureDataset, FeatureDataset, dict]:
    """Word-level CTC: targets are the words' BPE pieces; the model's bytes go in the checkpoint."""
    units = BpeUnits(lang.path / BPE_MODEL_FILE)
    if units.tokens() != tokens:
        raise AsrError(f"{lang.path}: tokens.txt does not match {BPE_MODEL_FILE}")

    def dataset(name: str) -> FeatureDataset:
        d = read_data_dir(sets[name])
        if not d.text:
            raise AsrError(f"{sets[name]}: no word transcripts (text) for CTC targets")
        targets, unknown = {}, 0
        for utt, words in d.text.items():
            targets[utt], n = units.encode(words.split())
            unknown += n
        if unknown:
            log.warning("%s: %d character(s) without a BPE unit left out of the CTC targets", name, unknown)
        return FeatureDataset(stores[name], tokens=targets)

    train = _with_copies(s, stores, dataset(s.train_set), dataset)
    return CtcTask(tokens, units="bpe"), train, dataset(s.dev_set), {"bpe_model": units.model_bytes}


def _with_copies(s: RecipeSettings, stores: Mapping[str, FeatureStore], clean: FeatureDataset,
                 make: Callable[[str], FeatureDataset]) -> FeatureDataset | ConcatFeatureDataset:
    """The training set, with its multi-condition copies after it (same targets: contamination
    keeps the timing, so the clean alignments and transcripts apply)."""
    if not s.train_copies:
        return clean
    for name in s.train_copies:
        if name not in stores:
            raise AsrError(f"no features of the training copy '{name}'")
    parts = [(s.train_set, clean)] + [(name, make(name)) for name in s.train_copies]
    log.info("training data: %s", ", ".join(f"{n} ({len(d)} utterances)" for n, d in parts))
    return ConcatFeatureDataset(parts)


def train_network(s: RecipeSettings, sets: Mapping[str, Path], stores: Mapping[str, FeatureStore],
                  lang: Lang) -> TrainResult:
    """Train (or resume, or reuse when finished) the acoustic model of ``s`` in ``exp_dir``."""
    if s.model is None:
        raise AsrError("no model configured (model=...)")
    for name in (s.train_set, s.dev_set):
        if name not in stores:
            raise AsrError(f"no features of set '{name}' for training")
    if s.task == "hybrid":
        task, train, dev, extra = _hybrid(s, sets, stores)
    elif s.task == "ctc":
        task, train, dev, extra = _ctc(s, sets, stores, lang)
    else:
        raise AsrError(f"task.name: '{s.task}' is not hybrid or ctc")
    store = stores[s.train_set]
    meta = {"recipe": s.recipe_name, "features": _features_meta(s, store),
            "tokens": task.describe().get("tokens") or list(task.phones),
            "lang": {"path": str(lang.path.resolve()), "id": lang.result.id},
            "train_set": s.train_set, "train_copies": s.train_copies, "dev_set": s.dev_set, "optim": (s.optim or OptimConfig()).to_dict(),
            "config": s.config, **extra}
    result = run_training(s.model, store.dim, task, s.optim or OptimConfig(), train, dev, s.exp_dir, meta,
                          s.trainer)
    log.info("training: best epoch %d of %d, dev %s %.2f %% (%s)", result.best, result.epochs,
             "frame error" if s.task == "hybrid" else "greedy WER" if lang.units == "bpe" else "greedy PER",
             result.best_dev_err, result.best_path)
    return result
