"""Frame accuracy of a phone alignment against TIMIT ``.PHN`` ground-truth segments."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from asr.data.phones import MAP_61_TO_48, frame_labels, read_segments

log = logging.getLogger(__name__)


def phone_frame_accuracy(frame_phones: Mapping[str, list[str]], phn_files: Mapping[str, str | os.PathLike],
                         frame_shift: int = 160, frame_length: int = 400) -> tuple[float, int]:
    """Fraction of frames whose aligned 48-set phone is the ground-truth phone at the frame centre.

    Args:
        frame_phones: utt -> 48-set phone symbol of each frame (from an alignment).
        phn_files: utt -> its ``.PHN`` file (61-set labels, samples), e.g. from
            :func:`asr.data.timit.read_phn_scp`.
        frame_shift, frame_length: framing in samples (Kaldi, snip_edges=True).

    Returns:
        (accuracy in [0, 1], number of frames scored). Frames whose centre falls in ``q``
        or outside every segment are not scored; utterances without a ``.PHN`` are
        counted in the log and skipped.
    """
    correct = total = missing = 0
    for utt, hyp in frame_phones.items():
        if utt not in phn_files:
            missing += 1
            continue
        ref = frame_labels(read_segments(phn_files[utt]), len(hyp), MAP_61_TO_48, frame_shift, frame_length)
        for h, r in zip(hyp, ref):
            if r is not None:
                total += 1
                correct += h == r
    if missing:
        log.warning("frame accuracy: %d utterance(s) have no .PHN file; not scored", missing)
    return (correct / total if total else 0.0), total
