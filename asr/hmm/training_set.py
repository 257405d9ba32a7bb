"""Utterances for GMM-HMM training held in memory: features, phone ids, speakers."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch

from asr.errors import AsrError
from asr.hmm.topology import TransitionModel

# Per utterance: chain position of each frame, or None if it could not be aligned.
Alignments = list[np.ndarray | None]

log = logging.getLogger(__name__)


@dataclass
class TrainingSet:
    """All frames of a set of utterances, concatenated.

    Attributes:
        utts: utterance ids, sorted.
        feats: [N, D] float32 frames of all utterances, in ``utts`` order.
        offsets: [U + 1] int64; utterance i is ``feats[offsets[i]:offsets[i + 1]]``.
        phone_ids: per utterance, [L] int64 phone ids of its transcript.
        speakers: per utterance, its speaker id.
    """

    utts: list[str]
    feats: torch.Tensor
    offsets: np.ndarray
    phone_ids: list[np.ndarray]
    speakers: list[str]

    @classmethod
    def build(cls, feats: Mapping[str, np.ndarray], transcripts: Mapping[str, str],
              tm: TransitionModel, utt2spk: Mapping[str, str] | None = None) -> "TrainingSet":
        """Gather utterances that have both features and a phone transcript.

        Args:
            feats: utt -> [T, D] frames (e.g. a ``kaldiio.load_scp`` table).
            transcripts: utt -> space-separated phone symbols.
            tm: gives the phone ids; an unknown phone is an :class:`AsrError`.
            utt2spk: utt -> speaker (default: each utterance its own speaker).

        Utterances missing one of the two are left out, with their count logged.
        """
        utts = sorted(u for u in transcripts if u in feats)
        missing = len(transcripts) - len(utts)
        if missing:
            log.warning("%d utterance(s) with a transcript have no features; left out", missing)
        if not utts:
            raise AsrError("no utterance has both features and a phone transcript")
        mats, ids, empty = [], [], 0
        kept = []
        for u in utts:
            m = np.asarray(feats[u], dtype=np.float32)
            phones = transcripts[u].split()
            if m.ndim != 2 or m.shape[0] == 0 or not phones:
                empty += 1
                continue
            mats.append(torch.from_numpy(m))
            ids.append(tm.phone_ids(phones, utt=u))
            kept.append(u)
        if empty:
            log.warning("%d utterance(s) with no frames or no phones; left out", empty)
        dims = {m.shape[1] for m in mats}
        if len(dims) != 1:
            raise AsrError(f"features have inconsistent dimensions {sorted(dims)}")
        offsets = np.concatenate([[0], np.cumsum([m.shape[0] for m in mats])]).astype(np.int64)
        spk = [(utt2spk or {}).get(u, u) for u in kept]
        return cls(kept, torch.cat(mats), offsets, ids, spk)

    def __len__(self) -> int:
        return len(self.utts)

    @property
    def num_frames(self) -> int:
        return int(self.offsets[-1])

    @property
    def dim(self) -> int:
        return int(self.feats.shape[1])

    def utt_feats(self, i: int) -> torch.Tensor:
        """[T_i, D] frames of utterance ``i``."""
        return self.feats[self.offsets[i]: self.offsets[i + 1]]

    def with_feats(self, feats: torch.Tensor) -> "TrainingSet":
        """The same utterances with other frames of the same count ([N, D'])."""
        if feats.shape[0] != self.num_frames:
            raise AsrError(f"new features have {feats.shape[0]} frames, expected {self.num_frames}")
        return replace(self, feats=feats.to(torch.float32).contiguous())

    def speaker_index(self) -> dict[str, list[int]]:
        """speaker -> indices of its utterances."""
        out: dict[str, list[int]] = {}
        for i, s in enumerate(self.speakers):
            out.setdefault(s, []).append(i)
        return out
