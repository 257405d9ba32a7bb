"""Kaldi-style data directories: read, validate and write them atomically.

A data dir holds one utterance per line in each of ``wav.scp`` (utt -> audio path),
``text`` (utt -> words), ``text.phn`` (utt -> phones, optional), ``utt2spk``,
``spk2utt`` (derived), and optionally ``utt2dur`` (seconds) and ``segments``.
Piped ``wav.scp`` entries (``cmd |``) are not supported: we never call Kaldi tools.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.errors import AsrError
from asr.stage import replace_dir

# Files that map an utterance id to a value, in the order we write them.
_UTT_TABLES = ("wav.scp", "text", "text.phn", "utt2spk", "utt2dur")


@dataclass
class Segment:
    """A region of a recording (``segments`` file); times in seconds."""

    recording: str
    start: float
    end: float


@dataclass
class DataDir:
    """An in-memory Kaldi data dir. All dicts are keyed by utterance id.

    ``wav`` maps an utterance (or, with ``segments``, a recording) id to an audio path.
    """

    wav: dict[str, str] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)
    phones: dict[str, str] = field(default_factory=dict)
    utt2spk: dict[str, str] = field(default_factory=dict)
    utt2dur: dict[str, float] = field(default_factory=dict)
    segments: dict[str, Segment] = field(default_factory=dict)
    # Further per-utterance tables written verbatim, e.g. {"phn.scp": {utt: path}}.
    extra: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def utts(self) -> list[str]:
        """Utterance ids, sorted (Kaldi order)."""
        return sorted(self.utt2spk)

    @property
    def spk2utt(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for utt in self.utts:
            out.setdefault(self.utt2spk[utt], []).append(utt)
        return out

    def audio_path(self, utt: str) -> str:
        """Path of the audio file holding ``utt``."""
        rec = self.segments[utt].recording if utt in self.segments else utt
        return self.wav[rec]

    def subset(self, utts: list[str]) -> "DataDir":
        """A new DataDir restricted to ``utts``."""
        keep = set(utts)
        seg = {u: s for u, s in self.segments.items() if u in keep}
        recs = {s.recording for s in seg.values()} if seg else keep
        return DataDir(
            wav={k: v for k, v in self.wav.items() if k in recs},
            text={k: v for k, v in self.text.items() if k in keep},
            phones={k: v for k, v in self.phones.items() if k in keep},
            utt2spk={k: v for k, v in self.utt2spk.items() if k in keep},
            utt2dur={k: v for k, v in self.utt2dur.items() if k in keep},
            segments=seg,
            extra={n: {k: v for k, v in t.items() if k in keep} for n, t in self.extra.items()},
        )


def read_table(path: Path) -> dict[str, str]:
    """Read ``key rest-of-line`` lines. Duplicate keys are an error naming the line."""
    table: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            key, _, value = line.partition(" ")
            if key in table:
                raise AsrError(f"{path}:{lineno}: duplicate key '{key}'")
            table[key] = value.strip()
    return table


def read_data_dir(path: str | os.PathLike) -> DataDir:
    """Read a Kaldi data dir; needs ``wav.scp`` and ``utt2spk``; ``text`` and others optional.

    Raises:
        AsrError: the directory or a required file is missing, or a line is malformed.
    """
    path = Path(path)
    if not path.is_dir():
        raise AsrError(f"{path}: data directory not found")
    for required in ("wav.scp", "utt2spk"):
        if not (path / required).is_file():
            raise AsrError(f"{path}: missing '{required}' (not a Kaldi data dir?)")
    d = DataDir()
    d.wav = read_table(path / "wav.scp")
    for rec, value in d.wav.items():
        if value.endswith("|"):
            raise AsrError(f"{path / 'wav.scp'}: '{rec}' is a piped command; give a plain audio path")
    d.utt2spk = read_table(path / "utt2spk")
    if (path / "text").is_file():
        d.text = read_table(path / "text")
    for name in ("text.phn", "phones"):
        if (path / name).is_file():
            d.phones = read_table(path / name)
            break
    if (path / "utt2dur").is_file():
        try:
            d.utt2dur = {k: float(v) for k, v in read_table(path / "utt2dur").items()}
        except ValueError as e:
            raise AsrError(f"{path / 'utt2dur'}: not a number: {e}") from None
    if (path / "segments").is_file():
        for utt, value in read_table(path / "segments").items():
            parts = value.split()
            try:
                d.segments[utt] = Segment(parts[0], float(parts[1]), float(parts[2]))
            except (IndexError, ValueError):
                raise AsrError(f"{path / 'segments'}: bad line for '{utt}': {value!r}") from None
    for utt in d.utt2spk:
        rec = d.segments[utt].recording if utt in d.segments else utt
        if rec not in d.wav:
            raise AsrError(f"{path}: utterance '{utt}' has no entry in wav.scp")
    return d


def write_data_dir(d: DataDir, path: str | os.PathLike) -> Path:
    """Write ``d`` to ``path`` atomically: into a temp dir beside it, then rename.

    Writes sorted tables and the derived ``spk2utt``. An existing dir is replaced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        write_data_tables(d, tmp)
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def write_data_tables(d: DataDir, path: str | os.PathLike) -> None:
    """Write the tables of ``d`` (sorted, and the derived ``spk2utt``) into the existing folder ``path``."""
    path = Path(path)
    tables = {
        "wav.scp": d.wav,
        "text": d.text,
        "text.phn": d.phones,
        "utt2spk": d.utt2spk,
        "utt2dur": {k: f"{v:.4f}" for k, v in d.utt2dur.items()},
        "segments": {
            k: f"{s.recording} {s.start:.3f} {s.end:.3f}" for k, s in d.segments.items()
        },
    }
    tables.update(d.extra)
    for name, table in tables.items():
        if table:
            write_table(path / name, table)
    write_table(path / "spk2utt", {spk: " ".join(utts) for spk, utts in d.spk2utt.items()})


