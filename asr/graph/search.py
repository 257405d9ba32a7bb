"""The one beam search: a [T, N] log-likelihood matrix through a decoding graph.

It knows no acoustic model. GMM decoding passes GMM log-likelihoods, hybrid decoding
network log-posteriors minus scaled log-priors, CTC decoding log-posteriors; each graph's
input label ``i`` reads column ``i - 1`` of the matrix (0 is epsilon).

``kaldi_decoder.FasterDecoder`` (Kaldi's ``faster-decoder``) walks the graph;
``DecodableCtc`` serves it the scaled matrix, applying no scale itself, so the acoustic
scale is applied here. The search minimises ``graph cost - scaled log-likelihood``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from asr.errors import AsrError

log = logging.getLogger(__name__)


@dataclass
class SearchOptions:
    """Search options (Kaldi ``decode-faster`` names and defaults).

    Attributes:
        acoustic_scale: scale of the log-likelihoods relative to graph costs.
        beam: pruning beam in cost units at acoustic scale 0.1 (Kaldi's usual 13 at
            about that scale). A larger acoustic scale widens it in proportion, so the
            search keeps paths within the same acoustic log-likelihood margin; without
            that, scales above ~0.2 lose the final state (search errors).
        max_active: most tokens kept per frame.
        min_active: fewest tokens kept per frame.
        scale_beam: widen the beam with the acoustic scale as above (GMM likelihoods);
            False: ``beam`` is in cost units whatever the scale (networks, whose peaky
            posteriors keep the right path close to the best at any scale).
    """

    acoustic_scale: float = 0.1
    beam: float = 13.0
    max_active: int = 7000
    min_active: int = 20
    scale_beam: bool = True


@dataclass
class BestPath:
    """The best path of one utterance.

    Attributes:
        columns: [T] the matrix column (input label - 1) the path reads at each frame.
        labels: output labels of the path (non-epsilon).
        reached_final: False when no final state survived and a partial path was used.
    """

    columns: np.ndarray
    labels: list[int]
    reached_final: bool


def best_path(loglikes: np.ndarray, graph, opts: SearchOptions) -> BestPath | None:
    """Best path of one utterance.

    Args:
        loglikes: [T, N] natural-log scores (unscaled), one column per input label - 1.
        graph: ``kaldifst.StdVectorFst``.
        opts: search options.

    Returns:
        the best path, or None when no path survived the beam.
    """
    import kaldi_decoder
    import kaldifst

    beam = opts.beam * max(1.0, opts.acoustic_scale / 0.1) if opts.scale_beam else opts.beam
    dopts = kaldi_decoder.FasterDecoderOptions(beam=beam, max_active=opts.max_active,
                                               min_active=opts.min_active)
    decoder = kaldi_decoder.FasterDecoder(graph, dopts)
    decoder.decode(kaldi_decoder.DecodableCtc(np.ascontiguousarray(loglikes * opts.acoustic_scale,
                                                                   dtype=np.float32)))
    final = decoder.reached_final()
    ok, lattice = decoder.get_best_path(use_final_probs=final)
    if not ok:
        return None
    ok, ilabels, olabels, _ = kaldifst.get_linear_symbol_sequence(lattice)
    if not ok:  # a best path is linear by construction
        raise AsrError("decoder: best path is not linear")
    return BestPath(np.asarray(ilabels, dtype=np.int64) - 1, list(olabels), final)


def decode_utterances(utts: Iterable[str], loglikes: Callable[[str], np.ndarray], graph,
                      symbols: Sequence[str], opts: SearchOptions) -> dict[str, list[str]]:
    """Decode utterances one by one (their matrices are made on demand, never all held).

    Args:
        utts: utterance ids.
        loglikes: utt -> [T, N] natural-log scores.
        graph: the decoding graph.
        symbols: output symbols: label ``i + 1`` is ``symbols[i]``.
        opts: search options.

    Returns:
        utt -> output symbols. Utterances where the search found no path are left out
        and counted in a warning (scoring counts them as all deletions).
    """
    out: dict[str, list[str]] = {}
    total = not_final = failed = 0
    for utt in utts:
        total += 1
        path = best_path(loglikes(utt), graph, opts)
        if path is None:
            failed += 1
            continue
        not_final += not path.reached_final
        out[utt] = [symbols[i - 1] for i in path.labels]
    if not_final:
        log.warning("decode: %d of %d utterance(s) reached no final state; used their best partial path",
                    not_final, total)
    if failed:
        log.warning("decode: %d of %d utterance(s) gave no path at all (beam %.1f); no hypothesis",
                    failed, total, opts.beam)
    return out
