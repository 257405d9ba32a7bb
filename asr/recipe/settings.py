"""What a recipe's stages need, as plain typed values (built from the Hydra config by ``asr.cli``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from asr.features.config import FeatureConfig

if TYPE_CHECKING:
    from asr.decode.gmm_decode import GmmDecodeConfig
    from asr.decode.nn_decode import NetworkDecodeConfig
    from asr.hmm.pipeline import GmmPipelineConfig
    from asr.nn.spec import ModelSpec
    from asr.train.loop import TrainerConfig
    from asr.train.optim import OptimConfig

STAGES = ("data", "features", "align", "train", "decode")


@dataclass
class RecipeSettings:
    """Settings of one recipe run.

    Attributes:
        corpus_root: folder with TRAIN/ and TEST/ (LDC TIMIT or mini-TIMIT), or LibriSpeech's
            subset folders (LibriSpeech, mini-LibriSpeech).
        corpus: its layout, ``timit`` or ``librispeech`` (``data.name``).
        exp_dir: experiment dir (see the module docstring of :mod:`asr.recipe.run`).
        data_dir: where the Kaldi data dirs are written.
        train_set, dev_set: names of the training and validation sets.
        test_sets: clean or contaminated test-set names (``test_babble_snr5``, ...).
        features: the network's front end; with ``features_kind == "fmllr"`` only its CMVN,
            delta and splicing fields are used, on the tri3 fMLLR frames.
        features_kind: ``fbank``, ``mfcc``, ``kaldi_scp`` or ``fmllr``.
        task: ``hybrid`` (needs GMM-HMM alignments) or ``ctc``.
        alignment_stage: last GMM stage trained; its alignments are the hybrid targets.
        gmm_decode: decode dev and the test sets with every GMM stage trained (phone
            bigram, acoustic scale tuned on dev) for the baseline rows of the results.
        gmm: GMM-HMM pipeline options (None: Kaldi's TIMIT sizes); its ``stages`` are set
            from ``alignment_stage``.
        gmm_decoding: GMM decoding options (None: :class:`GmmDecodeConfig`'s defaults).
        model: the acoustic model's spec (used by the training stage).
        optim: optimiser and schedule (used by the training stage).
        trainer: device, precision, resume and fault options of the loop (None: defaults).
        recipe_name: recorded in checkpoints and results.
        mono_weight: hybrid: weight of the monophone head's loss (0: no monophone head).
        prior_floor: hybrid: smallest pdf prior (pdfs unseen in the alignments get it).
        targets: hybrid: None (the alignments of ``alignment_stage``) or an earlier hybrid
            run's exp_dir or checkpoint, whose network realigns train and dev for the targets.
        seed: seed of contamination and of the GMM front end's dither.
        num_workers: worker processes for extraction.
        stop_stage: last stage to run (one of :data:`STAGES`), or None for all.
        cache_dir: where the stages that do not depend on the network live, shared by
            runs (:func:`asr.stage.stage_cache`); None: all in ``exp_dir``.
        decoding: the network's decoding grid and search (None: defaults).
        config: the resolved configuration as plain values (recorded in checkpoints, so
            ``asr-decode`` can rebuild the run's stages), or None.
        decode_dir: where ``decode/`` and ``results.json`` go (None: ``exp_dir``).
        multi_condition: conditions of contaminated copies of the training set added to the
            training data (``babble_snr5``, ``reverb_t60_400``, ``reverb_t60_400_white_snr10``:
            a set name without its base); each becomes the set ``<train_set>_<condition>``.
        gmm_decode_stages: the GMM stages ``gmm_decode`` decodes (None: every stage trained).
        allow_pipes: Kaldi ``wav.scp`` entries that are shell pipelines (``cmd |``) may be
            run to read audio (``data.allow_pipes``); else they are refused.
        lexicon: a pronunciation lexicon (``data.lexicon``; None: the corpus' own, if any).
        units: CTC units, ``phones`` (``text.phn``) or ``bpe`` (sentencepiece pieces of the words).
        bpe_vocab_size: BPE units, the blank included (``task.bpe_vocab_size``).
    """

    corpus_root: Path
    exp_dir: Path
    data_dir: Path
    train_set: str = "train"
    dev_set: str = "dev"
    test_sets: list[str] = field(default_factory=lambda: ["test"])
    features: FeatureConfig = field(default_factory=FeatureConfig)
    features_kind: str = "fbank"
    task: str = "hybrid"
    alignment_stage: str = "tri3"
    gmm_decode: bool = False
    gmm: "GmmPipelineConfig | None" = None
    gmm_decoding: "GmmDecodeConfig | None" = None
    model: "ModelSpec | None" = None
    optim: "OptimConfig | None" = None
    trainer: "TrainerConfig | None" = None
    recipe_name: str = "custom"
    mono_weight: float = 1.0
    prior_floor: float = 1e-8
    targets: str | None = None
    seed: int = 0
    num_workers: int = 2
    stop_stage: str | None = None
    cache_dir: Path | None = None
    decoding: "NetworkDecodeConfig | None" = None
    config: dict | None = None
    decode_dir: Path | None = None
    multi_condition: list[str] = field(default_factory=list)
    gmm_decode_stages: list[str] | None = None
    allow_pipes: bool = False
    corpus: str = "timit"
    lexicon: Path | None = None
    units: str = "phones"
    bpe_vocab_size: int = 500

    @property
    def train_copies(self) -> list[str]:
        """Names of the multi-condition copies of the training set (empty: clean training only)."""
        return [f"{self.train_set}_{c}" for c in self.multi_condition]
