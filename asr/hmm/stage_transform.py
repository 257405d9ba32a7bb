"""The feature transform of one GMM stage, read from the stage's own folder.

Every stage of :mod:`asr.hmm.pipeline` models transformed static features (CMVN-normalised
13 MFCCs): mono and tri1 append deltas; tri2 and tri3 splice frames and apply the
LDA+MLLT matrix ``final.mat``. The stage writes what it used into ``transform.json``, so
alignment and decoding of other sets apply exactly the training-time transform (the
splice context included) instead of assuming defaults::

    {"kind": "deltas", "delta_order": 2}
    {"kind": "lda", "splice_context": 3}         with final.mat, [D_out, F * (2c + 1) + 1]

tri3's per-speaker fMLLR comes on top of its LDA+MLLT frames and is not part of this
transform (training transforms are in ``trans.scp``; other sets estimate their own).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import kaldiio
import numpy as np
import torch

from asr.errors import AsrError
from asr.features.deltas import add_deltas
from asr.features.splice import splice_frames
from asr.hmm.lda_mllt_training import transform_set
from asr.hmm.training_set import TrainingSet

TRANSFORM_FILE = "transform.json"
MATRIX_FILE = "final.mat"


@dataclass
class StageTransform:
    """Deltas, or splicing followed by an affine LDA+MLLT matrix.

    Attributes:
        kind: ``deltas`` or ``lda``.
        delta_order: ``deltas``: the highest delta order appended (Kaldi ``add-deltas``).
        splice_context: ``lda``: frames spliced on each side before the matrix.
        matrix: ``lda``: [D_out, F * (2 * splice_context + 1) + 1] float64 (last column: offset).
    """

    kind: str
    delta_order: int = 2
    splice_context: int = 3
    matrix: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("deltas", "lda"):
            raise AsrError(f"GMM stage transform: unknown kind {self.kind!r}")
        if self.kind == "lda" and self.matrix is None:
            raise AsrError("GMM stage transform: an LDA transform needs its matrix")

    def apply(self, static: np.ndarray) -> np.ndarray:
        """[T, F] static frames -> [T, D] float32 frames of the stage's model."""
        x = np.asarray(static, dtype=np.float32)
        if self.kind == "deltas":
            return add_deltas(x, order=self.delta_order)
        m = self.matrix
        spliced = splice_frames(x, self.splice_context, self.splice_context)
        return (spliced @ m[:, :-1].T + m[:, -1]).astype(np.float32)

    def apply_all(self, static: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """utt -> [T, F] static frames -> utt -> [T, D] float32 frames."""
        return {u: self.apply(x) for u, x in static.items()}

    def apply_set(self, static: TrainingSet) -> TrainingSet:
        """The same transform on a :class:`TrainingSet` (utterance by utterance, so that
        deltas and splicing never reach across utterance boundaries)."""
        if self.kind == "lda":
            return transform_set(static, torch.from_numpy(self.matrix), self.splice_context)
        parts = [torch.from_numpy(self.apply(static.utt_feats(i).numpy())) for i in range(len(static))]
        return static.with_feats(torch.cat(parts))

    def save(self, stage_dir: str | os.PathLike) -> None:
        """Write ``transform.json`` (and ``final.mat`` for ``lda``) into ``stage_dir``."""
        out = Path(stage_dir)
        if self.kind == "deltas":
            info = {"kind": "deltas", "delta_order": self.delta_order}
        else:
            info = {"kind": "lda", "splice_context": self.splice_context}
            kaldiio.save_mat(str(out / MATRIX_FILE), np.asarray(self.matrix, dtype=np.float64))
        (out / TRANSFORM_FILE).write_text(json.dumps(info) + "\n", encoding="utf-8")


def deltas_transform(order: int = 2) -> StageTransform:
    """mono / tri1: static frames with deltas and delta-deltas."""
    return StageTransform("deltas", delta_order=order)


def lda_transform(matrix: np.ndarray | torch.Tensor, splice_context: int) -> StageTransform:
    """tri2 / tri3: spliced frames times the LDA+MLLT matrix."""
    m = matrix.numpy() if isinstance(matrix, torch.Tensor) else np.asarray(matrix)
    return StageTransform("lda", splice_context=splice_context, matrix=m.astype(np.float64))


def load_stage_transform(stage_dir: str | os.PathLike) -> StageTransform:
    """The transform a stage was trained with, from its ``transform.json`` (and ``final.mat``).

    Raises:
        AsrError: the folder holds no (readable) transform, naming the file.
    """
    path = Path(stage_dir) / TRANSFORM_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise AsrError(f"{path}: cannot read the stage's feature transform ({e})") from None
    if info.get("kind") == "lda":
        mat = Path(stage_dir) / MATRIX_FILE
        if not mat.is_file():
            raise AsrError(f"{mat}: missing LDA+MLLT transform of stage {Path(stage_dir).name}")
        return lda_transform(np.asarray(kaldiio.load_mat(str(mat)), dtype=np.float64),
                             int(info["splice_context"]))
    return StageTransform(info.get("kind", "?"), delta_order=int(info.get("delta_order", 2)))
