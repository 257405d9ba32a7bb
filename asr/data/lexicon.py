"""Pronunciation lexicons of TIMIT-layout corpora, in the 48 training phones.

* mini-TIMIT ships ``lexicon.txt`` beside ``TRAIN/`` and ``TEST/``: ``word p1 p2 ...`` in
  TIMIT-61 labels as in its ``.PHN`` files, closures included; it folds to 48 directly.
* LDC TIMIT's dictionary ``DOC/TIMITDIC.TXT`` is phonemic (``word  /ax b aa1 r t/``, stress
  digits, no closures). Its entries get a closure before every stop and affricate, as the
  phonetic ``.PHN`` transcriptions have them (``bcl b``, ``tcl ch``, ...), so that
  pronunciations use the same 48 units as the acoustic models; stress digits are dropped.
  Homograph tags (``read~v_past``) are removed.

A corpus with neither gives None: word decoding is then skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

from asr.data.phones import MAP_61_TO_48, fold_phones
from asr.errors import AsrError

Lexicon = dict[str, list[tuple[str, ...]]]  # word -> distinct pronunciations (48-set), in file order

# Closure inserted before each stop / affricate of a phonemic pronunciation (61-set labels).
_CLOSURE = {"b": "bcl", "d": "dcl", "g": "gcl", "p": "pcl", "t": "tcl", "k": "kcl", "jh": "dcl", "ch": "tcl"}


def _child(parent: Path, name: str) -> Path | None:
    if not parent.is_dir():
        return None
    for entry in sorted(parent.iterdir()):
        if entry.name.upper() == name.upper():
            return entry
    return None


def find_lexicon(corpus_root: str | os.PathLike) -> Path | None:
    """The corpus' lexicon file: ``lexicon.txt`` in the root (mini-TIMIT), or
    ``DOC/TIMITDIC.TXT`` in the root or its parent (LDC discs nest ``TIMIT/`` inside ``timit/``)."""
    root = Path(corpus_root)
    own = _child(root, "lexicon.txt")
    if own is not None and own.is_file():
        return own
    for base in (root, root.parent):
        doc = _child(base, "DOC")
        dic = _child(doc, "TIMITDIC.TXT") if doc is not None else None
        if dic is not None and dic.is_file():
            return dic
    return None


def _add(lex: Lexicon, word: str, pron: list[str]) -> None:
    prons = lex.setdefault(word, [])
    if tuple(pron) not in prons:
        prons.append(tuple(pron))


def read_lexicon(path: str | os.PathLike) -> Lexicon:
    """Read a mini-TIMIT ``lexicon.txt`` or an LDC ``TIMITDIC.TXT`` into 48-set pronunciations.

    Raises:
        AsrError: unreadable file, or a line with no pronunciation or an unknown phone,
            naming the file and line.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise AsrError(f"{path}: cannot read the lexicon ({e.strerror})") from None
    phonemic = path.name.upper() == "TIMITDIC.TXT"
    lex: Lexicon = {}
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        where = f"{path}:{lineno}"
        if phonemic:
            word, sep, rest = line.partition("/")
            word = word.strip().split("~")[0].lower()
            labels = [p.rstrip("0123456789") for p in rest.strip().strip("/").split()]
            pron61 = []
            for p in labels:
                if p in _CLOSURE:
                    pron61.append(_CLOSURE[p])
                pron61.append(p)
        else:
            word, *pron61 = line.split()
        if not word or not pron61:
            raise AsrError(f"{where}: expected a word and its phones, got {line!r}")
        pron = fold_phones(pron61, MAP_61_TO_48, where)
        if pron:
            _add(lex, word, pron)
    if not lex:
        raise AsrError(f"{path}: the lexicon has no entries")
    return lex


def write_lexicon(lex: Lexicon, path: str | os.PathLike) -> None:
    """Kaldi ``lexicon.txt``: ``word p1 p2 ...``, one line per pronunciation, words sorted."""
    with open(path, "w", encoding="utf-8") as f:
        for word in sorted(lex):
            for pron in lex[word]:
                f.write(" ".join([word, *pron]) + "\n")
