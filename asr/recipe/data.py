"""The data stage: Kaldi data dirs of the clean sets, of every contaminated test set and of the
multi-condition copies of the training set.

Babble is mixed from training speakers, split into two disjoint pools
(:func:`asr.data.contaminate.babble_speaker_pools`): test sets draw from one, training copies
from the other, so a multi-condition model never hears a test babble voice. Training copies
also use another seed (``seed + 1``): other rooms, noise and babble draws than the test sets.
"""

from __future__ import annotations

import logging
from pathlib import Path

from asr.data.contaminate import babble_speaker_pools, contaminate_data_dir, parse_set_name
from asr.data.kaldi_dir import read_data_dir
from asr.data.lexicon import find_lexicon
from asr.data.librispeech import prepare_librispeech
from asr.data.timit import prepare_timit
from asr.errors import AsrError
from asr.recipe.settings import RecipeSettings

log = logging.getLogger(__name__)

BABBLE_VOICES = 5


def corpus_lexicon(s: RecipeSettings) -> Path | None:
    """The pronunciation lexicon: ``data.lexicon`` when given, else the corpus' own
    (mini-TIMIT's and mini-LibriSpeech's ``lexicon.txt``, LDC TIMIT's ``TIMITDIC.TXT``)."""
    if s.lexicon is not None:
        if not s.lexicon.is_file():
            raise AsrError(f"data.lexicon: {s.lexicon} is not a file")
        return s.lexicon
    return find_lexicon(s.corpus_root)


def prepare_data_sets(s: RecipeSettings) -> dict[str, Path]:
    """Write (or reuse) the clean data dirs, every contaminated test set and the training copies.

    Returns:
        set name -> data dir, for the train and dev sets, the test sets and the copies.
    """
    if s.corpus == "librispeech":
        lexicon = corpus_lexicon(s)
        if lexicon is None and (s.task == "hybrid" or s.units == "phones" or s.features_kind == "fmllr"):
            raise AsrError(f"{s.corpus_root}: LibriSpeech has no phone transcripts and this run needs them "
                           f"(task={s.task}, units {s.units}, features={s.features_kind}): give a pronunciation "
                           "lexicon, data.lexicon=/path/to/librispeech-lexicon.txt, or train CTC on BPE units "
                           "(recipe=librispeech_ligru_ctc)")
        # Only the subsets the run uses: train-clean-360 and -other are large and not needed.
        bases = {s.train_set, s.dev_set, *(parse_set_name(n)[0] for n in s.test_sets)}
        report = prepare_librispeech(s.corpus_root, s.data_dir, sorted(bases), lexicon=lexicon)
    elif s.corpus == "timit":
        report = prepare_timit(s.corpus_root, s.data_dir)
    else:
        raise AsrError(f"data.name: '{s.corpus}' is not timit or librispeech")
    log.info("data dirs in %s:\n%s", s.data_dir, report.summary())
    sets = {name: s.data_dir / name for name in (s.train_set, s.dev_set)}
    train_dir = s.data_dir / s.train_set
    train_pool, test_pool = babble_speaker_pools(read_data_dir(train_dir).utt2spk.values())
    # Five voices per babble; a tiny corpus has fewer to spare (a training copy leaves out its own speaker).
    voices = min(BABBLE_VOICES, len(test_pool), len(train_pool) - 1)
    if voices < BABBLE_VOICES and any("babble" in n for n in [*s.test_sets, *s.multi_condition]):
        log.warning("babble: %d voices per signal instead of %d (the training set has only %d speakers)",
                    voices, BABBLE_VOICES, len(train_pool) + len(test_pool))
    for name in s.test_sets:
        base, noise, snr, t60 = parse_set_name(name)
        if not (s.data_dir / base).is_dir():
            raise AsrError(f"data.test_sets: '{name}' needs the set '{base}', which {s.data_dir} lacks")
        if noise is None and t60 is None:
            sets[name] = s.data_dir / base
            continue
        sets[name] = contaminate_data_dir(
            s.data_dir / base, s.data_dir / name, noise=noise, snr_db=snr, t60_ms=t60, seed=s.seed,
            babble_source=train_dir if noise == "babble" else None, babble_speakers=test_pool,
            num_babble_speakers=voices,
        )
    for condition, name in zip(s.multi_condition, s.train_copies):
        base, noise, snr, t60 = parse_set_name(name)
        if base != s.train_set or (noise is None and t60 is None):
            raise AsrError(f"data.multi_condition: '{condition}' is not a condition such as babble_snr5, "
                           "reverb_t60_400 or reverb_t60_400_white_snr10")
        sets[name] = contaminate_data_dir(
            train_dir, s.data_dir / name, noise=noise, snr_db=snr, t60_ms=t60, seed=s.seed + 1,
            babble_source=train_dir if noise == "babble" else None, babble_speakers=train_pool,
            num_babble_speakers=voices,
        )
    if s.train_copies:
        log.info("multi-condition training: %s and %s (babble from %d training speakers; test babble "
                 "from %d others)", s.train_set, ", ".join(s.train_copies), len(train_pool), len(test_pool))
    return sets
