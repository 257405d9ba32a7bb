"""The lang stage: ``exp_dir/lang/`` (:mod:`asr.graph.lang`), built once from the training transcripts."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from asr.data.kaldi_dir import read_data_dir
from asr.data.lexicon import read_lexicon
from asr.data.phones import TIMIT48
from asr.errors import AsrError
from asr.graph.lang import write_bpe_lang, write_lang
from asr.graph.phone_lm import BigramLm, read_arpa
from asr.recipe.data import corpus_lexicon
from asr.recipe.settings import RecipeSettings
from asr.stage import StageResult, read_done, run_stage

log = logging.getLogger(__name__)

LANG_VERSION = 1
WORD_ORDERS = (1, 2, 3)  # word n-gram orders tried; the lowest dev perplexity wins


@dataclass
class Lang:
    """The run's lang folder.

    Attributes:
        path: ``exp_dir/lang``.
        result: its stage result (downstream stages list it as an input).
        has_words: whether it holds a lexicon and a word LM.
        units: the CTC units of ``tokens.txt``: ``phones`` or ``bpe`` (no phone files then).
    """

    path: Path
    result: StageResult
    has_words: bool
    units: str = "phones"

    def phone_lm(self) -> BigramLm:
        """The phone bigram (G of phone recognition)."""
        return read_arpa(self.path / "phone_bigram.arpa")


def build_lang(s: RecipeSettings, sets: Mapping[str, Path]) -> Lang:
    """Build (or reuse) ``exp_dir/lang`` from the training set's transcripts and the corpus lexicon."""
    if s.units == "bpe":
        return _build_bpe_lang(s, sets)
    if s.units != "phones":
        raise AsrError(f"task.units: '{s.units}' is not phones or bpe")
    lex_path = corpus_lexicon(s)
    train, dev = read_data_dir(sets[s.train_set]), read_data_dir(sets[s.dev_set])
    if not train.phones:
        hint = (" (LibriSpeech has words only: give a pronunciation lexicon, data.lexicon=PATH, "
                "or use BPE units, task.units=bpe)" if s.corpus == "librispeech" else "")
        raise AsrError(f"{sets[s.train_set]}: no phone transcripts (text.phn) to train the phone LM on{hint}")

    def build(tmp: Path) -> dict:
        lexicon = read_lexicon(lex_path) if lex_path is not None else None
        return write_lang(tmp, TIMIT48, [p.split() for p in train.phones.values()],
                          [p.split() for p in dev.phones.values()],
                          [t.split() for t in train.text.values()] if train.text else None,
                          [t.split() for t in dev.text.values()] if dev.text else None,
                          lexicon, WORD_ORDERS)

    key = {"phones": list(TIMIT48), "word_orders": list(WORD_ORDERS), "lexicon": str(lex_path) if lex_path else None,
           "lexicon_stat": _stat(lex_path)}
    inputs = [p for p in (sets[s.train_set], sets[s.dev_set]) if read_done(p) is not None]
    r = run_stage(s.exp_dir / "lang", key, build, name="lang", version=LANG_VERSION, inputs=inputs)
    return Lang(r.path, r, bool(r.summary.get("words")))


def _build_bpe_lang(s: RecipeSettings, sets: Mapping[str, Path]) -> Lang:
    """The lang folder of word-level CTC: BPE units of the training words, each vocabulary
    word spelled in them, the word n-gram (:func:`asr.graph.lang.write_bpe_lang`)."""
    lex_path = corpus_lexicon(s)
    train, dev = read_data_dir(sets[s.train_set]), read_data_dir(sets[s.dev_set])
    if not train.text:
        raise AsrError(f"{sets[s.train_set]}: no word transcripts (text) to learn BPE units from")

    def build(tmp: Path) -> dict:
        extra = sorted(read_lexicon(lex_path)) if lex_path is not None else []
        return write_bpe_lang(tmp, [t.split() for t in train.text.values()],
                              [t.split() for t in dev.text.values()] if dev.text else [],
                              s.bpe_vocab_size, extra, WORD_ORDERS)

    key = {"units": "bpe", "bpe_vocab_size": s.bpe_vocab_size, "word_orders": list(WORD_ORDERS),
           "lexicon": str(lex_path) if lex_path else None, "lexicon_stat": _stat(lex_path)}
    inputs = [p for p in (sets[s.train_set], sets[s.dev_set]) if read_done(p) is not None]
    r = run_stage(s.exp_dir / "lang", key, build, name="lang", version=LANG_VERSION, inputs=inputs)
    return Lang(r.path, r, bool(r.summary.get("words")), "bpe")


def _stat(path: Path | None) -> str | None:
    if path is None:
        return None
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns}"
