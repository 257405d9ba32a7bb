"""Decoding a set of score matrices at one or more grid points, in worker processes.

A grid point is (``bias_scale``, ``acoustic_scale``, ``penalty``): the matrix searched is
``logpost - bias_scale * bias`` (:func:`asr.decode.network.scores`: prior scale for hybrid
models, blank penalty for CTC), the search scales it by ``acoustic_scale``, and the graph
charges ``penalty`` per output label (phone or word insertion penalty, added to the
graph by :func:`asr.graph.fst_util.with_output_penalty`, once per value per worker).

Each utterance's posteriors are sent to a worker once and decoded there at every point,
so tuning on dev costs one pass over the set per grid point of search only. A search
that loses every token is retried with twice the beam; if that fails too the utterance
gets an empty hypothesis (scored as all deletions) and is counted in ``failed``.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from asr.graph.search import SearchOptions, best_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GridPoint:
    """One setting of the decoding values.

    Attributes:
        bias_scale: prior scale (hybrid) or blank penalty (CTC), see :mod:`asr.decode.network`.
        acoustic_scale: scale of the scores relative to graph costs.
        penalty: cost per output label (insertion penalty), in graph cost units.
    """

    bias_scale: float
    acoustic_scale: float
    penalty: float = 0.0

    def as_dict(self, bias_name: str) -> dict[str, float]:
        return {bias_name: self.bias_scale, "acoustic_scale": self.acoustic_scale,
                "insertion_penalty": self.penalty}


@dataclass
class GridResult:
    """Hypotheses of every point.

    Attributes:
        hyps: per point (in the order given), utt -> output labels (graph output ids).
        retried: per point, utterances that needed the wider beam.
        failed: per point, utterances without any path (empty hypotheses).
        not_final: per point, utterances whose best path reached no final state.
        search_seconds: CPU seconds spent in the search (all workers, all points together).
        frames: frames decoded (each utterance once).
    """

    hyps: list[dict[str, list[int]]]
    retried: list[int]
    failed: list[int]
    not_final: list[int]
    search_seconds: float = 0.0
    frames: int = 0


def scores(logpost: np.ndarray, bias: np.ndarray, scale: float) -> np.ndarray:
    """Search scores ``logpost - scale * bias``: [T, C] float32 (prior scale times log-priors
    for hybrid models, blank penalty times the blank's indicator for CTC)."""
    return np.ascontiguousarray(logpost - np.float32(scale) * bias, dtype=np.float32)


# Worker state: the graph read once, its penalised copies made on first use. Workers import
# no torch (this module needs numpy and the graph libraries only), so they start fast.
_WORKER: dict = {}


def _init(graph_path: str, bias: np.ndarray, opts: SearchOptions) -> None:
    import kaldifst

    _WORKER.clear()
    _WORKER.update(base=kaldifst.StdVectorFst.read(graph_path), graphs={}, bias=bias, opts=opts)


def _graph(penalty: float):
    graphs = _WORKER["graphs"]
    if penalty not in graphs:
        if penalty == 0.0:
            graphs[penalty] = _WORKER["base"]
        else:
            from asr.graph.fst_util import with_output_penalty

            graphs[penalty] = with_output_penalty(_WORKER["base"], penalty)
    return graphs[penalty]


def _decode_one(item: tuple[str, np.ndarray, Sequence[GridPoint]]):
    import time

    utt, logpost, points = item
    t0 = time.process_time()
    out = []
    cached: dict[float, np.ndarray] = {}
    for p in points:
        if p.bias_scale not in cached:
            cached[p.bias_scale] = scores(logpost, _WORKER["bias"], p.bias_scale)
        opts = replace(_WORKER["opts"], acoustic_scale=p.acoustic_scale)
        graph = _graph(p.penalty)
        path = best_path(cached[p.bias_scale], graph, opts)
        retried = path is None
        if retried:
            path = best_path(cached[p.bias_scale], graph, replace(opts, beam=2 * opts.beam,
                                                                  max_active=2 * opts.max_active))
        if path is None:
            out.append((None, True, False))
        else:
            out.append((list(path.labels), retried, path.reached_final))
    return utt, out, time.process_time() - t0


class GridDecoder:
    """Decodes sets of posteriors at grid points through one graph, with workers kept alive
    between sets (``with GridDecoder(...) as dec: dec.decode(posteriors, points)``).

    Args:
        graph_path: the decoding graph (OpenFst binary; input label i reads column i-1).
        bias: [C] the vector scaled by each point's ``bias_scale``.
        opts: search options (beam, max_active; the acoustic scale comes from the points).
        num_workers: worker processes (1: in this process).
        progress: show a progress bar per set.
    """

    def __init__(self, graph_path: str | os.PathLike, bias: np.ndarray, opts: SearchOptions,
                 num_workers: int = 1, progress: bool = False) -> None:
        self.init_args = (str(Path(graph_path)), np.asarray(bias, dtype=np.float32), opts)
        self.num_workers, self.progress = num_workers, progress
        self.pool = None

    def __enter__(self) -> "GridDecoder":
        if self.num_workers > 1:
            ctx = mp.get_context("spawn")  # torch and OpenMP state must not be forked
            self.pool = ctx.Pool(self.num_workers, initializer=_init, initargs=self.init_args)
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()
            self.pool = None

    def decode(self, posteriors: Mapping[str, np.ndarray], points: Sequence[GridPoint],
               desc: str = "decode") -> GridResult:
        """Every utterance (utt -> [T, C] log-posteriors) at every point."""
        n = len(points)
        res = GridResult([{} for _ in points], [0] * n, [0] * n, [0] * n)
        items: Iterable = ((u, posteriors[u], tuple(points)) for u in sorted(posteriors))
        if self.pool is None:
            _init(*self.init_args)  # the graph of this decoder (another may have run in this process)
            results = map(_decode_one, items)
        else:
            results = self.pool.imap(_decode_one, items, chunksize=1)
        with tqdm(total=len(posteriors), desc=desc, unit="utt", disable=not self.progress) as bar:
            for utt, per_point, seconds in results:
                res.search_seconds += seconds
                res.frames += len(posteriors[utt])
                for i, (labels, retried, final) in enumerate(per_point):
                    res.retried[i] += retried
                    if labels is None:
                        res.failed[i] += 1
                        res.hyps[i][utt] = []
                    else:
                        res.not_final[i] += not final
                        res.hyps[i][utt] = labels
                bar.update(1)
        return res


def decode_grid(graph_path: str | os.PathLike, posteriors: Mapping[str, np.ndarray], bias: np.ndarray,
                points: Sequence[GridPoint], opts: SearchOptions, num_workers: int = 1,
                progress: bool = False, desc: str = "decode") -> GridResult:
    """Decode every utterance at every point (one set: :class:`GridDecoder` for one call)."""
    with GridDecoder(graph_path, bias, opts, min(num_workers, max(1, len(posteriors))), progress) as dec:
        return dec.decode(posteriors, points, desc)


def log_failures(res: GridResult, index: int, total: int, where: str) -> None:
    """One warning per kind of search trouble of point ``index`` (none when all went well)."""
    if res.retried[index]:
        log.warning("%s: %d of %d utterance(s) lost every token and were decoded again with twice the beam",
                    where, res.retried[index], total)
    if res.failed[index]:
        log.warning("%s: %d of %d utterance(s) have no path even so; scored as empty hypotheses "
                    "(all deletions)", where, res.failed[index], total)
    if res.not_final[index]:
        log.warning("%s: %d of %d utterance(s) reached no final state; their best partial path is used",
                    where, res.not_final[index], total)
