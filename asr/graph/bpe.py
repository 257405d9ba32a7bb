"""Sentencepiece BPE units for word-level CTC: training, the token table, spelling words.

The model is trained on the training transcripts alone (``bpe.model`` in the lang folder,
its bytes also in the checkpoint). Ids: sentencepiece's id 0 is ``<unk>`` and has no
place in a CTC output layer, so the CTC token table reuses id 0 for the blank and keeps
every other id as sentencepiece numbers it (``tokens.txt``: ``<blk> 0``, then the pieces
``1..V-1``); a piece id *is* its CTC token id. With ``character_coverage=1.0`` every
character of the training transcripts is a piece, so no training utterance encodes to
``<unk>``; a dev or test word with an unseen character can (the piece is then dropped,
counted by the caller).

Pieces that start a word carry the marker ``▁`` (U+2581); :func:`pieces_to_words` undoes
the segmentation. Words are encoded one by one (sentencepiece splits a sentence on spaces
before BPE), so the spelling of a word in L is the one it gets inside a sentence.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from asr.errors import AsrError

log = logging.getLogger(__name__)

BLANK = "<blk>"
WORD_START = "\u2581"
MODEL_FILE = "bpe.model"


def pieces_to_words(pieces: Iterable[str]) -> list[str]:
    """Words of a piece sequence: a piece with ``▁`` starts a new word.

    >>> pieces_to_words(["\u2581TH", "E", "\u2581CAT"])
    ['THE', 'CAT']
    """
    return "".join(pieces).replace(WORD_START, " ").split()


def train_bpe(sentences: Sequence[str], vocab_size: int, out_path: str | os.PathLike) -> int:
    """Train a BPE model on ``sentences`` (space-separated words) into ``out_path``.

    The vocabulary size is a soft limit (``hard_vocab_limit=False``): a corpus too small
    for it gets fewer pieces, with a warning. One thread, no sampling or shuffling of the
    input, so the same sentences give the same model.

    Returns:
        the number of pieces (``<unk>`` included), i.e. the CTC outputs with the blank.

    Raises:
        AsrError: no sentences, or a vocabulary size below 2.
    """
    import io

    import sentencepiece as spm

    if vocab_size < 2:
        raise AsrError(f"task.bpe_vocab_size: need at least 2 units, got {vocab_size}")
    text = [s for s in sentences if s.strip()]
    if not text:
        raise AsrError("BPE: no training transcripts to learn units from")
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text), model_writer=buf, vocab_size=int(vocab_size), model_type="bpe",
        character_coverage=1.0, unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, num_threads=1,
        hard_vocab_limit=False, shuffle_input_sentence=False, input_sentence_size=0,
        minloglevel=2, split_digits=False, max_sentence_length=1 << 16,
    )
    Path(out_path).write_bytes(buf.getvalue())
    n = BpeUnits(buf.getvalue()).size
    if n < vocab_size:
        log.warning("BPE: %d units instead of task.bpe_vocab_size=%d (the training transcripts allow no more)",
                    n, vocab_size)
    return n


class BpeUnits:
    """A trained BPE model: encoding transcripts and words, and the CTC token table.

    Args:
        model: the model's bytes (``bpe.model``, or a checkpoint's ``bpe_model``) or its path.
    """

    def __init__(self, model: bytes | str | os.PathLike) -> None:
        import sentencepiece as spm

        data = model if isinstance(model, bytes) else Path(model).read_bytes()
        self.model_bytes = data
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(data)
        except (RuntimeError, OSError) as e:
            where = "checkpoint" if isinstance(model, bytes) else str(model)
            raise AsrError(f"{where}: not a sentencepiece model ({e})") from None

    @property
    def size(self) -> int:
        return int(self._sp.get_piece_size())

    def tokens(self) -> list[str]:
        """CTC token names by id: the blank, then the pieces (id i = sentencepiece id i)."""
        return [BLANK, *(self._sp.id_to_piece(i) for i in range(1, self.size))]

    def encode(self, words: Sequence[str]) -> tuple[list[int], int]:
        """(token ids of a transcript, number of ``<unk>`` pieces left out)."""
        ids = self._sp.encode(" ".join(words))
        kept = [i for i in ids if i != 0]
        return kept, len(ids) - len(kept)

    def spell(self, word: str) -> tuple[str, ...] | None:
        """A word's pieces (its L entry), or None when a character has no piece."""
        ids = self._sp.encode(word)
        if not ids or 0 in ids:
            return None
        return tuple(self._sp.id_to_piece(i) for i in ids)
