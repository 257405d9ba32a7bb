"""Kaldi-style data directories: read, validate and write them atomically.

A data dir holds one utterance per line in each of ``wav.scp`` (utt -> audio path),
``text`` (utt -> words), ``text.phn`` (utt -> phones, optional), ``utt2spk``,
``spk2utt`` (derived), and optionally ``utt2dur`` (seconds) and ``segments``.
Piped ``wav.scp`` entries (``cmd |``, a shell pipeline writing audio to stdout) run a
command named by a data file, so they are refused unless the caller allows them
(``data.allow_pipes=true``); we never need Kaldi tools ourselves.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
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
    # Whether ``wav`` entries may be shell pipelines (``cmd |``) that loading runs.
    allow_pipes: bool = False

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
            allow_pipes=self.allow_pipes,
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


def is_pipe(entry: str) -> bool:
    """Whether a ``wav.scp`` value is a shell pipeline (``cmd args |``), as Kaldi writes them."""
    return entry.rstrip().endswith("|")


def read_data_dir(path: str | os.PathLike, allow_pipes: bool = False) -> DataDir:
    """Read a Kaldi data dir; needs ``wav.scp`` and ``utt2spk``; ``text`` and others optional.

    Args:
        path: the data dir.
        allow_pipes: accept ``wav.scp`` entries that are shell pipelines (``cmd |``); loading
            such an utterance runs the command. Default: refused, naming the entry.

    Raises:
        AsrError: the directory or a required file is missing, a line is malformed, or
            (without ``allow_pipes``) an entry is a pipeline.
    """
    path = Path(path)
    if not path.is_dir():
        raise AsrError(f"{path}: data directory not found")
    for required in ("wav.scp", "utt2spk"):
        if not (path / required).is_file():
            raise AsrError(f"{path}: missing '{required}' (not a Kaldi data dir?)")
    d = DataDir(allow_pipes=allow_pipes)
    d.wav = read_table(path / "wav.scp")
    for rec, value in d.wav.items():
        if is_pipe(value) and not allow_pipes:
            # A data file must not run commands unless the user says so: refused as a whole.
            raise AsrError(f"{path / 'wav.scp'}: '{rec}' is a piped command (a shell pipeline, 'cmd |'); "
                           "pipelines are refused unless data.allow_pipes=true, else give a plain audio path")
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
        # mkdtemp makes the folder 0700; the data dir gets the mode the user's umask gives.
        tmp.chmod(0o777 & ~current_umask())
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


def current_umask() -> int:
    """The process' umask (read by setting it and putting it back: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


# libsndfile's note on a RIFF chunk that claims more bytes than the file has.
_WAV_SHORT = re.compile(r"^data : (\d+) \(should be (\d+)\)", re.MULTILINE)
_WAV_ALIGN = re.compile(r"Block Align\s*: (\d+)")


def _sphere_header(path: str | os.PathLike) -> tuple[int, dict[str, str]] | None:
    """(header bytes, fields) of a NIST SPHERE file, or None when it is not one."""
    with open(path, "rb") as f:
        head = f.read(1024)
        if not head.startswith(b"NIST_1A"):
            return None
        lines = head.split(b"\n")
        try:
            size = int(lines[1])
        except (IndexError, ValueError):
            return None
        if size > len(head):
            head += f.read(size - len(head))
    fields = {}
    for line in head[:size].split(b"\n")[2:]:
        if line.strip() == b"end_head":
            break
        parts = line.decode("latin-1").split(None, 2)
        if len(parts) == 3:
            fields[parts[0]] = parts[2].strip()
    return size, fields


def header_problem(path: str | os.PathLike, frames: int, extra_info: str) -> str | None:
    """Why the header of an audio file disagrees with its size (None: it does not).

    libsndfile trusts the file size, not the header: a truncated SPHERE or WAV file reads as
    a shorter recording without complaint. SPHERE: ``sample_count`` x channels x bytes per
    sample against the bytes after the header (checked for uncompressed codings only);
    a header that claims fewer samples than the file holds is refused too (Kaldi's
    sph2pipe would read fewer samples than we would). WAV: a ``data`` chunk longer than
    the file (a streamed WAV's placeholder sizes, 0 and 2^31 - 1 and more, are not checked).

    Args:
        path: the audio file.
        frames: samples per channel libsndfile reads from it.
        extra_info: libsndfile's log of opening it (``SoundFile.extra_info``).
    """
    sphere = _sphere_header(path)
    if sphere is not None:
        size, fields = sphere
        coding = fields.get("sample_coding", "pcm")
        try:
            count, channels = int(fields["sample_count"]), int(fields.get("channel_count", 1))
            width = int(fields.get("sample_n_bytes", 2))
        except (KeyError, ValueError):
            return None  # no count to check against
        if "embedded" in coding or "shorten" in coding or channels <= 0 or width <= 0:
            return None  # compressed data: its size says nothing
        holds = (os.path.getsize(path) - size) // (channels * width)
        if holds < count:
            return f"truncated (header says {count} samples, the file holds {holds})"
        if holds > count:
            return f"header says {count} samples, the file holds {holds} (a header that lies about its length)"
        return None
    m = _WAV_SHORT.search(extra_info)
    if m:
        declared = int(m.group(1))
        align = _WAV_ALIGN.search(extra_info)
        if 0 < declared < 0x7FFFFFFF and align:
            said = declared // max(int(align.group(1)), 1)
            return f"truncated (header says {said} samples, the file holds {frames})"
    return None


