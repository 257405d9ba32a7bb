"""The lang folder: symbol tables, lexicon and the grammars every decoder reads.

Built once per experiment from the training transcripts (``exp_dir/lang/``)::

    phones.txt            <eps> 0, the 48 phones 1..48, <s>, </s>, #0 (output labels of phone graphs)
    tokens.txt            CTC tokens: <blk> 0, then the phones 1..48
    phone_bigram.arpa     Witten-Bell phone bigram of the training phone transcripts
    G_phones.fst          its grammar FST (phone ids of phones.txt)
    lexicon.txt           word p1 p2 ... (48-set), one line per pronunciation (when the corpus has one)
    words.txt             <eps> 0, the words, #0, <s>, </s>
    words.arpa            Witten-Bell word n-gram of the training sentences (order chosen on dev)
    G_words.fst           its grammar FST, back-off arcs with #0 on the input side
    lang.json             sizes and the dev-set perplexities of both LMs (word LM: of every order tried)

Without a lexicon the word files are left out (word decoding is then skipped).

With BPE units (word-level CTC, :func:`write_bpe_lang`) there are no phone files::

    bpe.model             sentencepiece BPE model trained on the training transcripts
    tokens.txt            CTC tokens: <blk> 0, then the pieces 1..V-1 (asr.graph.bpe)
    lexicon.txt           word piece1 piece2 ...: each word spelled in pieces (L of T o L o G)
    words.txt, words.arpa, G_words.fst, lang.json   as above; the vocabulary is the training
                          words plus the words of the corpus lexicon when there is one
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from asr.data.lexicon import Lexicon, write_lexicon
from asr.graph import bpe, ngram_lm, phone_lm

log = logging.getLogger(__name__)

BLANK = bpe.BLANK  # one blank symbol for phone and BPE token tables


def token_table(phones: Sequence[str]) -> str:
    """CTC ``tokens.txt``: the blank first (id 0), then the phones 1..N."""
    return "".join(f"{t} {i}\n" for i, t in enumerate([BLANK, *phones]))


def write_lang(out_dir: str | os.PathLike, phones: Sequence[str], train_phones: Sequence[Sequence[str]],
               dev_phones: Sequence[Sequence[str]], train_words: Sequence[Sequence[str]] | None = None,
               dev_words: Sequence[Sequence[str]] | None = None, lexicon: Lexicon | None = None,
               word_orders: Sequence[int] = (1, 2, 3)) -> dict:
    """Write the lang folder's files (see the module docstring) into the existing ``out_dir``.

    Args:
        phones: the phone set (48), in label order.
        train_phones, dev_phones: phone transcripts; the bigram is estimated on train,
            its perplexity measured on dev.
        train_words, dev_words: word transcripts, likewise for the word n-gram.
        lexicon: word -> pronunciations (48-set), or None for no word files.
        word_orders: candidate n-gram orders of the word LM; the one with the lowest dev
            perplexity is kept (the first listed without dev sentences).

    Returns:
        what ``lang.json`` holds.
    """
    out = Path(out_dir)
    (out / "phones.txt").write_text(phone_lm.phone_symbol_table(phones), encoding="utf-8")
    (out / "tokens.txt").write_text(token_table(phones), encoding="utf-8")
    plm = phone_lm.estimate_bigram(train_phones, phones)
    phone_lm.write_arpa(plm, out / "phone_bigram.arpa")
    g = phone_lm.make_g_fst(out / "phone_bigram.arpa", phones, out / ".phone_g")
    g.write(str(out / "G_phones.fst"))
    for f in (out / ".phone_g").iterdir():
        f.unlink()
    (out / ".phone_g").rmdir()
    ppl, n, _ = ngram_lm.perplexity(ngram_lm.read_arpa(out / "phone_bigram.arpa"), dev_phones)
    info: dict = {"phones": len(phones), "phone_lm": {"order": 2, "dev_perplexity": round(ppl, 3),
                                                      "dev_tokens": n}}
    log.info("lang: phone bigram, dev perplexity %.2f over %d phones", ppl, n)
    if lexicon is None or train_words is None:
        log.warning("lang: no lexicon; word decoding will be skipped (wer null)")
        info["words"] = None
    else:
        write_lexicon(lexicon, out / "lexicon.txt")
        vocab = sorted(lexicon)
        (out / "words.txt").write_text(ngram_lm.word_symbol_table(vocab), encoding="utf-8")
        info.update(_word_lm(out, _in_vocab(train_words, lexicon, "train"), dev_words, vocab, word_orders))
        info["lexicon_entries"] = sum(len(p) for p in lexicon.values())
    (out / "lang.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return info


def write_bpe_lang(out_dir: str | os.PathLike, train_words: Sequence[Sequence[str]],
                   dev_words: Sequence[Sequence[str]], vocab_size: int,
                   extra_words: Sequence[str] = (), word_orders: Sequence[int] = (1, 2, 3)) -> dict:
    """Write a BPE lang folder (see the module docstring) into the existing ``out_dir``.

    Args:
        train_words, dev_words: word transcripts; BPE units and the word n-gram are trained
            on train, the n-gram's order chosen by its perplexity on dev.
        vocab_size: BPE units wanted (``<unk>``, i.e. the blank's id, included).
        extra_words: more vocabulary words (a corpus lexicon's): BPE spells any word, so
            the decoding vocabulary need not stop at the training words.
        word_orders: candidate n-gram orders.

    Returns:
        what ``lang.json`` holds.
    """
    out = Path(out_dir)
    n = bpe.train_bpe([" ".join(w) for w in train_words], vocab_size, out / bpe.MODEL_FILE)
    units = bpe.BpeUnits(out / bpe.MODEL_FILE)
    tokens = units.tokens()
    (out / "tokens.txt").write_text(token_table(tokens[1:]), encoding="utf-8")  # tokens[0] is the blank
    vocab_set = {w for s in train_words for w in s} | set(extra_words)
    spelled: Lexicon = {}
    unspellable = []
    for w in sorted(vocab_set):
        pieces = units.spell(w)
        if pieces is None:
            unspellable.append(w)
        else:
            spelled[w] = [pieces]
    if unspellable:
        log.warning("lang: %d lexicon word(s) have characters no training transcript has (e.g. %r); "
                    "left out of the vocabulary", len(unspellable), unspellable[0])
    write_lexicon(spelled, out / "lexicon.txt")
    vocab = sorted(spelled)
    (out / "words.txt").write_text(ngram_lm.word_symbol_table(vocab), encoding="utf-8")
    info: dict = {"units": "bpe", "bpe_vocab_size": n, "bpe_vocab_size_asked": int(vocab_size)}
    info.update(_word_lm(out, _in_vocab(train_words, spelled, "train"), dev_words, vocab, word_orders))
    info["lexicon_entries"] = len(vocab)
    (out / "lang.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    log.info("lang: %d BPE units, %d words", n, len(vocab))
    return info


def _word_lm(out: Path, train: Sequence[Sequence[str]], dev_words: Sequence[Sequence[str]] | None,
             vocab: Sequence[str], word_orders: Sequence[int]) -> dict:
    """``words.arpa`` and ``G_words.fst``: the order of ``word_orders`` with the lowest dev
    perplexity (the first listed without dev sentences); returns lang.json's word entries."""
    candidates = {}
    for order in word_orders:
        lm = ngram_lm.estimate_ngram(train, vocab, order)
        ppl_n = ngram_lm.perplexity(lm, dev_words) if dev_words else (float("nan"), 0, 0)
        candidates[order] = (lm, *ppl_n)
        log.info("lang: word %d-gram, dev perplexity %.2f over %d words (%d OOV)", order, *ppl_n)
    best = min(word_orders, key=lambda o: candidates[o][1]) if dev_words else word_orders[0]
    wlm, wppl, wn, oov = candidates[best]
    ngram_lm.write_arpa(wlm, out / "words.arpa")
    ngram_lm.make_word_g_fst(out / "words.arpa", out / "words.txt", out / "G_words.fst")
    log.info("lang: %d words; word LM order %d chosen on dev (perplexity %.2f)", len(vocab), best, wppl)
    return {"words": len(vocab),
            "word_lm": {"order": best, "dev_perplexity": round(wppl, 3), "dev_tokens": wn, "dev_oov": oov,
                        "dev_perplexity_by_order": {str(o): round(c[1], 3) for o, c in candidates.items()}}}


def _in_vocab(sentences: Sequence[Sequence[str]], lexicon: Lexicon, where: str) -> list[Sequence[str]]:
    """Training sentences whose words all have a pronunciation; the others are counted."""
    kept = [s for s in sentences if all(w in lexicon for w in s)]
    if len(kept) < len(sentences):
        log.warning("lang: %d of %d %s sentence(s) have words missing from the lexicon; left out of the word LM",
                    len(sentences) - len(kept), len(sentences), where)
    return kept
