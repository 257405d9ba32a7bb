"""Decoding and scoring a network's sets: tune on dev, apply unchanged to every test set.

Phones go through the phone graph (hybrid: the tri3 tree with the phone bigram; CTC: the
CTC topology with the phone bigram) and, when the lang folder has a lexicon, words
through the word graph (HCLG, or the CTC topology with L and G). Each level is tuned on
the tuning set alone over a bounded grid (:class:`NetworkDecodeConfig`): the prior scale
(hybrid) or blank penalty (CTC), the acoustic scale and the insertion penalty. Because
the acoustic scale and the LM weight are one degree of freedom in a 1-best search, only
the acoustic scale is swept. The winning values are applied to every other set.

Per set, ``out_dir/<set>/`` receives the phone scoring files (``hyp.txt``, ``ref.txt``,
``per_utt.txt``, ``score.txt``, PER on 39 phones) and ``out_dir/<set>/words/`` the word
scoring files (WER).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asr.decode.grid import GridDecoder, GridPoint, log_failures
from asr.decode.network import Network, greedy_tokens, log_posteriors
from asr.decode.scoring import fold_to_39, score, write_scoring
from asr.errors import AsrError
from asr.graph.bpe import pieces_to_words
from asr.graph.search import SearchOptions

log = logging.getLogger(__name__)

HYBRID_ACOUSTIC_SCALES = (0.05, 0.1, 0.2, 0.3, 0.5, 0.8)
CTC_ACOUSTIC_SCALES = (0.5, 1.0, 1.5, 2.0, 3.0)


@dataclass
class NetworkDecodeConfig:
    """Decoding values tried on the tuning (dev) set, and search options.

    Attributes:
        acoustic_scales: candidates (None: the task's default, hybrid
            :data:`HYBRID_ACOUSTIC_SCALES`, CTC :data:`CTC_ACOUSTIC_SCALES`).
        prior_scales: hybrid: scales of the log-priors subtracted from the log-posteriors.
        blank_penalties: CTC: subtracted from the blank's log-probability (nats).
        phone_penalties: phone insertion penalties (graph cost per phone).
        word_penalties: word insertion penalties (graph cost per word).
        beam: search beam in cost units (not widened with the acoustic scale).
        max_active: most tokens kept per frame.
        batch_size: utterances per network forward pass.
        num_workers: search worker processes.
        device: torch device of the forward pass.
        words: decode words too when the lang folder has a lexicon.
        progress: progress bars.
    """

    acoustic_scales: tuple[float, ...] | None = None
    prior_scales: tuple[float, ...] = (0.5, 1.0)
    blank_penalties: tuple[float, ...] = (0.0, 1.0, 2.0)
    phone_penalties: tuple[float, ...] = (0.0, 1.0)
    word_penalties: tuple[float, ...] = (0.0, 2.0)
    beam: float = 13.0
    max_active: int = 7000
    batch_size: int = 8
    num_workers: int = 2
    device: str = "cpu"
    words: bool = True
    progress: bool = False

    def search(self) -> SearchOptions:
        return SearchOptions(beam=self.beam, max_active=self.max_active, scale_beam=False)

    def grid(self, kind: str, level: str) -> list[GridPoint]:
        """Every combination for ``kind`` (hybrid, ctc) and ``level`` (phones, words)."""
        scales = self.acoustic_scales or (HYBRID_ACOUSTIC_SCALES if kind == "hybrid" else CTC_ACOUSTIC_SCALES)
        bias = self.prior_scales if kind == "hybrid" else self.blank_penalties
        penalties = self.phone_penalties if level == "phones" else self.word_penalties
        for name, values in (("acoustic_scales", scales), ("bias", bias), ("penalties", penalties)):
            if not values:
                raise AsrError(f"decode: the grid of {name} is empty")
        return [GridPoint(float(b), float(a), float(p)) for b in bias for a in scales for p in penalties]


@dataclass
class DecodeSet:
    """One set to decode.

    Attributes:
        feats: gives (utt, [T, F] network features) pairs (called once).
        phones: utt -> reference phones (48- or 39-set), or None (no phone scoring: BPE units).
        words: utt -> reference words, or None (no word scoring).
    """

    feats: Callable[[], Iterable[tuple[str, np.ndarray]]]
    phones: Mapping[str, Sequence[str]] | None
    words: Mapping[str, Sequence[str]] | None = None


@dataclass
class Graphs:
    """The decoding graphs of a network.

    Attributes:
        phones: phone graph path (its output label i is ``phone_symbols[i - 1]``), or None
            (a CTC network over BPE units has words only).
        phone_symbols: phones by output label - 1.
        words: word graph path, or None.
        word_symbols: output label -> word (words.txt).
    """

    phones: Path | None
    phone_symbols: Sequence[str]
    words: Path | None = None
    word_symbols: Mapping[int, str] | None = None


def _bias_name(kind: str) -> str:
    return "prior_scale" if kind == "hybrid" else "blank_penalty"


def _tokens(hyps: Mapping[str, list[int]], symbols: Callable[[int], str]) -> dict[str, list[str]]:
    return {u: [symbols(i) for i in labels] for u, labels in hyps.items()}


def _rate(refs: Mapping[str, Sequence[str]], hyps: Mapping[str, Sequence[str]], level: str) -> float:
    if level == "phones":
        return score(fold_to_39(refs), fold_to_39(hyps)).counts.rate()
    return score(refs, hyps).counts.rate()


class _Level:
    """Phones or words: the graph, its symbols and the refs of each set."""

    def __init__(self, name: str, graph: Path, symbol: Callable[[int], str]) -> None:
        self.name, self.graph, self.symbol = name, graph, symbol

    def refs(self, d: DecodeSet) -> Mapping[str, Sequence[str]] | None:
        return d.phones if self.name == "phones" else d.words


def decode_network(net: Network, graphs: Graphs, sets: Mapping[str, DecodeSet], tune_set: str,
                   cfg: NetworkDecodeConfig, out_dir: str | os.PathLike) -> dict[str, Any]:
    """Tune on ``tune_set``, decode every set, score and write each.

    Returns:
        ``{"tuned_on": tune_set, "decoding": {level: {values, "grid": [...]}},
        "test_sets": {set: {"per", "wer", "n_utts", "n_tokens", "n_words", ...}}}``
        (CTC sets also get ``greedy_per``, or ``greedy_wer`` with BPE units).
    """
    if tune_set not in sets:
        raise AsrError(f"decode: the tuning set '{tune_set}' is not among the sets {sorted(sets)}")
    out = Path(out_dir)
    levels = [_Level("phones", graphs.phones, lambda i: graphs.phone_symbols[i - 1])] if graphs.phones else []
    if cfg.words and graphs.words is not None and graphs.word_symbols is not None:
        table = graphs.word_symbols
        levels.append(_Level("words", graphs.words, lambda i: table[i]))
    opts = cfg.search()
    results: dict[str, Any] = {"tuned_on": tune_set, "decoding": {}, "test_sets": {}}
    best: dict[str, GridPoint] = {}
    order = [tune_set, *[n for n in sets if n != tune_set]]
    with contextlib.ExitStack() as stack:  # one set of search workers per graph, for all the sets
        decoders = {lv.name: stack.enter_context(GridDecoder(lv.graph, net.bias, opts, cfg.num_workers, cfg.progress))
                    for lv in levels}
        for name in order:
            results["test_sets"][name] = _decode_set(net, sets[name], name, name == tune_set, levels, decoders,
                                                     best, results["decoding"], cfg, out)
    return results


def _decode_set(net: Network, d: DecodeSet, name: str, tuning: bool, levels: list[_Level],
                decoders: Mapping[str, GridDecoder], best: dict[str, GridPoint], decoding: dict[str, Any],
                cfg: NetworkDecodeConfig, out: Path) -> dict[str, Any]:
    """Decode and score one set at every level; on the tuning set, choose the values first
    (into ``best`` and ``decoding``). Returns the set's ``results.json`` entry."""
    kind, bias_name = net.kind, _bias_name(net.kind)
    post = dict(log_posteriors(net, d.feats(), cfg.batch_size, cfg.device))
    entry: dict[str, Any] = {"per": None, "wer": None}
    for level in levels:
        refs = level.refs(d)
        if refs is None or (not tuning and level.name not in best):  # no refs here, or none on dev
            continue
        points = cfg.grid(kind, level.name) if tuning else [best[level.name]]
        res = decoders[level.name].decode(post, points, desc=f"{name} {level.name}")
        hyps = [_tokens(h, level.symbol) for h in res.hyps]
        i = 0
        if tuning:
            rates = [_rate(refs, h, level.name) for h in hyps]
            i = min(range(len(points)), key=lambda k: rates[k])
            best[level.name] = points[i]
            decoding[level.name] = {
                **points[i].as_dict(bias_name),
                "grid": [{**p.as_dict(bias_name), "error_rate": round(r, 2)} for p, r in zip(points, rates)]}
            log.info("%s: %s tuned on %s: %s (error rate %.2f%%)", kind, level.name, name,
                     ", ".join(f"{k} {v:g}" for k, v in points[i].as_dict(bias_name).items()), rates[i])
        log_failures(res, i, len(post), f"{name} {level.name}")
        metric = "per" if level.name == "phones" else "wer"
        where = out / name if level.name == "phones" else out / name / "words"
        scored = write_scoring(where, refs, hyps[i], metric)
        if level.name == "phones":
            entry.update(n_utts=scored["n_utts"], n_tokens=scored["n_tokens"],
                         n_missing=scored["n_missing"], failed=res.failed[i])
        else:
            entry.update(n_words=scored["n_tokens"], word_failed=res.failed[i])
            entry.setdefault("n_utts", scored["n_utts"])  # words only (BPE units): no phone level
        entry[metric] = scored[metric]
        if res.frames:  # CPU seconds of one search of one frame (all grid points were searched)
            entry[f"search_seconds_per_frame_{level.name}"] = res.search_seconds / res.frames / len(points)
    if net.task.units == "bpe":
        if d.words is not None:  # the pieces of the frame-wise best path, as words
            greedy = {u: pieces_to_words(p) for u, p in _greedy(net, post).items()}
            entry["greedy_wer"] = round(_rate(d.words, greedy, "words"), 2)
            if entry["wer"] is None:  # no word graph: the greedy words are the result
                entry.update(wer=entry["greedy_wer"], n_utts=len(d.words), n_words=sum(map(len, d.words.values())))
                write_scoring(out / name / "words", d.words, greedy, "wer")
    elif kind == "ctc" and d.phones is not None:
        entry["greedy_per"] = round(_rate(d.phones, _greedy(net, post), "phones"), 2)
    log.info("%s: PER %s, WER %s", name, _fmt(entry["per"]), _fmt(entry["wer"]))
    return entry


def _greedy(net: Network, post: Mapping[str, np.ndarray]) -> dict[str, list[str]]:
    """Best-path CTC of every utterance (:func:`asr.decode.network.greedy_tokens`)."""
    return {utt: greedy_tokens(lp, net.task.tokens) for utt, lp in post.items()}


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}%"
