"""LDC TIMIT (and mini-TIMIT) -> Kaldi data dirs with the standard train/dev/core-test split.

Layout read: ``<root>/{TRAIN,TEST}/DR<n>/<SPEAKER>/<SENT>.{WAV,PHN,WRD,TXT}``, upper- or
lower-case names, audio as NIST SPHERE ``.WAV`` or RIFF ``.wav`` (both read by soundfile).
``train`` is every SI/SX sentence of ``TRAIN/`` (SA sentences excluded, as in Kaldi),
``dev`` the 50 standard dev speakers and ``test`` the 24 core-test speakers of ``TEST/``.

Each data dir gets ``wav.scp``, ``text`` (lower-case words), ``text.phn`` (48-phone set),
``utt2spk``, ``spk2utt``, ``utt2dur`` and ``phn.scp`` (utt -> the ``.PHN`` file, the
ground-truth phone segmentation used to check alignments).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from asr.data.kaldi_dir import DataDir, audio_info, audio_present, write_data_tables
from asr.data.phones import MAP_61_TO_48, fold_phones, read_segments
from asr.data.speakers import dev_speakers, test_speakers
from asr.errors import AsrError
from asr.stage import read_done, run_stage, stage_fingerprint

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
_VERSION = 1  # of the data dirs written (each split is a stage of asr.stage)


@dataclass
class PrepareReport:
    """What preparation found: utterances kept per split and problems skipped."""

    num_utts: dict[str, int] = field(default_factory=dict)
    num_speakers: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"{split:>5}: {self.num_utts[split]:5d} utts, {self.num_speakers[split]:3d} speakers, "
            f"{self.seconds[split] / 60:7.1f} min"
            for split in self.num_utts
        ]
        lines.append(f"skipped utterances: {len(self.skipped)}")
        return "\n".join(lines)


def _child(parent: Path, name: str) -> Path | None:
    """The entry of ``parent`` whose name equals ``name`` ignoring case."""
    for entry in sorted(parent.iterdir()):
        if entry.name.upper() == name.upper():
            return entry
    return None


def find_timit_root(root: str | os.PathLike, override: str = "data.root") -> tuple[Path, Path]:
    """Locate the ``TRAIN`` and ``TEST`` folders under ``root`` (or ``root/TIMIT``, ``root/data``).

    Raises:
        AsrError: naming the path looked in and the override to set.
    """
    root = Path(root).expanduser()
    hint = (
        f"set {override}=/path/to/TIMIT (the folder holding TRAIN/ and TEST/), or make the "
        "synthetic corpus with: asr-prepare corpus=mini_timit out=DIR"
    )
    if not root.is_dir():
        raise AsrError(f"{root}: TIMIT corpus directory not found; {hint}")
    for candidate in (root, _child(root, "TIMIT"), _child(root, "data")):
        if candidate is None or not candidate.is_dir():
            continue
        train, test = _child(candidate, "TRAIN"), _child(candidate, "TEST")
        if train and test and train.is_dir() and test.is_dir():
            return train, test
    raise AsrError(f"{root}: no TRAIN/ and TEST/ folders (not the LDC TIMIT layout); {hint}")


_AUDIO = re.compile(r"^(S[IX]\d+)\.WAV$", re.IGNORECASE)
_TRANSCRIPT = re.compile(r"^(S[IX]\d+)\.(TXT|PHN)$", re.IGNORECASE)
_EXTRA_TEST = re.compile(r"^TEST_[A-Z0-9]+$", re.IGNORECASE)


@dataclass
class _SplitFiles:
    """The SI/SX utterances found under a split folder, keyed by (speaker, sentence).

    Attributes:
        audio: the audio file of each usable utterance id.
        problems: ids that cannot be used whatever their contents, and why: an id given
            by two audio files that differ (``SX1.WAV`` and ``sx1.wav``, or one speaker in
            two dialect folders: which one is right is unknown, so every copy is left out;
            identical copies are one utterance), or a transcription with no audio file
            beside it.
    """

    audio: dict[tuple[str, str], Path] = field(default_factory=dict)
    problems: dict[tuple[str, str], str] = field(default_factory=dict)

    def of_speakers(self, speakers: set[str]) -> "_SplitFiles":
        return _SplitFiles({k: v for k, v in self.audio.items() if k[0] in speakers},
                           {k: v for k, v in self.problems.items() if k[0] in speakers})


def _utterance_files(split_dir: Path) -> _SplitFiles:
    """Every SI/SX utterance under a split folder (see :class:`_SplitFiles`)."""
    copies: dict[tuple[str, str], list[Path]] = {}
    transcripts: dict[tuple[str, str], Path] = {}
    for dr in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        for spk_dir in sorted(p for p in dr.iterdir() if p.is_dir()):
            for f in sorted(spk_dir.iterdir()):
                m = _AUDIO.match(f.name)
                if m:
                    copies.setdefault((spk_dir.name.upper(), m.group(1).upper()), []).append(f)
                t = _TRANSCRIPT.match(f.name)
                if t and (t.group(2).upper() == "TXT" or (spk_dir.name.upper(), t.group(1).upper()) not in transcripts):
                    transcripts[(spk_dir.name.upper(), t.group(1).upper())] = f  # named by its .TXT if it has one
    out = _SplitFiles()
    for key, files in copies.items():
        if len(files) == 1 or len({f.read_bytes() for f in files}) == 1:
            # Identical copies (a corpus unpacked twice, in two cases) leave no doubt: the first is used.
            out.audio[key] = files[0]
        else:
            out.problems[key] = (f"duplicate utterance id: {len(files)} audio files "
                                 f"({', '.join(map(str, files))}); every copy left out")
    for key, f in transcripts.items():
        if key not in copies:
            out.problems[key] = f"{f}: no audio file (.WAV) beside it"
    return out


def _sibling(audio: Path, ext: str) -> Path | None:
    stem = audio.name[: -len(".WAV")]
    for cand in (ext.upper(), ext.lower()):
        p = audio.with_name(stem + cand)
        if p.is_file():
            return p
    return None


def _normalise_words(sentence: str) -> str:
    """Lower-case words: letters (any script, so ``café`` stays whole) and apostrophes;
    digits, punctuation and underscores separate words, as for TIMIT's ASCII sentences.
    NFC first, so that a letter written with a combining accent stays one letter."""
    words = re.sub(r"[^\w' ]+|[\d_]+", " ", unicodedata.normalize("NFC", sentence).lower()).split()
    return " ".join(w.strip("'") for w in words if w.strip("'"))


def _read_utterance(spk: str, sent: str, audio: Path) -> tuple[str, str, str, float, Path]:
    """Validate one utterance and return (utt id, words, 48-phones, seconds, .PHN path)."""
    utt = f"{spk}_{sent}"
    phn = _sibling(audio, ".PHN")
    txt = _sibling(audio, ".TXT")
    if phn is None:
        raise AsrError(f"{audio}: no .PHN transcription beside it")
    if txt is None:
        raise AsrError(f"{audio}: no .TXT transcription beside it")
    info = audio_info(audio)  # unreadable, or a header that disagrees with the file's size
    segs = read_segments(phn)
    if info.frames < segs[-1].end - 1:
        raise AsrError(
            f"{audio}: truncated audio ({info.frames} samples, transcription ends at {segs[-1].end})"
        )
    phones = fold_phones([s.label for s in segs], MAP_61_TO_48, str(phn))
    try:
        raw = txt.read_bytes()
    except OSError as e:
        raise AsrError(f"{txt}: cannot read ({e.strerror})") from None
    try:
        sentence = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        # Guessing the encoding would put wrong words in the transcripts: left out instead.
        raise AsrError(f"{txt}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start})") from None
    words = _normalise_words(" ".join(sentence.split()[2:]))
    if not words:
        raise AsrError(f"{txt}: empty transcript")
    return utt, words, " ".join(phones), info.frames / info.samplerate, phn


def prepare_timit(
    root: str | os.PathLike, out_dir: str | os.PathLike, override: str = "data.root"
) -> PrepareReport:
    """Write Kaldi data dirs ``out_dir/{train,dev,test}`` from a TIMIT-layout corpus.

    A mini-TIMIT folder ``TEST_<SOURCE>/`` beside ``TEST/`` (the core-test speakers voiced
    by one synthesiser) gives one more data dir, ``test_<source>``.

    Utterances with a problem (unreadable or truncated audio, a header that disagrees with
    the file's size, a missing, empty or non-UTF-8 transcript, a phone label outside the
    61-phone set, an utterance id given by two different audio files, a transcription
    without audio) are skipped with one logged line each, and counted in the report. Each
    data dir is a stage of :mod:`asr.stage` (written atomically, ``done.json`` last),
    reused while the corpus files' contents are unchanged.

    Raises:
        AsrError: the corpus is missing or has the wrong layout, or a split ends up empty.
    """
    train_dir, test_dir = find_timit_root(root, override)
    out_dir = Path(out_dir)
    dev_spk, test_spk = set(dev_speakers()), set(test_speakers())
    found = {"train": _utterance_files(train_dir)}
    test_files = _utterance_files(test_dir)
    found["dev"] = test_files.of_speakers(dev_spk)
    found["test"] = test_files.of_speakers(test_spk)
    # mini-TIMIT's one-synthesiser test sets (TEST_PIPER/ -> test_piper), beside TEST/.
    for extra in sorted(p for p in test_dir.parent.iterdir() if p.is_dir() and _EXTRA_TEST.match(p.name)):
        found[extra.name.lower()] = _utterance_files(extra).of_speakers(test_spk)
    sources = {split: f.audio for split, f in found.items()}
    splits = tuple(sources)
    phone_map = hashlib.sha256(resources.files("asr.data").joinpath("resources/timit_phone_map.tsv").read_bytes())
    keys = {split: {"sources": _fingerprint(split, sources[split], phone_map.hexdigest(), found[split].problems)}
            for split in splits}
    done = {split: read_done(out_dir / split) for split in splits}
    todo = [split for split in splits
            if (done[split] or {}).get("fingerprint") != stage_fingerprint(keys[split], _VERSION, {})
            or not audio_present(out_dir / split)]
    if not todo:
        log.info("data dirs in %s are up to date, reusing them", out_dir)
    dirs: dict[str, DataDir] = {}
    skipped: dict[str, list[str]] = {}
    for split in todo:
        d = DataDir()
        phn_scp: dict[str, str] = {}
        skipped[split] = []
        for (spk, sent), problem in sorted(found[split].problems.items()):
            log.warning("skipping %s_%s: %s", spk, sent, problem)
            skipped[split].append(f"{spk}_{sent}: {problem}")
        for (spk, sent), audio in sorted(sources[split].items()):
            try:
                utt, words, phones, dur, phn = _read_utterance(spk, sent, audio)
            except AsrError as e:
                log.warning("skipping %s_%s: %s", spk, sent, e)
                skipped[split].append(f"{spk}_{sent}: {e}")
                continue
            d.wav[utt] = str(audio.resolve())
            d.text[utt] = words
            d.phones[utt] = phones
            d.utt2spk[utt] = spk
            d.utt2dur[utt] = dur
            phn_scp[utt] = str(phn.resolve())
        if not d.utt2spk:
            where = train_dir if split == "train" else test_dir
            raise AsrError(f"{where}: no usable utterances for the '{split}' set")
        d.extra["phn.scp"] = phn_scp
        dirs[split] = d
    # Written only once every split is known to be usable: a failure leaves nothing behind.
    for split, d in dirs.items():
        summary = {"num_utts": len(d.utt2spk), "num_speakers": len(d.spk2utt),
                   "seconds": sum(d.utt2dur.values()), "skipped": skipped[split]}
        done[split] = {"summary": summary}
        run_stage(out_dir / split, keys[split], lambda tmp, d=d: (write_data_tables(d, tmp), summary)[1],
                  name=f"data/{split}", version=_VERSION, check=audio_present)
    report = PrepareReport()
    for split in splits:
        info = done[split]["summary"]
        report.num_utts[split] = info["num_utts"]
        report.num_speakers[split] = info["num_speakers"]
        report.seconds[split] = info["seconds"]
        report.skipped += info["skipped"]
    if report.skipped:
        log.warning("skipped %d utterance(s) in total", len(report.skipped))
    return report


def _fingerprint(split: str, sources: dict[tuple[str, str], Path], phone_map: str,
                 problems: dict[tuple[str, str], str] | None = None) -> str:
    """Content hash of every source file (audio, .PHN, .TXT) of a split and of the phone map,
    and of the utterance ids found unusable (``problems``: duplicates, transcripts without audio).

    Contents, not mtimes, so that the same corpus gives the same stamp wherever it lies.
    """
    h = hashlib.sha256(phone_map.encode())
    for spk, sent in sorted(problems or {}):  # none: the stamp of a clean corpus is as before
        h.update(f"{split} {spk} {sent} unusable\n".encode())
    for (spk, sent), audio in sorted(sources.items()):
        h.update(f"{split} {spk} {sent}\n".encode())
        for p in [audio] + [q for q in (_sibling(audio, e) for e in (".PHN", ".TXT")) if q]:
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def read_phn_scp(data_dir: str | os.PathLike) -> dict[str, Path]:
    """utt -> ``.PHN`` path from a data dir's ``phn.scp`` (written by :func:`prepare_timit`)."""
    path = Path(data_dir) / "phn.scp"
    if not path.is_file():
        raise AsrError(f"{path}: not found (ground-truth segments exist only for TIMIT-layout corpora)")
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        utt, _, p = line.partition(" ")
        out[utt] = Path(p)
    return out
