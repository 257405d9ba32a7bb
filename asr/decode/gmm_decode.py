"""GMM-HMM phone recognition: GMM log-likelihoods through the one search of :mod:`asr.graph.search`.

:func:`decode_gmm` decodes frames already transformed for the model (the stage's
transform, and fMLLR for tri3); :func:`decode_and_score` tunes the acoustic scale on the
tuning (dev) set, decodes every other set with it, and scores them all.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.decode.gmm_model import gmm_log_likelihoods
from asr.decode.scoring import fold_to_39, score, write_scoring
from asr.decode.tuning import sweep
from asr.errors import AsrError
from asr.graph.search import SearchOptions, best_path, decode_utterances
from asr.hmm.model import GmmHmm

log = logging.getLogger(__name__)


@dataclass
class GmmDecodeConfig:
    """Options of GMM decoding.

    Attributes:
        acoustic_scales: candidates tried on the tuning (dev) set; the best is used for
            every other set.
        beam, max_active: search pruning (Kaldi ``decode.sh`` defaults).
        self_loop_scale: scale of HMM transition log-probabilities in the graph.
        words: also decode words (word graph of each stage) when the lang folder has a lexicon.
    """

    acoustic_scales: tuple[float, ...] = (0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3)
    beam: float = 13.0
    max_active: int = 7000
    self_loop_scale: float = 0.1
    words: bool = True

    def search(self, acoustic_scale: float = 0.1) -> SearchOptions:
        """Search options with these pruning settings."""
        return SearchOptions(acoustic_scale=acoustic_scale, beam=self.beam, max_active=self.max_active)


def _check_dims(model: GmmHmm, utt: str, x: np.ndarray) -> np.ndarray:
    if x.ndim != 2 or x.shape[1] != model.gmm.dim:
        raise AsrError(f"utterance '{utt}': features of shape {tuple(x.shape)}, the model "
                       f"expects [frames, {model.gmm.dim}]")
    return x


def decode_gmm(model: GmmHmm, feats: Mapping[str, np.ndarray], graph, phones: Sequence[str],
               opts: SearchOptions | None = None) -> dict[str, list[str]]:
    """Decode utterances with a GMM-HMM.

    Args:
        model: the acoustic model the graph was built for.
        feats: utt -> [T, D] frames, transformed as for training.
        graph: its decoding graph (:func:`asr.graph.hclg.build_graph`).
        phones: output symbols: label ``i + 1`` is ``phones[i]``.
        opts: search options.

    Returns:
        utt -> recognised phones (utterances without any path are left out and counted
        in a warning; scoring counts them as all deletions).
    """
    return decode_utterances(sorted(feats), lambda u: gmm_log_likelihoods(model, _check_dims(model, u, feats[u])),
                             graph, phones, opts or SearchOptions())


def decode_and_score(model: GmmHmm, graph, frames: Mapping[str, Callable[[], Mapping[str, np.ndarray]]],
                     refs: Mapping[str, Mapping[str, Sequence[str]]], tune_set: str, cfg: GmmDecodeConfig,
                     out_dir: str | os.PathLike, symbols: Sequence[str] | None = None,
                     metric: str = "per") -> dict:
    """Tune the acoustic scale on ``tune_set``, decode every set with it, score each.

    Args:
        model, graph: a stage's model and decoding graph (phones or words).
        frames: set -> a function giving utt -> [T, D] frames of that set (called once).
        refs: set -> utt -> reference phones (48-set) or words.
        tune_set: the set the scale is chosen on (the dev set; never a test set).
        cfg: candidate scales and search options.
        out_dir: receives ``<set>/`` with ``hyp.txt``, ``ref.txt``, ``per_utt.txt``, ``score.txt``.
        symbols: output symbols, label ``i`` is ``symbols[i - 1]`` (default: the model's phones).
        metric: ``per`` (39-phone folding) or ``wer``.

    Returns:
        ``{"tuning": {scale: error rate}, "acoustic_scale": best, <set>: write_scoring's dict
        plus "acoustic_scale"}``.
    """
    if tune_set not in frames:
        raise AsrError(f"GMM decoding: the tuning set '{tune_set}' is not among the sets {sorted(frames)}")
    symbols = list(model.tm.phones if symbols is None else symbols)
    tune_frames = frames[tune_set]()
    fold = fold_to_39 if metric == "per" else dict
    tune_refs = fold(refs[tune_set])
    tuned = sweep(
        {"acoustic_scale": list(cfg.acoustic_scales)}, sorted(tune_frames),
        lambda u: gmm_log_likelihoods(model, _check_dims(model, u, tune_frames[u])),
        lambda ll, p: _one_best(ll, graph, symbols, cfg.search(p["acoustic_scale"])),
        lambda hyps: score(tune_refs, fold(hyps)).counts.rate())
    scale = tuned.best["acoustic_scale"]
    results: dict = {"tuning": {str(p["acoustic_scale"]): round(e, 2) for p, e in tuned.table},
                     "acoustic_scale": scale}
    out = Path(out_dir)
    for name in frames:
        if name == tune_set:
            hyps = tuned.best_hyps
        else:
            hyps = decode_gmm(model, frames[name](), graph, symbols, cfg.search(scale))
        res = write_scoring(out / name, refs[name], hyps, metric)
        results[name] = {**res, "acoustic_scale": scale}
        log.info("%s: %s %.2f%% (acoustic scale %.3g, tuned on %s)", name, metric.upper(), res[metric], scale,
                 tune_set)
    return results


def _one_best(loglikes: np.ndarray, graph, symbols: Sequence[str], opts: SearchOptions) -> list[str] | None:
    path = best_path(loglikes, graph, opts)
    return None if path is None else [symbols[i - 1] for i in path.labels]
