"""TIMIT phone sets (61 -> 48 -> 39) and ``.PHN`` segment files.

The folding table lives in ``resources/timit_phone_map.tsv`` (Lee & Hon 1989, as used by
Kaldi's TIMIT recipe): models train on 48 phones and PER is scored on 39. ``q`` is dropped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from asr.errors import AsrError


def _load_map() -> list[tuple[str, str | None, str | None]]:
    rows = []
    text = resources.files("asr.data").joinpath("resources/timit_phone_map.tsv").read_text()
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        p61, p48, p39 = line.split("\t")
        rows.append((p61, None if p48 == "-" else p48, None if p39 == "-" else p39))
    return rows


_ROWS = _load_map()
TIMIT61: tuple[str, ...] = tuple(r[0] for r in _ROWS)
MAP_61_TO_48: dict[str, str | None] = {r[0]: r[1] for r in _ROWS}
MAP_61_TO_39: dict[str, str | None] = {r[0]: r[2] for r in _ROWS}
MAP_48_TO_39: dict[str, str] = {r[1]: r[2] for r in _ROWS if r[1] is not None}
TIMIT48: tuple[str, ...] = tuple(sorted(MAP_48_TO_39))
TIMIT39: tuple[str, ...] = tuple(sorted(set(MAP_48_TO_39.values())))
SILENCE_48 = "sil"


def fold_phones(phones: list[str], table: dict[str, str | None], where: str = "") -> list[str]:
    """Map each label through ``table``, dropping labels that map to None (``q``).

    Raises:
        AsrError: a label outside the table, naming ``where`` (file or utterance).
    """
    out = []
    for p in phones:
        if p not in table:
            raise AsrError(f"{where}: phone label '{p}' is not in the TIMIT phone set")
        mapped = table[p]
        if mapped is not None:
            out.append(mapped)
    return out


def to_39(phones48: list[str], where: str = "") -> list[str]:
    """Fold 48-set labels to the 39-set scoring labels (identity on 39-set labels)."""
    table: dict[str, str | None] = dict(MAP_48_TO_39)
    table.update({p: p for p in TIMIT39})
    return fold_phones(phones48, table, where)


@dataclass(frozen=True)
class PhoneSegment:
    """One line of a TIMIT ``.PHN``/``.WRD`` file: samples [start, end) and its label."""

    start: int
    end: int
    label: str


def read_segments(path: str | os.PathLike) -> list[PhoneSegment]:
    """Read a TIMIT ``.PHN`` or ``.WRD`` file (``start end label`` per line, in samples).

    Raises:
        AsrError: unreadable file, malformed line or empty file, naming the file and line.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise AsrError(f"{path}: cannot read ({e.strerror})") from None
    segs = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            start, end, label = int(parts[0]), int(parts[1]), parts[2]
        except (IndexError, ValueError):
            raise AsrError(f"{path}:{lineno}: expected 'start end label', got {line!r}") from None
        segs.append(PhoneSegment(start, end, label))
    if not segs:
        raise AsrError(f"{path}: empty transcription")
    return segs


def frame_labels(
    segments: list[PhoneSegment],
    num_frames: int,
    table: dict[str, str | None] = MAP_61_TO_48,
    frame_shift: int = 160,
    frame_length: int = 400,
) -> list[str | None]:
    """The label at each frame's centre (Kaldi framing, snip_edges=True), in ``table``'s set.

    Args:
        segments: ``.PHN`` segments in samples.
        num_frames: frames in the feature matrix.
        table: maps a 61-set label to the wanted set (None for ``q``, giving None frames).
        frame_shift, frame_length: in samples (defaults: 10 ms and 25 ms at 16 kHz).

    Returns:
        one label (or None where no segment or ``q`` covers the centre) per frame.
    """
    out: list[str | None] = []
    i = 0
    for f in range(num_frames):
        centre = f * frame_shift + frame_length // 2
        while i < len(segments) and segments[i].end <= centre:
            i += 1
        if i < len(segments) and segments[i].start <= centre:
            out.append(table.get(segments[i].label))
        else:
            out.append(None)
    return out