def audio_present(data_dir: str | os.PathLike) -> bool:
    """Whether every recording that ``data_dir/wav.scp`` names exists (a stage's reuse check:
    a moved corpus or data dir is prepared again, not reused with dead paths)."""
    try:
        return all(Path(p).is_file() for p in read_data_dir(data_dir).wav.values())
    except AsrError:
        return False


def write_table(path: Path, table: dict[str, object]) -> None:
    """Write ``key value`` lines sorted by key (Kaldi order)."""
    with open(path, "w", encoding="utf-8") as f:
        for key in sorted(table):
            f.write(f"{key} {table[key]}\n")


def load_audio(path: str | os.PathLike, start: float = 0.0, end: float | None = None,
               mix: bool = False) -> tuple[np.ndarray, int]:
    """Read mono audio as float32 in [-1, 1] (any format soundfile reads, NIST SPHERE included).

    Args:
        path: audio file.
        start, end: optional region in seconds.
        mix: multi-channel audio is averaged to mono (else channel 0 is kept, as Kaldi's
            ``wav.scp`` readers do).

    Returns:
        (samples [T] float32, sample_rate in Hz).

    Raises:
        AsrError: unreadable, truncated or empty file, naming it.
    """
    try:
        with sf.SoundFile(str(path)) as f:
            sr = f.samplerate
            f.seek(int(round(start * sr)))
            frames = -1 if end is None else int(round((end - start) * sr))
            x = f.read(frames, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError) as e:
        raise AsrError(f"{path}: cannot read audio ({e})") from None
    if x.shape[0] == 0:
        raise AsrError(f"{path}: audio is empty")
    return np.ascontiguousarray(x.mean(axis=1) if mix else x[:, 0], dtype=np.float32), sr


def load_utterance(d: DataDir, utt: str) -> tuple[np.ndarray, int]:
    """Samples of utterance ``utt`` of ``d`` (honours ``segments``)."""
    if utt in d.segments:
        s = d.segments[utt]
        return load_audio(d.wav[s.recording], s.start, s.end)
    return load_audio(d.wav[utt])
