"""mini-LibriSpeech: mini-TIMIT's synthetic speech laid out as LibriSpeech (FLAC, ``*.trans.txt``).

Not OpenSLR's "Mini LibriSpeech" (SLR31, real recordings): this corpus is synthesised
offline like mini-TIMIT (:mod:`asr.data.mini_timit`, espeak-ng and/or Piper voices, Harvard
sentences), so the LibriSpeech recipes run on a fresh machine. Layout written under ``out``::

    train-clean-100/<SPK>/<CHAP>/<SPK>-<CHAP>-<NNNN>.flac   mini-TIMIT's train speakers
    train-clean-100/<SPK>/<CHAP>/<SPK>-<CHAP>.trans.txt     "<SPK>-<CHAP>-<NNNN> WORD WORD ..."
    dev-clean/...                                            its dev speakers
    test-clean/...                                           its (core) test speakers
    SPEAKERS.TXT                                             LibriSpeech's table: id, sex, subset,
                                                             minutes, and the mini-TIMIT speaker
    lexicon.txt                                              WORD -> TIMIT-61 phones (closures
                                                             included), mini-TIMIT's, upper case
    .mini_librispeech.json                                   settings and summary; written last

Each mini-TIMIT speaker (in its ``speakers.tsv`` order: train, dev, test) becomes speaker
``1000 + k`` with one chapter ``100000 + k``; its sentences are numbered ``0000``, ``0001``, ...
in Harvard order. Words are mini-TIMIT's ``.TXT`` sentence in upper case, punctuation dropped,
inner apostrophes kept (``IT'S``), as LibriSpeech writes them. The audio samples are
mini-TIMIT's (16 kHz, 16-bit), losslessly in FLAC, so the same seed gives byte-identical
files. mini-TIMIT is synthesised into a work folder first and removed once re-laid out:
``SPEAKERS.TXT`` names each speaker's mini-TIMIT id, so its ``.PHN`` ground truth can be
made again with ``asr-prepare corpus=mini_timit`` (same size, seed and voices).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

import soundfile as sf

from asr.data.mini_timit import FORMAT_VERSION as MINI_TIMIT_VERSION
from asr.data.mini_timit import (
    SAMPLE_RATE,
    resolve_voices,
    split_folder,
    synthesize_mini_timit,
)
from asr.errors import AsrError

log = logging.getLogger(__name__)

MARKER = ".mini_librispeech.json"
FORMAT_VERSION = 1  # bump when the bytes written for a given size and seed change
SIZES = ("tiny", "small")  # mini-TIMIT's sizes of the same names
SUBSET_OF_SPLIT = {"train": "train-clean-100", "dev": "dev-clean", "test": "test-clean"}
_FIRST_SPEAKER, _FIRST_CHAPTER = 1000, 100000  # fixed-width numeric ids, as LibriSpeech's look
_WORD = re.compile(r"[A-Za-z0-9']+")


def transcript_words(sentence: str) -> list[str]:
    """LibriSpeech-style words of a sentence: upper case, no punctuation, inner apostrophes kept.

    >>> transcript_words("It's easy to tell the depth of a well.")
    ["IT'S", 'EASY', 'TO', 'TELL', 'THE', 'DEPTH', 'OF', 'A', 'WELL']
    """
    return [w for w in (m.group().strip("'").upper() for m in _WORD.finditer(sentence)) if w]


def _read_marker(out: Path) -> dict | None:
    try:
        return json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return None


def synthesize_mini_librispeech(out: str | os.PathLike, size: str = "tiny", seed: int = 0, num_workers: int = 2,
                                voices: tuple[str, ...] | None = None) -> dict:
    """Synthesise mini-LibriSpeech under ``out`` (see the module docstring), or reuse it.

    Built in a temporary sibling folder and renamed into place, the marker written last,
    so ``out`` is either absent or complete. An existing corpus with the same size, seed,
    voices and format versions is reused as it is.

    Args:
        out: corpus root to create; may exist only if empty or a complete mini-LibriSpeech.
        size: ``tiny`` (tests: 10 train, 2 dev, 2 test speakers, 6 sentences each) or
            ``small`` (about 1 h of training speech); mini-TIMIT's sizes.
        seed: the same seed gives byte-identical files.
        num_workers: synthesis processes (at least 1).
        voices: ``("espeak",)``, ``("piper",)`` or both; None: the size's default (mini-TIMIT's).

    Returns:
        Summary: ``size``, ``seed``, ``voices``, ``subsets`` (per subset ``speakers``,
        ``utterances``, ``seconds`` of audio), ``words_without_pronunciation`` (distinct
        transcript words missing from ``lexicon.txt``), ``seconds_taken`` (wall time),
        ``reused`` (True when an existing corpus was kept).

    Raises:
        AsrError: unknown size or voice; ``out`` holds something else; synthesis failing.
    """
    out = Path(out)
    if size not in SIZES:
        raise AsrError(f"unknown mini-LibriSpeech size '{size}'; valid sizes: {', '.join(SIZES)}")
    voices = resolve_voices(size, voices)
    wanted = {"size": size, "seed": seed, "voices": list(voices), "format_version": FORMAT_VERSION,
              "mini_timit_format_version": MINI_TIMIT_VERSION}
    marker = _read_marker(out)
    if marker is not None:
        have = {k: marker.get(k) for k in wanted}
        if have == wanted:
            return dict(marker["summary"], reused=True, seconds_taken=0.0)
        raise AsrError(f"{out}: holds mini-LibriSpeech " + " ".join(f"{k}={v}" for k, v in have.items())
                       + "; remove it or choose another out directory")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AsrError(f"{out}: exists and is not an empty directory or a mini-LibriSpeech corpus")
    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        work = tmp / ".mini_timit"
        synthesize_mini_timit(work, size=size, seed=seed, num_workers=num_workers, voices=voices)
        summary = _relayout(work, tmp)
        shutil.rmtree(work)  # the same audio again, in the TIMIT layout: not kept
        summary = {"size": size, "seed": seed, "voices": list(voices), **summary}
        (tmp / MARKER).write_text(json.dumps({**wanted, "summary": summary}, indent=1))
        if out.exists():
            out.rmdir()  # empty, checked above
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if summary["words_without_pronunciation"]:
        log.warning("mini-LibriSpeech: %d transcript word(s) have no entry in %s",
                    summary["words_without_pronunciation"], out / "lexicon.txt")
    return dict(summary, reused=False, seconds_taken=time.perf_counter() - start)


def _speakers(timit: Path) -> list[tuple[str, str, str]]:
    """(mini-TIMIT speaker id, split, region) from its ``speakers.tsv``, in its order."""
    rows = (timit / "speakers.tsv").read_text(encoding="ascii").splitlines()[1:]
    return [(f[0], f[1], f[2]) for f in (row.split("\t") for row in rows if row)]


def _relayout(timit: Path, out: Path) -> dict:
    """Write the LibriSpeech layout of the mini-TIMIT corpus ``timit`` into ``out``.

    Returns:
        ``subsets`` (per subset ``speakers``, ``utterances``, ``seconds``) and
        ``words_without_pronunciation``.
    """
    subsets: dict[str, dict] = {}
    table = [";ID   |SEX| SUBSET           |MINUTES| NAME"]
    words: set[str] = set()
    for k, (timit_id, split, region) in enumerate(_speakers(timit)):
        if split not in SUBSET_OF_SPLIT:
            raise AsrError(f"{timit / 'speakers.tsv'}: unexpected split '{split}' of speaker {timit_id}")
        subset = SUBSET_OF_SPLIT[split]
        spk, chap = str(_FIRST_SPEAKER + k), str(_FIRST_CHAPTER + k)
        folder = out / subset / spk / chap
        folder.mkdir(parents=True)
        source = timit / split_folder(split) / region / timit_id
        # SX<n>: Harvard sentence n; numbered in that order.
        sentences = sorted(source.glob("SX*.WAV"), key=lambda p: int(p.stem[2:]))
        lines, seconds = [], 0.0
        for n, wav in enumerate(sentences):
            utt = f"{spk}-{chap}-{n:04d}"
            audio, rate = sf.read(str(wav), dtype="int16")
            if rate != SAMPLE_RATE:
                raise AsrError(f"{wav}: {rate} Hz, expected {SAMPLE_RATE}")
            sf.write(str(folder / f"{utt}.flac"), audio, rate, format="FLAC", subtype="PCM_16")
            # .TXT: "<start> <end> <sentence>"
            sentence = wav.with_suffix(".TXT").read_text(encoding="ascii").split(maxsplit=2)[2]
            utt_words = transcript_words(sentence)
            words.update(utt_words)
            lines.append(f"{utt} {' '.join(utt_words)}\n")
            seconds += len(audio) / rate
        (folder / f"{spk}-{chap}.trans.txt").write_text("".join(lines), encoding="ascii")
        info = subsets.setdefault(subset, {"speakers": 0, "utterances": 0, "seconds": 0.0})
        info["speakers"] += 1
        info["utterances"] += len(lines)
        info["seconds"] = round(info["seconds"] + seconds, 3)
        table.append(f"{spk:<5} | {timit_id[0]} | {subset:<16} | {seconds / 60:5.2f} | "
                     f"mini-TIMIT {timit_id} ({split_folder(split)}/{region})")
    (out / "SPEAKERS.TXT").write_text("\n".join(table) + "\n", encoding="ascii")
    lexicon = _write_lexicon(timit / "lexicon.txt", out / "lexicon.txt")
    return {"subsets": subsets, "words_without_pronunciation": len(words - lexicon)}


def _write_lexicon(source: Path, dest: Path) -> set[str]:
    """mini-TIMIT's ``lexicon.txt`` (``word p1 p2 ...``, TIMIT-61) with upper-case words, sorted.

    Returns:
        the words it holds.
    """
    entries = sorted({(word.upper(), " ".join(phones))
                      for word, *phones in (line.split() for line in source.read_text(encoding="ascii").splitlines())
                      if phones})
    dest.write_text("".join(f"{w} {p}\n" for w, p in entries), encoding="ascii")
    return {w for w, _ in entries}
