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
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from asr.data.lexicon import Lexicon, write_lexicon
from asr.graph import ngram_lm, phone_lm

log = logging.getLogger(__name__)

BLANK = "<blk>"


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
        train_in_vocab = _in_vocab(train_words, lexicon, "train")
        candidates = {}
        for order in word_orders:
            lm = ngram_lm.estimate_ngram(train_in_vocab, vocab, order)
            ppl_n = ngram_lm.perplexity(lm, dev_words) if dev_words else (float("nan"), 0, 0)
            candidates[order] = (lm, *ppl_n)
            log.info("lang: word %d-gram, dev perplexity %.2f over %d words (%d OOV)", order, *ppl_n)
        best = min(word_orders, key=lambda o: candidates[o][1]) if dev_words else word_orders[0]
        wlm, wppl, wn, oov = candidates[best]
        ngram_lm.write_arpa(wlm, out / "words.arpa")
        ngram_lm.make_word_g_fst(out / "words.arpa", out / "words.txt", out / "G_words.fst")
        info["words"] = len(vocab)
        info["lexicon_entries"] = sum(len(p) for p in lexicon.values())
        info["word_lm"] = {"order": best, "dev_perplexity": round(wppl, 3), "dev_tokens": wn, "dev_oov": oov,
                           "dev_perplexity_by_order": {str(o): round(c[1], 3) for o, c in candidates.items()}}
        log.info("lang: %d words; word LM order %d chosen on dev (perplexity %.2f)", len(vocab), best, wppl)
    (out / "lang.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return info


def _in_vocab(sentences: Sequence[Sequence[str]], lexicon: Lexicon, where: str) -> list[Sequence[str]]:
    """Training sentences whose words all have a pronunciation; the others are counted."""
    kept = [s for s in sentences if all(w in lexicon for w in s)]
    if len(kept) < len(sentences):
        log.warning("lang: %d of %d %s sentence(s) have words missing from the lexicon; left out of the word LM",
                    len(sentences) - len(kept), len(sentences), where)
    return kept
