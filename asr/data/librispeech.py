"""LibriSpeech (and mini-LibriSpeech) -> one Kaldi data dir per subset.

Layout read (OpenSLR SLR12)::

    <root>/<subset>/<SPEAKER>/<CHAPTER>/<SPEAKER>-<CHAPTER>-<NNNN>.flac
    <root>/<subset>/<SPEAKER>/<CHAPTER>/<SPEAKER>-<CHAPTER>.trans.txt   lines "UTTID WORD WORD ..."

``root`` is the folder holding the subset folders (``LibriSpeech/`` as the tarballs unpack),
or its parent. The standard subsets are :data:`SUBSETS`; OpenSLR's own Mini LibriSpeech
(SLR31: ``train-clean-5``, ``dev-clean-2``) is read too. Subset ``dev-clean`` becomes the
data dir ``dev_clean`` with ``wav.scp`` (absolute FLAC paths), ``text`` (the transcript's
words, upper case as written), ``utt2spk`` (the speaker is the ``<SPEAKER>`` folder:
LibriSpeech's utterance ids already start with it, as Kaldi wants), ``spk2utt`` and
``utt2dur`` (seconds, from the FLAC header). Given a pronunciation lexicon (LibriSpeech's
ARPAbet ``librispeech-lexicon.txt``, or any :func:`asr.data.lexicon.read_lexicon` reads), each
data dir also gets ``text.phn``: 48-set phones as the TIMIT reader writes them (``sil``, the
first pronunciation of each word, ``sil``), which the GMM-HMM aligner trains on.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from asr.data.kaldi_dir import DataDir, audio_present, write_data_tables
from asr.data.lexicon import Lexicon, read_lexicon
from asr.data.phones import SILENCE_48
from asr.errors import AsrError
from asr.stage import read_done, run_stage, stage_fingerprint

log = logging.getLogger(__name__)

SUBSETS = ("train-clean-100", "train-clean-360", "train-other-500",
           "dev-clean", "dev-other", "test-clean", "test-other")
# OpenSLR's Mini LibriSpeech (SLR31) subsets, recognised as well when looking for subsets.
EXTRA_SUBSETS = ("train-clean-5", "dev-clean-2")
_VERSION = 1  # of the data dirs written (each subset is a stage of asr.stage)

# Why an utterance was left out, as the summary counts them.
MISSING_AUDIO = "missing FLAC"
NO_TRANSCRIPT = "no transcript line"
EMPTY_TRANSCRIPT = "empty transcript"
BAD_AUDIO = "unreadable or empty FLAC"
DUPLICATE = "duplicate id"
BAD_ID = "bad utterance id"
NOT_UTF8 = "transcript not UTF-8"


def data_dir_name(subset: str) -> str:
    """The data dir of a subset: ``train-clean-100`` -> ``train_clean_100``."""
    return subset.replace("-", "_")


@dataclass
class LibriSpeechReport:
    """What preparation found, per data dir (``train_clean_100``, ...): utterances kept,
    speakers, seconds of audio; and every utterance left out (one message each), by reason.
    Prepared with a lexicon, also per data dir: utterances with a ``text.phn`` line, and
    those without one (a word not in the lexicon; they stay in the data dir)."""

    num_utts: dict[str, int] = field(default_factory=dict)
    num_speakers: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    num_skipped: dict[str, int] = field(default_factory=dict)  # reason -> utterances
    num_phones: dict[str, int] = field(default_factory=dict)  # only data dirs prepared with a lexicon
    num_oov: dict[str, int] = field(default_factory=dict)  # utterances with no text.phn line (OOV words)

    def summary(self) -> str:
        lines = [
            f"{name:>15}: {self.num_utts[name]:6d} utts, {self.num_speakers[name]:4d} speakers, "
            f"{self.seconds[name] / 60:8.1f} min"
            + (f", text.phn for {self.num_phones[name]} ({self.num_oov[name]} with words not in the lexicon)"
               if name in self.num_phones else "")
            for name in self.num_utts
        ]
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.num_skipped.items()) if n)
        lines.append(f"skipped utterances: {len(self.skipped)}" + (f" ({reasons})" if reasons else ""))
        return "\n".join(lines)


def _hint(override: str) -> str:
    return (f"set {override}=/path/to/LibriSpeech (the folder holding train-clean-100/, dev-clean/, ...), "
            "or make the synthetic corpus with: asr-prepare corpus=mini_librispeech out=DIR")


def find_librispeech_subsets(root: str | os.PathLike, subsets: Sequence[str] | None = None,
                             override: str = "data.root") -> dict[str, Path]:
    """Locate the subset folders under ``root`` (or ``root/LibriSpeech``).

    Args:
        root: the corpus folder.
        subsets: subset names to use (``dev-clean`` or ``dev_clean``); None: every
            standard one found (:data:`SUBSETS`, then :data:`EXTRA_SUBSETS`).
        override: the config key that sets ``root``, named in the error message.

    Returns:
        subset name -> its folder, in the order asked for (or of :data:`SUBSETS`).

    Raises:
        AsrError: ``root`` is missing, holds none of the subsets, or lacks one asked for;
            the message names the folder looked in and the override to set.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise AsrError(f"{root}: LibriSpeech corpus directory not found; {_hint(override)}")
    wanted = [s.replace("_", "-") for s in subsets] if subsets is not None else [*SUBSETS, *EXTRA_SUBSETS]
    candidates = [root] + ([root / "LibriSpeech"] if (root / "LibriSpeech").is_dir() else [])
    for base in candidates:
        found = {s: base / s for s in wanted if (base / s).is_dir()}
        if subsets is None and found:
            return found
        if subsets is not None and len(found) == len(wanted):
            return found
    if subsets is not None and wanted:
        missing = [s for s in wanted if not any((b / s).is_dir() for b in candidates)]
        present = sorted(p.name for b in candidates for p in b.iterdir() if p.is_dir())
        raise AsrError(f"{root}: no subset folder {', '.join(missing)} (found: {', '.join(present) or 'none'}); "
                       f"{_hint(override)}")
    raise AsrError(f"{root}: no LibriSpeech subset folder ({', '.join(SUBSETS)}) in it; {_hint(override)}")


