"""The data stage: Kaldi data dirs of the clean sets and of every contaminated test set."""

from __future__ import annotations

import logging
from pathlib import Path

from asr.data.contaminate import contaminate_data_dir, parse_set_name
from asr.data.timit import prepare_timit
from asr.errors import AsrError
from asr.recipe.settings import RecipeSettings

log = logging.getLogger(__name__)


def prepare_data_sets(s: RecipeSettings) -> dict[str, Path]:
    """Write (or reuse) the clean data dirs and every contaminated test set.

    Returns:
        set name -> data dir, for the train, dev and test sets.
    """
    report = prepare_timit(s.corpus_root, s.data_dir)
    log.info("data dirs in %s:\n%s", s.data_dir, report.summary())
    sets = {name: s.data_dir / name for name in (s.train_set, s.dev_set)}
    for name in s.test_sets:
        base, noise, snr, t60 = parse_set_name(name)
        if not (s.data_dir / base).is_dir():
            raise AsrError(f"data.test_sets: '{name}' needs the set '{base}', which {s.data_dir} lacks")
        if noise is None and t60 is None:
            sets[name] = s.data_dir / base
            continue
        # Babble comes from training speakers: never from the set being contaminated.
        sets[name] = contaminate_data_dir(
            s.data_dir / base, s.data_dir / name, noise=noise, snr_db=snr, t60_ms=t60, seed=s.seed,
            babble_source=s.data_dir / s.train_set if noise == "babble" else None,
        )
    return sets
