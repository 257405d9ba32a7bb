"""Writing and reading frame alignments as kaldiio ark/scp tables.

``ali.scp``: utt -> [T] int32 pdf id (0-based) of each frame.
``phone_ali.scp``: utt -> [T] int32 phone id of each frame, in Kaldi numbering: ids
from ``phones.txt`` where ``<eps>`` is 0 and the model's phones are 1..N.
``pdf_counts.txt``: one line, the number of training frames aligned to each pdf
(priors for hybrid decoding: divide by the total).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import kaldiio
import numpy as np
import torch

from asr.errors import AsrError
from asr.hmm.model import GmmHmm
from asr.hmm.trainer import Alignments
from asr.hmm.training_set import TrainingSet


def frame_phone_and_pdf(model: GmmHmm, phone_ids: np.ndarray, positions: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """(phone id [T] (0-based model phone), pdf id [T]) of each frame of one utterance."""
    chain = model.chain(phone_ids)
    return phone_ids[chain.phone_index[positions]], chain.pdfs[positions]


def write_phones_txt(phones: list[str], path: str | os.PathLike) -> None:
    """Kaldi symbol table: ``<eps> 0`` then the phones numbered from 1."""
    lines = ["<eps> 0"] + [f"{p} {i + 1}" for i, p in enumerate(phones)]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_alignments(model: GmmHmm, data: TrainingSet, ali: Alignments, out_dir: str | os.PathLike
                     ) -> np.ndarray:
    """Write ``ali.{ark,scp}``, ``phone_ali.{ark,scp}``, ``phones.txt`` and ``pdf_counts.txt``.

    Unaligned utterances (None) are not written.

    Returns:
        [num_pdfs] int64 frame count per pdf.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = np.zeros(model.pdf_map.num_pdfs, dtype=np.int64)
    with kaldiio.WriteHelper(f"ark,scp:{out / 'ali.ark'},{out / 'ali.scp'}") as pdf_w, \
            kaldiio.WriteHelper(f"ark,scp:{out / 'phone_ali.ark'},{out / 'phone_ali.scp'}") as ph_w:
        for i, utt in enumerate(data.utts):
            if ali[i] is None:
                continue
            phones, pdfs = frame_phone_and_pdf(model, data.phone_ids[i], ali[i])
            pdf_w(utt, pdfs.astype(np.int32))
            ph_w(utt, (phones + 1).astype(np.int32))
            counts += np.bincount(pdfs, minlength=len(counts))
    write_phones_txt(model.tm.phones, out / "phones.txt")
    (out / "pdf_counts.txt").write_text(" ".join(map(str, counts.tolist())) + "\n", encoding="utf-8")
    return counts


def read_int_table(scp: str | os.PathLike) -> dict[str, np.ndarray]:
    """utt -> int array from an ``ali.scp`` or ``phone_ali.scp``."""
    try:
        return {k: np.asarray(v) for k, v in kaldiio.load_scp(str(scp)).items()}
    except OSError as e:
        raise AsrError(f"{scp}: cannot read alignments ({e})") from None


def read_frame_phones(stage_dir: str | os.PathLike) -> dict[str, list[str]]:
    """utt -> phone symbol of each frame, from a stage's ``phone_ali.scp`` and ``phones.txt``."""
    stage_dir = Path(stage_dir)
    table = {}
    for line in (stage_dir / "phones.txt").read_text(encoding="utf-8").splitlines():
        sym, _, idx = line.partition(" ")
        table[int(idx)] = sym
    return {u: [table[int(i)] for i in ids] for u, ids in read_int_table(stage_dir / "phone_ali.scp").items()}


def read_positions(stage_dir: str | os.PathLike, utts: Sequence[str]) -> list[np.ndarray | None]:
    """A stage's alignments (``chain_ali.scp``: positions in each utterance's HMM chain, one
    per frame) for ``utts`` in that order; None for an utterance the stage did not align."""
    table = kaldiio.load_scp(str(Path(stage_dir) / "chain_ali.scp"))
    return [np.asarray(table[u], dtype=np.int64) if u in table else None for u in utts]


def write_fmllr(out_dir: str | os.PathLike, transforms: Mapping[str, torch.Tensor], adapted: TrainingSet) -> None:
    """Write per-speaker fMLLR transforms (``trans.{ark,scp}``, [D, D+1] each) and the adapted
    features (``fmllr_feats.{ark,scp}``, [T, D] per utterance) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with kaldiio.WriteHelper(f"ark,scp:{out / 'trans.ark'},{out / 'trans.scp'}") as w:
        for spk in sorted(transforms):
            w(spk, transforms[spk].numpy())
    with kaldiio.WriteHelper(f"ark,scp:{out / 'fmllr_feats.ark'},{out / 'fmllr_feats.scp'}") as w:
        for i, u in enumerate(adapted.utts):
            w(u, adapted.utt_feats(i).numpy())