@dataclass(frozen=True)
class _Problem:
    """One utterance left out: why (a reason constant above), which, and the line to log."""

    reason: str
    utt: str
    message: str
    logged: bool = False  # already reported by a line that covers several utterances


@dataclass(frozen=True)
class _Line:
    """One transcript line: utterance id, words, and where it was read."""

    utt: str
    words: str
    where: str  # "<trans.txt>:<line number>"
    chapter: Path


def _scan_subset(subset_dir: Path) -> tuple[list[_Line], dict[Path, dict[str, Path]], list[_Problem]]:
    """Transcript lines and FLAC files of one subset, without opening any audio.

    Returns:
        (transcript lines in file order, chapter folder -> {utt id: FLAC path}, problems
        found so far).
    """
    lines: list[_Line] = []
    flacs: dict[Path, dict[str, Path]] = {}
    problems: list[_Problem] = []
    for spk_dir in sorted(p for p in subset_dir.iterdir() if p.is_dir()):
        for chap_dir in sorted(p for p in spk_dir.iterdir() if p.is_dir()):
            files = sorted(chap_dir.iterdir())
            flacs[chap_dir] = {f.name[: -len(".flac")]: f for f in files if f.name.lower().endswith(".flac")}
            transcripts = [f for f in files if f.name.endswith(".trans.txt")]
            if not transcripts and flacs[chap_dir]:
                # One line for the chapter, not one per file: the cause is the same.
                n = len(flacs[chap_dir])
                log.warning("skipping %d utterance(s) of %s: no %s-%s.trans.txt in it",
                            n, chap_dir, spk_dir.name, chap_dir.name)
                problems += [_Problem(NO_TRANSCRIPT, u, f"{chap_dir}: no transcript file", logged=True)
                             for u in flacs[chap_dir]]
                continue
            prefix = f"{spk_dir.name}-{chap_dir.name}-"
            for trans in transcripts:
                try:
                    data = trans.read_bytes()
                except OSError as e:
                    raise AsrError(f"{trans}: cannot read ({e.strerror})") from None
                for lineno, raw_bytes in enumerate(data.splitlines(), 1):
                    where = f"{trans}:{lineno}"
                    try:
                        raw = raw_bytes.decode("utf-8")
                    except UnicodeDecodeError:  # left out, not guessed: a wrong guess corrupts the text
                        utt = raw_bytes.split(maxsplit=1)[0].decode("ascii", errors="replace") if raw_bytes.strip() else "?"
                        problems.append(_Problem(NOT_UTF8, utt, f"{where}: not UTF-8 text; utterance {utt} left out"))
                        continue
                    if not raw.strip():
                        continue
                    utt, *words = raw.split()
                    if not utt.startswith(prefix):
                        problems.append(_Problem(BAD_ID, utt, f"{where}: utterance id {utt} does not start "
                                                              f"with {prefix} (the speaker-chapter of its folder)"))
                        continue
                    lines.append(_Line(utt, " ".join(words), where, chap_dir))
    return lines, flacs, problems


