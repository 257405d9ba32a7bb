"""BPE units for word-level CTC: training, token table, spelling, the BPE lang folder, and the
CTC word graph T o L o G over pieces decoding a frame sequence to the words it spells."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from asr.errors import AsrError
from asr.graph.bpe import BLANK, WORD_START, BpeUnits, pieces_to_words, train_bpe
from asr.graph.ctc_graph import build_ctc_word_graph
from asr.graph.fst_util import read_lang_lexicon
from asr.graph.lang import write_bpe_lang
from asr.graph.ngram_lm import read_symbol_table, read_symbols_by_id
from asr.graph.search import SearchOptions, best_path

SENTENCES = [
    "THE BIRCH CANOE SLID ON THE SMOOTH PLANKS", "GLUE THE SHEET TO THE DARK BLUE BACKGROUND",
    "IT'S EASY TO TELL THE DEPTH OF A WELL", "THESE DAYS A CHICKEN LEG IS A RARE DISH",
    "RICE IS OFTEN SERVED IN ROUND BOWLS", "THE JUICE OF LEMONS MAKES FINE PUNCH",
    "THE BOX WAS THROWN BESIDE THE PARKED TRUCK", "THE HOGS WERE FED CHOPPED CORN AND GARBAGE",
    "FOUR HOURS OF STEADY WORK FACED US", "A LARGE SIZE IN STOCKINGS IS HARD TO SELL",
]


def test_pieces_spell_words_back_and_training_is_deterministic(tmp_path: Path) -> None:
    n = train_bpe(SENTENCES, 60, tmp_path / "a.model")
    assert train_bpe(SENTENCES, 60, tmp_path / "b.model") == n
    assert (tmp_path / "a.model").read_bytes() == (tmp_path / "b.model").read_bytes()
    units = BpeUnits(tmp_path / "a.model")
    tokens = units.tokens()
    assert tokens[0] == BLANK and len(tokens) == units.size == n and len(set(tokens)) == n
    for s in SENTENCES:
        ids, unknown = units.encode(s.split())
        assert unknown == 0 and 0 not in ids
        assert pieces_to_words(tokens[i] for i in ids) == s.split()
        # a word's spelling in L is its spelling inside the sentence
        assert [p for w in s.split() for p in units.spell(w)] == [tokens[i] for i in ids]
    assert units.spell("ZEBRA") is not None  # unseen word, seen letters
    assert units.spell("CAFÉ") is None  # a character no training transcript has
    ids, unknown = units.encode(["CAFÉ"])
    assert unknown == 1 and pieces_to_words(tokens[i] for i in ids) == ["CAF"]
    assert BpeUnits(units.model_bytes).tokens() == tokens


def test_a_corpus_too_small_for_the_vocabulary_gets_fewer_units_and_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = train_bpe(SENTENCES[:2], 400, tmp_path / "m.model")
    assert n < 400 and "instead of task.bpe_vocab_size=400" in caplog.text
    with pytest.raises(AsrError, match="bpe_vocab_size"):
        train_bpe(SENTENCES, 1, tmp_path / "x.model")
    with pytest.raises(AsrError, match="no training transcripts"):
        train_bpe(["", " "], 50, tmp_path / "x.model")
    (tmp_path / "bad.model").write_bytes(b"not a model")
    with pytest.raises(AsrError, match="bad.model: not a sentencepiece model"):
        BpeUnits(tmp_path / "bad.model")


def test_bpe_lang_folder_and_word_graph_decode_pieces_to_words(tmp_path: Path) -> None:
    train = [s.split() for s in SENTENCES]
    dev = [["THE", "DARK", "TRUCK"]]
    info = write_bpe_lang(tmp_path, train, dev, 60, extra_words=["ZEBRA", "CAFÉ"])
    assert info["units"] == "bpe" and json.loads((tmp_path / "lang.json").read_text()) == info
    assert not (tmp_path / "phones.txt").exists()
    units = BpeUnits(tmp_path / "bpe.model")
    tokens = read_symbol_table(tmp_path / "tokens.txt")
    assert list(tokens) == units.tokens() and list(tokens.values()) == list(range(len(tokens)))
    lexicon = read_lang_lexicon(tmp_path / "lexicon.txt")
    assert "ZEBRA" in lexicon and "CAFÉ" not in lexicon  # unspellable: left out
    assert lexicon["CANOE"] == [units.spell("CANOE")]
    assert info["words"] == len(lexicon) == len({w for s in train for w in s}) + 1

    graph = build_ctc_word_graph(len(tokens), lexicon, {t: i for t, i in tokens.items() if i}, tmp_path / "words.txt",
                                 _read_fst(tmp_path / "G_words.fst"), silence_phone=None)
    # Frames that spell "THE ZEBRA SLID" in pieces, each piece held 3 frames with blanks between
    # (a repeated piece needs the blank): the graph must give exactly those words.
    want = ["THE", "ZEBRA", "SLID"]
    pieces = [p for w in want for p in units.spell(w)]
    assert pieces[0].startswith(WORD_START)
    frames = []
    for p in pieces:
        frames += [tokens[p]] * 3 + [0]
    post = np.full((len(frames), len(tokens)), np.log(1e-4), dtype=np.float32)
    post[np.arange(len(frames)), frames] = np.log(0.99)
    path = best_path(post, graph, SearchOptions(beam=20.0, acoustic_scale=1.0, scale_beam=False))
    words = read_symbols_by_id(tmp_path / "words.txt")
    assert path is not None and [words[i] for i in path.labels] == want and path.reached_final


def _read_fst(path: Path):
    import kaldifst

    return kaldifst.StdVectorFst.read(str(path))
