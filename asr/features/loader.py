"""Training batches from a feature store: length-bucketed, padded, with targets.

Features are read lazily through the store's scp, one batch at a time, so memory is
bounded by the batch, not the corpus. Targets are either frame labels (an alignment
scp/ark of int vectors, one label per frame, for hybrid DNN-HMM training) or token
sequences (for CTC).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import partial
from typing import Iterator, Mapping, Sequence

import kaldiio
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from asr.errors import AsrError
from asr.features.store import FeatureStore, transformed_frames

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # padding of frame labels; torch's cross_entropy ignores it by default
TOKEN_PAD = 0  # padding of token targets (ignored by CTC past target_lengths)


@dataclass
class Batch:
    """A padded batch, sorted by decreasing length.

    Attributes:
        utts: [B] utterance ids.
        feats: [B, T, F] float32, zero past each length.
        lengths: [B] int64 valid frames.
        targets: frame labels [B, T] int64 padded with -100, or tokens [B, L] int64
            padded with 0, or None without targets.
        target_lengths: [B] int64 tokens per utterance (token targets only), else None.
    """

    utts: list[str]
    feats: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor | None = None
    target_lengths: torch.Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        """A copy with all tensors on ``device``."""
        move = lambda t: None if t is None else t.to(device, non_blocking=non_blocking)  # noqa: E731
        return Batch(self.utts, move(self.feats), move(self.lengths), move(self.targets), move(self.target_lengths))

    def select(self, index: int) -> "Batch":
        """Utterance ``index`` alone, as a batch of one (padding cut off)."""
        n = int(self.lengths[index])
        targets = self.targets
        if targets is not None:
            width = n if self.target_lengths is None else int(self.target_lengths[index])
            targets = targets[index: index + 1, :width]
        tl = None if self.target_lengths is None else self.target_lengths[index: index + 1]
        return Batch([self.utts[index]], self.feats[index: index + 1, :n], self.lengths[index: index + 1],
                     targets, tl)

    def pin_memory(self) -> "Batch":
        """Pinned copy (``DataLoader(pin_memory=True)`` calls this)."""
        pin = lambda t: None if t is None else t.pin_memory()  # noqa: E731
        return Batch(self.utts, pin(self.feats), pin(self.lengths), pin(self.targets), pin(self.target_lengths))


class FeatureDataset(Dataset):
    """Utterances of a store with their targets; item i is (utt, feats, target).

    Args:
        store: the feature store (its transforms apply).
        alignments: frame labels: path of a Kaldi scp or ark of int vectors
            (utt -> label per frame), or a mapping utt -> [frames] ints.
        tokens: token targets for CTC: mapping utt -> sequence of ints.
        max_trim: a feature/alignment length mismatch of at most this many frames is
            resolved by dropping the longer one's last frames (counted in
            ``num_trimmed``); a larger one is an error.
        utts: restrict to these utterances (default: all in the store).
        strict: a length mismatch beyond ``max_trim`` is an error (else the utterance is
            left out with one warning naming it, and counted in ``num_mismatched``).

    Utterances without features or targets are left out with one warning each, naming
    them, and counted in ``num_missing``; ``skipped`` lists (utt, reason) of every one.

    Raises:
        AsrError: both ``alignments`` and ``tokens`` given, a length mismatch beyond
            ``max_trim`` with ``strict`` (naming the utterance), or no utterance left.
    """

    def __init__(
        self,
        store: FeatureStore,
        alignments: str | os.PathLike | Mapping[str, Sequence[int]] | None = None,
        tokens: Mapping[str, Sequence[int]] | None = None,
        max_trim: int = 2,
        utts: Sequence[str] | None = None,
        strict: bool = False,
    ) -> None:
        if alignments is not None and tokens is not None:
            raise AsrError("give frame alignments or token targets, not both")
        self.store = store
        self.tokens = tokens
        self.alignments = _open_alignments(alignments) if alignments is not None else None
        targets = self.alignments if self.alignments is not None else tokens
        wanted = list(utts) if utts is not None else store.utts
        self.utts: list[str] = []
        self.num_frames: list[int] = []
        self.num_missing = 0
        self.num_mismatched = 0
        self.num_trimmed = 0
        self.skipped: list[tuple[str, str]] = []
        for utt in wanted:
            if utt not in store or (targets is not None and utt not in targets):
                self.num_missing += 1
                self._skip(utt, "no features" if utt not in store else "no alignment" if self.alignments is not None
                           else "no token targets")
                continue
            frames = transformed_frames(store.num_frames[utt], store.cfg)
            if self.alignments is not None:
                frames = self._checked_length(utt, frames, len(self.alignments[utt]), max_trim, strict)
                if frames is None:
                    continue
            self.utts.append(utt)
            self.num_frames.append(frames)
        if self.skipped:
            log.warning("loader: %s: %d utterance(s) left out (%d without features or targets, %d with a "
                        "length mismatch)", store.path, len(self.skipped), self.num_missing, self.num_mismatched)
        if self.num_trimmed:
            log.info("loader: trimmed %d utterances by at most %d frames to match alignments", self.num_trimmed, max_trim)
        if not self.utts:
            raise AsrError(f"{store.path}: no utterance has both features and targets")

    def _skip(self, utt: str, reason: str) -> None:
        self.skipped.append((utt, reason))
        log.warning("loader: utterance '%s' skipped: %s", utt, reason)

    def _checked_length(self, utt: str, frames: int, labels: int, max_trim: int, strict: bool) -> int | None:
        if frames == labels:
            return frames
        if abs(frames - labels) > max_trim:
            why = (f"{frames} feature frames but {labels} alignment labels (features and alignments "
                   f"made with different frame options?)")
            if strict:
                raise AsrError(f"utterance '{utt}': {why}")
            self.num_mismatched += 1
            self._skip(utt, why)
            return None
        self.num_trimmed += 1
        return min(frames, labels)

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, index: int) -> tuple[str, np.ndarray, np.ndarray | None]:
        utt, frames = self.utts[index], self.num_frames[index]
        feats = self.store.load(utt)[:frames]
        if self.alignments is not None:
            target = np.asarray(self.alignments[utt], dtype=np.int64)[:frames]
        elif self.tokens is not None:
            target = np.asarray(self.tokens[utt], dtype=np.int64)
        else:
            target = None
        return utt, feats, target


class ConcatFeatureDataset(Dataset):
    """Several :class:`FeatureDataset` as one training set (clean data and its contaminated
    copies, say); utterance ids of every part after the first are prefixed ``<name>/`` so
    that the copies of one utterance stay distinguishable in logs.

    Args:
        parts: (name, dataset) in order; item indices run through them in turn.
    """

    def __init__(self, parts: Sequence[tuple[str, FeatureDataset]]) -> None:
        if not parts:
            raise AsrError("no dataset to concatenate")
        self.parts = list(parts)
        self._index = [(p, i) for p, (_, d) in enumerate(self.parts) for i in range(len(d))]
        self.num_frames: list[int] = [n for _, d in self.parts for n in d.num_frames]
        self.utts: list[str] = [u if p == 0 else f"{name}/{u}"
                                for p, (name, d) in enumerate(self.parts) for u in d.utts]
        self.skipped: list[tuple[str, str]] = [(u if p == 0 else f"{name}/{u}", why)
                                               for p, (name, d) in enumerate(self.parts) for u, why in d.skipped]

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, index: int) -> tuple[str, np.ndarray, np.ndarray | None]:
        p, i = self._index[index]
        utt, feats, target = self.parts[p][1][i]
        return (utt if p == 0 else f"{self.parts[p][0]}/{utt}"), feats, target


def _open_alignments(source: str | os.PathLike | Mapping[str, Sequence[int]]) -> Mapping:
    """A lazy scp reader, an ark read into memory, or the mapping itself."""
    if isinstance(source, Mapping):
        return source
    path = str(source)
    if not os.path.isfile(path):
        raise AsrError(f"{path}: alignment file not found")
    try:
        return kaldiio.load_scp(path) if path.endswith(".scp") else dict(kaldiio.load_ark(path))
    except Exception as e:  # kaldiio raises many types for malformed files
        raise AsrError(f"{path}: cannot read alignments ({e})") from None


class BucketBatchSampler(Sampler):
    """Batches of similar-length utterances, reshuffled each epoch with a fixed seed.

    Utterances are sorted by length (jittered by up to ``jitter`` of their length when
    shuffling, so batches differ between epochs), cut greedily into batches, and the
    batch order is shuffled. A batch's padded size ``B * max_len`` stays within
    ``max_frames``; an utterance longer than that gets a batch of its own.

    Args:
        lengths: [N] frames per utterance (dataset order).
        max_frames: bound on B * T of a padded batch, or None.
        batch_size: bound on B, or None (at least one bound is required).
        shuffle: shuffle (else: sorted by length, fixed).
        seed: base seed; the epoch's order depends only on (seed, epoch).
        jitter: relative length noise for shuffling (default 0.1).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        max_frames: int | None = None,
        batch_size: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        jitter: float = 0.1,
    ) -> None:
        if max_frames is None and batch_size is None:
            raise AsrError("loader: set max_frames or batch_size")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.max_frames, self.batch_size = max_frames, batch_size
        self.shuffle, self.seed, self.jitter = shuffle, seed, jitter
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` (call before each epoch)."""
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """This epoch's batches: lists of dataset indices."""
        rng = np.random.default_rng([self.seed, self.epoch])
        keys = self.lengths.astype(np.float64)
        if self.shuffle:
            keys = keys * (1.0 + self.jitter * rng.uniform(-1.0, 1.0, size=len(keys)))
        order = np.argsort(keys, kind="stable")
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0
        for i in order.tolist():
            n = int(self.lengths[i])
            grown = max(longest, n) * (len(current) + 1)
            full = (self.batch_size is not None and len(current) >= self.batch_size) or (
                self.max_frames is not None and grown > self.max_frames
            )
            if current and full:
                batches.append(current)
                current, longest = [], 0
            current.append(i)
            longest = max(longest, n)
        if current:
            batches.append(current)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


def collate(items: list[tuple[str, np.ndarray, np.ndarray | None]], frame_targets: bool = True) -> Batch:
    """Pad a list of (utt, feats [T, F], target) into a :class:`Batch` (longest first).

    Args:
        items: dataset items; targets all None, or all given.
        frame_targets: targets are frame labels (padded with -100 to [B, T]) rather
            than tokens (padded with 0 to [B, L], with ``target_lengths``).
    """
    items = sorted(items, key=lambda it: -it[1].shape[0])
    lengths = torch.tensor([it[1].shape[0] for it in items], dtype=torch.int64)
    # Pad in numpy: features read from arks are read-only arrays, which torch won't wrap.
    feats = np.zeros((len(items), int(lengths[0]), items[0][1].shape[1]), dtype=np.float32)
    for b, (_, x, _) in enumerate(items):
        feats[b, : x.shape[0]] = x
    batch = Batch([it[0] for it in items], torch.from_numpy(feats), lengths)
    if items[0][2] is None:
        return batch
    target_lengths = torch.tensor([len(it[2]) for it in items], dtype=torch.int64)
    width = int(lengths[0]) if frame_targets else int(target_lengths.max())
    targets = np.full((len(items), width), IGNORE_INDEX if frame_targets else TOKEN_PAD, dtype=np.int64)
    for b, (_, _, y) in enumerate(items):
        targets[b, : len(y)] = y
    batch.targets = torch.from_numpy(targets)
    batch.target_lengths = None if frame_targets else target_lengths
    return batch


def build_data_loader(
    dataset: FeatureDataset,
    max_frames: int | None = 20000,
    batch_size: int | None = None,
    shuffle: bool = True,
    seed: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader of :class:`Batch` over ``dataset`` with a :class:`BucketBatchSampler`.

    Call ``loader.batch_sampler.set_epoch(epoch)`` before each epoch to reshuffle.
    """
    sampler = BucketBatchSampler(dataset.num_frames, max_frames, batch_size, shuffle, seed)
    collate_fn = partial(collate, frame_targets=dataset.tokens is None)
    return DataLoader(
        dataset, batch_sampler=sampler, collate_fn=collate_fn, num_workers=num_workers, pin_memory=pin_memory
    )