def _read_subset(subset_dir: Path) -> tuple[DataDir, list[_Problem]]:
    """Validate every utterance of a subset and return its data dir and the problems found.

    Problems (each one utterance left out): a transcript line whose FLAC is missing, a
    FLAC no transcript line names, a line with no words, an unreadable or empty FLAC,
    an utterance id given twice (every copy is left out: which one is right is unknown).
    Only FLAC headers are read: a file truncated after its header is found when the
    audio is loaded (features), not here.
    """
    lines, flacs, problems = _scan_subset(subset_dir)
    places: dict[str, list[str]] = {}
    for line in lines:
        places.setdefault(line.utt, []).append(line.where)
    for utt, where in places.items():
        if len(where) > 1:
            problems.append(_Problem(DUPLICATE, utt, f"utterance id {utt} appears {len(where)} times "
                                                     f"({', '.join(where)}); every copy left out"))
    # A FLAC is reported here only if nothing above already accounts for it.
    accounted = {(line.chapter, line.utt) for line in lines} | {(None, p.utt) for p in problems}
    for chap_dir, files in flacs.items():
        for utt, path in files.items():
            if (chap_dir, utt) not in accounted and (None, utt) not in accounted:
                problems.append(_Problem(NO_TRANSCRIPT, utt, f"{path}: no transcript line for {utt} "
                                                             f"in its chapter's .trans.txt"))
    d = DataDir()
    for line in lines:
        if len(places[line.utt]) > 1:
            continue
        audio = flacs[line.chapter].get(line.utt)
        if audio is None:
            problems.append(_Problem(MISSING_AUDIO, line.utt, f"{line.where}: no FLAC file "
                                                              f"{line.chapter / (line.utt + '.flac')}"))
            continue
        if not line.words:
            problems.append(_Problem(EMPTY_TRANSCRIPT, line.utt, f"{line.where}: empty transcript (no words)"))
            continue
        try:
            info = sf.info(str(audio))
        except (RuntimeError, sf.LibsndfileError, OSError) as e:
            reason = getattr(e, "error_string", None) or str(e)
            problems.append(_Problem(BAD_AUDIO, line.utt, f"{audio}: cannot read audio ({reason})"))
            continue
        if info.frames <= 0:
            problems.append(_Problem(BAD_AUDIO, line.utt, f"{audio}: audio is empty (0 samples)"))
            continue
        d.wav[line.utt] = str(audio.resolve())
        d.text[line.utt] = line.words
        d.utt2spk[line.utt] = line.utt.split("-", 1)[0]
        d.utt2dur[line.utt] = info.frames / info.samplerate
    problems.sort(key=lambda p: p.utt)  # logged and reported in utterance order
    for p in problems:
        if not p.logged:
            log.warning("skipping %s: %s", p.utt, p.message)
    return d, problems


