"""Pronunciation lexicons, in the 48 training phones of TIMIT.

* mini-TIMIT ships ``lexicon.txt`` beside ``TRAIN/`` and ``TEST/``: ``word p1 p2 ...`` in
  TIMIT-61 labels as in its ``.PHN`` files, closures included; it folds to 48 directly.
  Words may be lower case (mini-TIMIT) or upper case (mini-LibriSpeech's copy of it).
* LDC TIMIT's dictionary ``DOC/TIMITDIC.TXT`` is phonemic (``word  /ax b aa1 r t/``, stress
  digits, no closures). Its entries get a closure before every stop and affricate, as the
  phonetic ``.PHN`` transcriptions have them (``bcl b``, ``tcl ch``, ...), so that
  pronunciations use the same 48 units as the acoustic models; stress digits are dropped.
  Homograph tags (``read~v_past``) are removed.
* ARPAbet lexicons such as LibriSpeech's ``librispeech-lexicon.txt`` (OpenSLR 11) or CMUdict:
  ``WORD<tab or spaces>P1 P2 ...`` in the 39 upper-case ARPAbet phones, stress digits on
  vowels (``ABOUT AH0 B AW1 T``). Told apart from the ``lexicon.txt`` format by content: most
  phones of the first entries are ARPAbet, upper case (``[A-Z]+[0-2]?``; TIMIT-61 labels are
  lower case); then every phone must be.
  Converted as ``TIMITDIC.TXT`` is (lower case, no stress, a closure before each stop and
  affricate, then 61 -> 48); words are kept as written (upper case, apostrophes included,
  as in LibriSpeech's transcripts).

:func:`find_lexicon` finds the first two in a corpus; a corpus with neither gives None:
word decoding is then skipped.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from asr.data.phones import MAP_61_TO_48, fold_phones
from asr.errors import AsrError

Lexicon = dict[str, list[tuple[str, ...]]]  # word -> distinct pronunciations (48-set), in file order

# Closure inserted before each stop / affricate of a phonemic pronunciation (61-set labels).
_CLOSURE = {"b": "bcl", "d": "dcl", "g": "gcl", "p": "pcl", "t": "tcl", "k": "kcl", "jh": "dcl", "ch": "tcl"}

# The 39 ARPAbet phones of CMUdict and LibriSpeech's lexicon (lower-cased: each is a TIMIT-61 label).
ARPABET = ("aa", "ae", "ah", "ao", "aw", "ay", "b", "ch", "d", "dh", "eh", "er", "ey", "f", "g", "hh", "ih",
           "iy", "jh", "k", "l", "m", "n", "ng", "ow", "oy", "p", "r", "s", "sh", "t", "th", "uh", "uw", "v",
           "w", "y", "z", "zh")
_ARPABET_SHAPE = re.compile(r"[A-Z]+[0-2]?")  # a phone, upper case, with its stress digit if a vowel
_ARPABET_SET = frozenset(ARPABET)
_SNIFF_ENTRIES = 10  # entries looked at to tell an ARPAbet lexicon from a TIMIT-61 one


def _with_closures(phonemic: list[str]) -> list[str]:
    """61-set labels of a phonemic pronunciation: a closure before each stop and affricate,
    as TIMIT's phonetic ``.PHN`` files have them (``bcl b``, ``tcl ch``)."""
    out = []
    for p in phonemic:
        if p in _CLOSURE:
            out.append(_CLOSURE[p])
        out.append(p)
    return out


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


def _is_arpabet_phone(token: str) -> bool:
    return bool(_ARPABET_SHAPE.fullmatch(token)) and token.rstrip("012").lower() in _ARPABET_SET


def _is_arpabet(lines: list[str]) -> bool:
    """Whether most phones of the first entries (comments skipped) are ARPAbet: upper case, an
    optional stress digit, one of :data:`ARPABET`. No working ``lexicon.txt`` has one (TIMIT-61
    labels are lower case); most, not all, so that a typo in an ARPAbet file is reported on its
    own line rather than turning the whole file into TIMIT-61 labels."""
    entries = [line.split()[1:] for line in lines if line.strip() and not line.lstrip().startswith(";")]
    phones = [p for pron in entries[:_SNIFF_ENTRIES] for p in pron]
    return 2 * sum(map(_is_arpabet_phone, phones)) > len(phones)


def read_lexicon(path: str | os.PathLike) -> Lexicon:
    """Read a mini-TIMIT ``lexicon.txt``, an LDC ``TIMITDIC.TXT`` or an ARPAbet lexicon
    (LibriSpeech's, CMUdict) into 48-set pronunciations. The format is told by the file's name
    (``TIMITDIC.TXT``) or else by its first entries (see the module docstring).

    Returns:
        word (as written; TIMITDIC's lower-cased, without homograph tags) -> its distinct
        pronunciations in file order, each a tuple of 48-set phones.

    Raises:
        AsrError: unreadable file, no entries, or a line with no pronunciation or an unknown
            phone, naming the file and line.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise AsrError(f"{path}: cannot read the lexicon ({e.strerror})") from None
    phonemic = path.name.upper() == "TIMITDIC.TXT"
    arpabet = not phonemic and _is_arpabet(lines)
    lex: Lexicon = {}
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        where = f"{path}:{lineno}"
        if phonemic:
            word, sep, rest = line.partition("/")
            word = word.strip().split("~")[0].lower()
            pron61 = _with_closures([p.rstrip("0123456789") for p in rest.strip().strip("/").split()])
        elif arpabet:
            word, *tokens = line.split()
            for token in tokens:
                if not _is_arpabet_phone(token):
                    raise AsrError(f"{where}: phone label '{token}' is not in the ARPAbet phone set "
                                   "(the lexicon's first entries are ARPAbet)")
            pron61 = _with_closures([token.rstrip("012").lower() for token in tokens])
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
