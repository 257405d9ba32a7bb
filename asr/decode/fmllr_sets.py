"""fMLLR features of a data set without its transcripts, as Kaldi's ``decode_fmllr.sh``
followed by ``make_fmllr_feats.sh`` (what pytorch-kaldi's TIMIT recipes read for dev and test).

tri2 decodes the set's speaker-independent LDA+MLLT frames with a phone bigram graph (the
role of Kaldi's ``final.alimdl``) and the SAT (tri3) model aligns its phones; each speaker's
transform is estimated from that decode's alignment (silence frames weighted 0.01) and
refined by a second pass (:func:`asr.decode.gmm_stage.adapt_fmllr`). The training set
needs none of this: its transforms come from SAT training (``tri3/fmllr_feats.scp``).

Layout of ``out_dir``::

    feats.ark, feats.scp    adapted frames, [T, 40] float32 per utterance
    trans.ark, trans.scp    per-speaker transforms, [40, 41] float64
    done.json               written last: inputs' fingerprint and counts
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kaldiio
import numpy as np

from asr.decode.gmm_decode import DecodeOptions
from asr.decode.gmm_stage import adapt_fmllr, stage_features
from asr.hmm.model import GmmHmm

log = logging.getLogger(__name__)


def fmllr_set_done(out_dir: str | os.PathLike, fingerprint: dict) -> bool:
    """Whether ``out_dir`` holds finished features made from inputs with ``fingerprint``."""
    done = Path(out_dir) / "done.json"
    if not done.is_file():
        return False
    return json.loads(done.read_text()).get("fingerprint") == fingerprint


def write_fmllr_set(stage_dir: str | os.PathLike, static: Mapping[str, np.ndarray], utt2spk: Mapping[str, str],
                    graph, out_dir: str | os.PathLike, fingerprint: dict | None = None,
                    opts: DecodeOptions | None = None, model: GmmHmm | None = None,
                    first_pass: tuple[GmmHmm, Any] | None = None) -> Path:
    """Estimate per-speaker fMLLR by decoding, and write the adapted features of one set.

    Args:
        stage_dir: the SAT stage's dir (``final.mdl``, ``final.mat``).
        static: utt -> [T, 13] CMVN-normalised static features, as given to training.
        utt2spk: utt -> speaker.
        graph: decoding graph of the stage's model (:func:`asr.graph.hclg.build_graph`).
        out_dir: output dir (see the module docstring); ``done.json`` is written last, so
            an interrupted run is redone, never read half-written.
        fingerprint: recorded in ``done.json`` (see :func:`fmllr_set_done`).
        opts: search options of the adaptation passes (default :class:`DecodeOptions`).
        model: the loaded model (default: read ``stage_dir/final.mdl``).
        first_pass: the speaker-independent model and graph that decode the first pass
            (tri2; see :func:`asr.decode.gmm_stage.adapt_fmllr`), or None for the SAT model.

    Returns:
        path of ``feats.scp``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "done.json").unlink(missing_ok=True)
    model = model or GmmHmm.load(Path(stage_dir) / "final.mdl")
    si = stage_features("tri3", stage_dir, static)
    transforms: dict[str, np.ndarray] = {}
    adapted = adapt_fmllr(model, si, utt2spk, graph, opts or DecodeOptions(), transforms=transforms,
                          first_pass=first_pass)
    with kaldiio.WriteHelper(f"ark,scp:{out / 'trans.ark'},{out / 'trans.scp'}") as w:
        for spk in sorted(transforms):
            w(spk, transforms[spk])
    with kaldiio.WriteHelper(f"ark,scp:{out / 'feats.ark'},{out / 'feats.scp'}") as w:
        for utt in sorted(adapted):
            w(utt, np.asarray(adapted[utt], dtype=np.float32))
    summary = {"utterances": len(adapted), "speakers": len(transforms),
               "frames": int(sum(len(x) for x in adapted.values()))}
    (out / "done.json").write_text(json.dumps({"fingerprint": fingerprint or {}, **summary}, indent=1))
    log.info("fMLLR features of %d utterance(s), %d speaker(s) written to %s", summary["utterances"],
             summary["speakers"], out)
    return out / "feats.scp"
