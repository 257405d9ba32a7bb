"""Lexicons (mini-TIMIT's and LDC TIMIT's dictionary) and the lang folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asr.data.lexicon import find_lexicon, read_lexicon
from asr.data.phones import TIMIT48
from asr.errors import AsrError
from asr.graph.lang import write_lang
from asr.graph.ngram_lm import read_arpa, read_symbol_table


def test_timitdic_gets_closures_and_loses_stress_and_tags(tmp_path: Path) -> None:
    doc = tmp_path / "TIMIT" / "DOC"
    doc.mkdir(parents=True)
    (doc / "TIMITDIC.TXT").write_text("; comment\n;\nabout  /ax b aw1 t/\nchange  /ch ey1 n jh/\n"
                                      "read~v_past  /r eh1 d/\nread~v_pres  /r iy1 d/\n")
    path = find_lexicon(tmp_path / "TIMIT")
    assert path == doc / "TIMITDIC.TXT"
    lex = read_lexicon(path)
    # Closures fold to the 48-set's cl (voiceless) and vcl (voiced), as in .PHN files.
    assert lex["about"] == [("ax", "vcl", "b", "aw", "cl", "t")]
    assert lex["change"] == [("cl", "ch", "ey", "n", "vcl", "jh")]
    assert lex["read"] == [("r", "eh", "vcl", "d"), ("r", "iy", "vcl", "d")]
    assert all(p in TIMIT48 for prons in lex.values() for pron in prons for p in pron)


def test_mini_timit_lexicon_folds_61_to_48_and_bad_lines_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "lexicon.txt").write_text("a ax\na ah\nthe dh ax\ncat kcl k ae tcl t\n")
    lex = read_lexicon(find_lexicon(tmp_path))
    assert lex == {"a": [("ax",), ("ah",)], "the": [("dh", "ax")], "cat": [("cl", "k", "ae", "cl", "t")]}
    (tmp_path / "lexicon.txt").write_text("a ax\nthe dh xx\n")
    with pytest.raises(AsrError, match=r"lexicon.txt:2: phone label 'xx'"):
        read_lexicon(tmp_path / "lexicon.txt")
    assert find_lexicon(tmp_path / "nowhere") is None


def test_lang_folder_tables_grammars_and_dev_chosen_order(tmp_path: Path) -> None:
    phones = list(TIMIT48)
    lex = {"a": [("ah",)], "cat": [("cl", "k", "ae", "cl", "t")], "sat": [("s", "ae", "cl", "t")],
           "the": [("dh", "ah")]}
    train_words = [["the", "cat", "sat"], ["a", "cat", "sat"], ["the", "cat"]] * 5
    dev_words = [["a", "cat", "sat"], ["the", "sat"]]
    to_phones = lambda ws: [p for w in ws for p in lex[w][0]]  # noqa: E731
    info = write_lang(tmp_path, phones, [to_phones(s) for s in train_words], [to_phones(s) for s in dev_words],
                      train_words, dev_words, lex, word_orders=(1, 2, 3))
    tokens = (tmp_path / "tokens.txt").read_text().split("\n")
    assert tokens[0] == "<blk> 0" and tokens[1] == f"{phones[0]} 1" and len(tokens) == len(phones) + 2
    table = read_symbol_table(tmp_path / "phones.txt")
    assert table["<eps>"] == 0 and [table[p] for p in phones] == list(range(1, len(phones) + 1))
    assert (tmp_path / "lexicon.txt").read_text().splitlines()[1] == "cat cl k ae cl t"
    assert set(read_symbol_table(tmp_path / "words.txt")) >= {*lex, "#0", "<s>", "</s>"}
    for f in ("G_phones.fst", "G_words.fst", "phone_bigram.arpa", "words.arpa"):
        assert (tmp_path / f).stat().st_size > 0, f
    by_order = info["word_lm"]["dev_perplexity_by_order"]
    assert info["word_lm"]["order"] == min((1, 2, 3), key=lambda o: by_order[str(o)])
    assert read_arpa(tmp_path / "words.arpa").order == info["word_lm"]["order"]
    assert json.loads((tmp_path / "lang.json").read_text()) == info

    # Without a lexicon: phone files only, words null.
    bare = tmp_path / "bare"
    bare.mkdir()
    info = write_lang(bare, phones, [to_phones(s) for s in train_words], [to_phones(s) for s in dev_words])
    assert info["words"] is None and not (bare / "words.txt").exists() and (bare / "G_phones.fst").is_file()
