"""Viterbi beam search of GMM likelihoods through a decoding graph (kaldi-decoder).

``kaldi_decoder.FasterDecoder`` (Kaldi's ``faster-decoder``) walks the graph of
:mod:`asr.graph.hclg`; ``DecodableCtc`` serves it the scaled log-likelihood matrix,
reading column ``label - 1`` for input label ``label`` and applying no scale itself, so
the acoustic scale is applied here. The search minimises ``graph cost - scaled
log-likelihood``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from asr.decode.gmm_model import gmm_log_likelihoods
from asr.errors import AsrError
from asr.hmm.model import GmmHmm

log = logging.getLogger(__name__)


@dataclass
class DecodeOptions:
    """Search options (Kaldi ``gmm-decode-faster`` names and defaults).

    Attributes:
        acoustic_scale: scale of the log-likelihoods relative to graph costs.
        beam: pruning beam in cost units at acoustic scale 0.1 (Kaldi's usual 13 at
            about that scale). A larger acoustic scale widens it in proportion, so the
            search keeps paths within the same acoustic log-likelihood margin; without
            that, scales above ~0.2 lose the final state (search errors).
        max_active: most tokens kept per frame.
        min_active: fewest tokens kept per frame.
    """

    acoustic_scale: float = 0.1
    beam: float = 13.0
    max_active: int = 7000
    min_active: int = 20


@dataclass
class GmmDecodeConfig:
    """Options of GMM decoding.

    Attributes:
        acoustic_scales: candidates tried on the tuning set.
        tune_set: name of the tuning set among the sets given (never a test set).
        beam, max_active: search pruning (Kaldi ``decode.sh`` defaults).
        self_loop_scale: scale of HMM transition log-probabilities in the graph.
    """

    acoustic_scales: tuple[float, ...] = (0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3)
    tune_set: str = "dev"
    beam: float = 13.0
    max_active: int = 7000
    self_loop_scale: float = 0.1


@dataclass
class BestPath:
    """The best path of one utterance.

    Attributes:
        pdfs: [T] pdf id of each frame.
        labels: output labels (phone id + 1 with :mod:`asr.graph.hclg`).
        reached_final: False when no final state survived and a partial path was used.
    """

    pdfs: np.ndarray
    labels: list[int]
    reached_final: bool


def decode_loglikes(loglikes: np.ndarray, graph, opts: DecodeOptions) -> BestPath | None:
    """Best path of one utterance.

    Args:
        loglikes: [T, num_pdfs] natural-log likelihoods (unscaled).
        graph: ``kaldifst.StdVectorFst``, input labels pdf + 1.
        opts: search options.

    Returns:
        the best path, or None when no path survived the beam.
    """
    import kaldi_decoder
    import kaldifst

    beam = opts.beam * max(1.0, opts.acoustic_scale / 0.1)
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


def decode_gmm(model: GmmHmm, feats: Mapping[str, np.ndarray], graph, phones: Sequence[str],
               opts: DecodeOptions | None = None) -> dict[str, list[str]]:
    """Decode utterances with a GMM-HMM.

    Args:
        model: the acoustic model the graph was built for.
        feats: utt -> [T, D] frames, transformed as for training.
        graph: its decoding graph (:func:`asr.graph.hclg.build_graph`).
        phones: output symbols: label ``i + 1`` is ``phones[i]``.
        opts: search options.

    Returns:
        utt -> recognised phones. Utterances where the search found no path are left out
        and counted in a warning (scoring counts them as all deletions).
    """
    opts = opts or DecodeOptions()
    out: dict[str, list[str]] = {}
    not_final = failed = 0
    for utt in sorted(feats):
        x = feats[utt]
        if x.ndim != 2 or x.shape[1] != model.gmm.dim:
            raise AsrError(f"utterance '{utt}': features of shape {tuple(x.shape)}, the model "
                           f"expects [frames, {model.gmm.dim}]")
        path = decode_loglikes(gmm_log_likelihoods(model, x), graph, opts)
        if path is None:
            failed += 1
            continue
        not_final += not path.reached_final
        out[utt] = [phones[i - 1] for i in path.labels]
    if not_final:
        log.warning("decode: %d of %d utterance(s) reached no final state; used their best partial path",
                    not_final, len(feats))
    if failed:
        log.warning("decode: %d of %d utterance(s) gave no path at all (beam %.1f); no hypothesis",
                    failed, len(feats), opts.beam)
    return out