def audio_info(path: str | os.PathLike) -> "sf._SoundFileInfo":
    """soundfile's header information of an audio file, checked against its size.

    Raises:
        AsrError: unreadable, or a header that disagrees with the file size
            (:func:`header_problem`), naming the file.
    """
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError, OSError) as e:
        raise AsrError(f"{path}: cannot read audio ({_reason(e)})") from None
    problem = header_problem(path, info.frames, info.extra_info)
    if problem:
        raise AsrError(f"{path}: {problem}")
    return info


def _reason(e: BaseException) -> str:
    return getattr(e, "error_string", None) or getattr(e, "strerror", None) or str(e)


def _run_pipe(command: str) -> io.BytesIO:
    """The stdout of a ``wav.scp`` pipeline (``cmd |``), run by the shell."""
    cmd = command.rstrip()[:-1]
    try:
        r = subprocess.run(cmd, shell=True, capture_output=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as e:
        raise AsrError(f"'{command}': the pipeline could not run ({e})") from None
    if r.returncode != 0:
        last = (r.stderr.decode(errors="replace").strip().splitlines() or [""])[-1]
        raise AsrError(f"'{command}': the pipeline failed with exit status {r.returncode} ({last})")
    return io.BytesIO(r.stdout)


def read_audio(path: str | os.PathLike, start: float = 0.0, end: float | None = None,
               allow_pipes: bool = False) -> tuple[np.ndarray, int]:
    """Read every channel of an audio file as float32 in [-1, 1] (any format soundfile
    reads, NIST SPHERE included; any bit depth, integer or float).

    Args:
        path: audio file, or with ``allow_pipes`` a ``wav.scp`` pipeline (``cmd |``).
        start, end: optional region in seconds.
        allow_pipes: run ``path`` when it is a pipeline (else it is refused).

    Returns:
        (samples [T, channels] float32, sample_rate in Hz).

    Raises:
        AsrError: unreadable, truncated (its header says more than it holds) or empty
            file, or a pipeline that is not allowed or fails; naming it.
    """
    piped = is_pipe(str(path))
    if piped and not allow_pipes:
        raise AsrError(f"'{path}' is a shell pipeline; pipelines are refused unless data.allow_pipes=true")
    try:
        with sf.SoundFile(_run_pipe(str(path)) if piped else str(path)) as f:
            # A pipeline's WAV header often holds placeholder sizes: only files are checked.
            problem = None if piped else header_problem(path, f.frames, f.extra_info)
            if problem:
                raise AsrError(f"{path}: {problem}")
            sr = f.samplerate
            f.seek(int(round(start * sr)))
            frames = -1 if end is None else int(round((end - start) * sr))
            x = f.read(frames, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError) as e:
        raise AsrError(f"{path}: cannot read audio ({_reason(e)})") from None
    if x.shape[0] == 0:
        raise AsrError(f"{path}: audio is empty")
    return x, sr


def load_audio(path: str | os.PathLike, start: float = 0.0, end: float | None = None,
               mix: bool = False, allow_pipes: bool = False) -> tuple[np.ndarray, int]:
    """Read mono audio as float32 in [-1, 1] (:func:`read_audio`, then one channel).

    Args:
        path: audio file (or an allowed pipeline, see :func:`read_audio`).
        start, end: optional region in seconds.
        mix: multi-channel audio is averaged to mono (else channel 0 is kept, as Kaldi's
            ``wav.scp`` readers do).
        allow_pipes: see :func:`read_audio`.

    Returns:
        (samples [T] float32, sample_rate in Hz).

    Raises:
        AsrError: as :func:`read_audio`.
    """
    x, sr = read_audio(path, start, end, allow_pipes)
    return np.ascontiguousarray(x.mean(axis=1) if mix else x[:, 0], dtype=np.float32), sr


def read_utterance(d: DataDir, utt: str) -> tuple[np.ndarray, int]:
    """Samples of utterance ``utt`` of ``d``, every channel: ([T, channels] float32, rate in Hz)
    (honours ``segments``)."""
    if utt in d.segments:
        s = d.segments[utt]
        return read_audio(d.wav[s.recording], s.start, s.end, d.allow_pipes)
    return read_audio(d.wav[utt], allow_pipes=d.allow_pipes)


def load_utterance(d: DataDir, utt: str) -> tuple[np.ndarray, int]:
    """Samples of utterance ``utt`` of ``d`` (honours ``segments``): channel 0, [T] float32, and
    the rate in Hz."""
    x, sr = read_utterance(d, utt)
    return np.ascontiguousarray(x[:, 0]), sr