def _fingerprint(subset_dir: Path) -> str:
    """Hash of the subset's file names, sizes and modification times (FLAC and transcripts).

    Not the contents: hashing LibriSpeech's 60 GB of audio on every run would cost more
    than preparing it. A file rewritten in place gets a new mtime and so a new stamp.
    """
    h = hashlib.sha256()
    for path in sorted(subset_dir.rglob("*")):
        if path.is_file() and (path.name.lower().endswith(".flac") or path.name.endswith(".trans.txt")):
            st = path.stat()
            h.update(f"{path.relative_to(subset_dir)} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _lexicon_key(path: Path) -> dict:
    """The lexicon's part of a subset's stage key: where it is, its size and mtime (as for the
    corpus files, not its contents: a lexicon edited in place gets a new mtime)."""
    try:
        st = path.stat()
    except OSError as e:
        raise AsrError(f"{path}: cannot read the lexicon ({e.strerror})") from None
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _phone_transcripts(d: DataDir, lex: Lexicon) -> dict[str, list[str]]:
    """Fill ``d.phones`` (``text.phn``): per utterance ``sil``, the first pronunciation of each
    word in order, ``sil`` (48-set phones, space-separated), as the TIMIT reader writes them.

    Returns:
        utterance -> its words missing from ``lex`` (distinct, in order), for each utterance
        left without a ``text.phn`` line (a guessed pronunciation would mislead the aligner).
    """
    oov: dict[str, list[str]] = {}
    for utt in d.utts:
        words = d.text[utt].split()
        missing = [w for w in dict.fromkeys(words) if w not in lex]
        if missing:
            oov[utt] = missing
            continue
        d.phones[utt] = " ".join([SILENCE_48, *(p for w in words for p in lex[w][0]), SILENCE_48])
    return oov


def prepare_librispeech(root: str | os.PathLike, out_dir: str | os.PathLike, subsets: Sequence[str] | None = None,
                        override: str = "data.root", lexicon: str | os.PathLike | None = None) -> LibriSpeechReport:
    """Write one Kaldi data dir ``out_dir/<subset with '_'>`` per LibriSpeech subset.

    Args:
        root: the folder holding the subset folders (or its parent).
        out_dir: where the data dirs go (``out_dir/dev_clean``, ...).
        subsets: subsets to prepare (``dev-clean`` or ``dev_clean``); None: every
            standard subset found under ``root``.
        override: the config key that sets ``root`` (named in errors).
        lexicon: a pronunciation lexicon (:func:`asr.data.lexicon.read_lexicon`; words looked
            up as written, upper case); each data dir then also gets ``text.phn``. None: no
            ``text.phn``.

    Utterances with a problem (see :func:`_read_subset`) are left out with one logged line
    each and counted in the report. An utterance with a word not in the lexicon keeps its
    audio and words but gets no ``text.phn`` line: one logged line per subset (the count and
    the first such utterance) and a count in the report. Each data dir is a stage of
    :mod:`asr.stage` (written atomically, ``done.json`` last), reused while the subset's
    files (and the lexicon's path, size and mtime) are unchanged.

    Returns:
        the report (its ``summary()`` is the text ``asr-prepare`` prints).

    Raises:
        AsrError: no subset found (naming the folder and ``override``), an unreadable
            transcript file, an unreadable or invalid lexicon (naming its file and line), or
            a subset with no usable utterance (nothing is written then).
    """
    found = find_librispeech_subsets(root, subsets, override)
    out_dir = Path(out_dir)
    names = {subset: data_dir_name(subset) for subset in found}
    keys = {s: {"subset": str(p.resolve()), "files": _fingerprint(p)} for s, p in found.items()}
    lexicon_path = Path(lexicon).expanduser() if lexicon is not None else None
    if lexicon_path is not None:  # without one the key stays as before: existing data dirs are reused
        lexicon_key = _lexicon_key(lexicon_path)
        for key in keys.values():
            key["lexicon"] = lexicon_key
    done = {s: read_done(out_dir / names[s]) for s in found}
    todo = [s for s in found
            if (done[s] or {}).get("fingerprint") != stage_fingerprint(keys[s], _VERSION, {})
            or not audio_present(out_dir / names[s])]
    if not todo:
        log.info("data dirs in %s are up to date, reusing them", out_dir)
    # Read (and checked) before any audio: a bad lexicon fails at once. Not read when all is reused.
    lex = read_lexicon(lexicon_path) if lexicon_path is not None and todo else None
    built: dict[str, tuple[DataDir, list[_Problem], dict[str, list[str]]]] = {}
    for subset in todo:
        d, problems = _read_subset(found[subset])
        if not d.utt2spk:
            raise AsrError(f"{found[subset]}: no usable utterances in the '{subset}' subset")
        oov = _phone_transcripts(d, lex) if lex is not None else {}
        if oov:
            first, words = next(iter(oov.items()))
            log.warning("%s: %d utterance(s) with words not in the lexicon %s get no text.phn line "
                        "(audio and words kept); the first is %s (%s)", names[subset], len(oov), lexicon_path,
                        first, " ".join(words[:3]) + (" ..." if len(words) > 3 else ""))
        built[subset] = d, problems, oov
    # Written only once every subset is known to be usable: a failure leaves nothing behind.
    for subset, (d, problems, oov) in built.items():
        summary = {"num_utts": len(d.utt2spk), "num_speakers": len(d.spk2utt),
                   "seconds": round(sum(d.utt2dur.values()), 3),
                   "skipped": [f"{p.utt}: {p.message}" for p in problems],
                   "num_skipped": dict(Counter(p.reason for p in problems))}
        if lex is not None:
            summary.update(num_phones=len(d.phones), num_oov=len(oov))
        done[subset] = {"summary": summary}
        run_stage(out_dir / names[subset], keys[subset],
                  lambda tmp, d=d, summary=summary: (write_data_tables(d, tmp), summary)[1],
                  name=f"data/{names[subset]}", version=_VERSION, check=audio_present)
    report = LibriSpeechReport()
    for subset in found:
        info, name = done[subset]["summary"], names[subset]
        report.num_utts[name] = info["num_utts"]
        report.num_speakers[name] = info["num_speakers"]
        report.seconds[name] = info["seconds"]
        report.skipped += info["skipped"]
        for reason, n in info["num_skipped"].items():
            report.num_skipped[reason] = report.num_skipped.get(reason, 0) + n
        if "num_phones" in info:
            report.num_phones[name], report.num_oov[name] = info["num_phones"], info["num_oov"]
    if report.skipped:
        log.warning("skipped %d utterance(s) in total", len(report.skipped))
    return report
