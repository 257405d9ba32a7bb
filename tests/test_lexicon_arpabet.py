"""ARPAbet lexicons (LibriSpeech's ``librispeech-lexicon.txt``, CMUdict) in ``read_lexicon``,
and the formats it read before (mini-TIMIT's ``lexicon.txt``, LDC ``TIMITDIC.TXT``) unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from asr.data.lexicon import ARPABET, read_lexicon
from asr.data.phones import TIMIT48, TIMIT61
from asr.errors import AsrError


def test_arpabet_loses_stress_gets_closures_and_folds_to_48(tmp_path: Path) -> None:
    path = tmp_path / "librispeech-lexicon.txt"
    # Tabs or spaces between word and phones; ;;; comments as in CMUdict; apostrophes in words.
    path.write_text(";;; a CMUdict-style comment\n"
                    "A\tAH0\nA\tEY1\nA\tAH0\n"
                    "ABOUT\tAH0 B AW1 T\n"
                    "CHANGE  CH EY1 N JH\n"
                    "DON'T D OW1 N T\n"
                    "MAN'S\tM AE1 N Z\n"
                    "GARAGE G ER0 AA1 ZH\n"
                    "KIDS K IH1 D Z\n")
    lex = read_lexicon(path)
    assert lex["A"] == [("ah",), ("ey",)]  # distinct pronunciations, file order
    assert lex["ABOUT"] == [("ah", "vcl", "b", "aw", "cl", "t")]
    assert lex["CHANGE"] == [("cl", "ch", "ey", "n", "vcl", "jh")]  # affricates too, as TIMITDIC's
    assert lex["DON'T"] == [("vcl", "d", "ow", "n", "cl", "t")]
    assert lex["MAN'S"] == [("m", "ae", "n", "z")]
    assert lex["GARAGE"] == [("vcl", "g", "er", "aa", "zh")]
    assert lex["KIDS"] == [("cl", "k", "ih", "vcl", "d", "z")]
    assert set(lex) == {"A", "ABOUT", "CHANGE", "DON'T", "MAN'S", "GARAGE", "KIDS"}  # words as written


def test_arpabet_is_39_phones_each_a_timit_61_label() -> None:
    assert len(ARPABET) == 39 and set(ARPABET) <= set(TIMIT61)


def test_every_arpabet_phone_gives_48_set_phones(tmp_path: Path) -> None:
    path = tmp_path / "all.txt"
    vowels = {"aa", "ae", "ah", "ao", "aw", "ay", "eh", "er", "ey", "ih", "iy", "ow", "oy", "uh", "uw"}
    path.write_text("".join(f"W{i} {p.upper()}{'1' if p in vowels else ''}\n" for i, p in enumerate(ARPABET)))
    lex = read_lexicon(path)
    assert len(lex) == 39 and all(p in TIMIT48 for prons in lex.values() for pron in prons for p in pron)


def test_a_bad_arpabet_phone_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "lexicon.txt"
    for bad, label in (("XX1", "XX1"), ("ah0", "ah0"), ("AX", "AX"), ("AH3", "AH3")):
        path.write_text(f"ABOUT AH0 B AW1 T\nTHE DH AH0\nCAT K AE1 T\nODD AA1 {bad}\n")
        with pytest.raises(AsrError) as err:
            read_lexicon(path)
        assert str(err.value) == (f"{path}:4: phone label '{label}' is not in the ARPAbet phone set "
                                  "(the lexicon's first entries are ARPAbet)")
    path.write_text("ABOUT AH0 B AW1 T\nTHE\n")
    with pytest.raises(AsrError, match=r"lexicon.txt:2: expected a word and its phones, got 'THE'"):
        read_lexicon(path)


def test_timit_61_lexicons_are_unchanged_lower_or_upper_case_words(tmp_path: Path) -> None:
    path = tmp_path / "lexicon.txt"
    # mini-TIMIT's (lower-case words) and mini-LibriSpeech's copy (upper-case words): TIMIT-61 labels.
    path.write_text("a ax\na ah\nthe dh ax\ncat kcl k ae tcl t\n")
    assert read_lexicon(path) == {"a": [("ax",), ("ah",)], "the": [("dh", "ax")],
                                  "cat": [("cl", "k", "ae", "cl", "t")]}
    path.write_text("A ax\nCAT kcl k ae tcl t\nDON'T dcl d ow n tcl t\nTHE dh ix\n")
    assert read_lexicon(path) == {"A": [("ax",)], "CAT": [("cl", "k", "ae", "cl", "t")],
                                  "DON'T": [("vcl", "d", "ow", "n", "cl", "t")], "THE": [("dh", "ix")]}
    # ARPAbet phones in a file mostly of TIMIT-61 labels are an error on their line, not a new format.
    path.write_text("a ax\nthe dh ax\ncat kcl k ae tcl t\nabout AH0 B AW1 T\n")
    with pytest.raises(AsrError, match=r"lexicon.txt:4: phone label 'AH0' is not in the TIMIT phone set"):
        read_lexicon(path)
    # A file in TIMITDIC.TXT's format under another name is not guessed either (as before).
    path.write_text("about  /ax b aw1 t/\n")
    with pytest.raises(AsrError, match=r"lexicon.txt:1: phone label '/ax' is not in the TIMIT phone set"):
        read_lexicon(path)


def test_timitdic_is_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "TIMITDIC.TXT"
    path.write_text("; comment\nabout  /ax b aw1 t/\nchange  /ch ey1 n jh/\nread~v_past  /r eh1 d/\n")
    assert read_lexicon(path) == {"about": [("ax", "vcl", "b", "aw", "cl", "t")],
                                  "change": [("cl", "ch", "ey", "n", "vcl", "jh")],
                                  "read": [("r", "eh", "vcl", "d")]}


def test_unreadable_and_empty_lexicons_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(AsrError, match=r"nowhere.txt: cannot read the lexicon \("):
        read_lexicon(tmp_path / "nowhere.txt")
    (tmp_path / "empty.txt").write_text(";;; only a comment\n\n")
    with pytest.raises(AsrError, match=r"empty.txt: the lexicon has no entries"):
        read_lexicon(tmp_path / "empty.txt")
