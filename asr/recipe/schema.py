"""Structured-config schemas of the ``asr-train`` config groups, registered with Hydra's ConfigStore.

Each option ``configs/<group>/<option>.yaml`` starts with ``defaults: [base_<option>, _self_]``:
the YAML holds the values, the schema stored here as ``<group>/base_<option>`` their keys and
types, so that a mistyped value (``model.hidden_size=abc``) or key fails when Hydra composes
the config, before any work, with Hydra's own message. The schemas carry no defaults
(``MISSING``): the YAML files are the one place where values live.

This module imports neither torch nor the library's stages: the commands call
:func:`register` at import, before ``hydra.main`` composes.
"""

from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import MISSING

# ---------------------------------------------------------------------------- data


@dataclass
class DataSchema:
    """``data``: a corpus (TIMIT or LibriSpeech layout) and the names of its sets."""

    name: str = MISSING
    root: str = MISSING
    data_dir: str = MISSING
    train_set: str = MISSING
    dev_set: str = MISSING
    test_sets: List[str] = MISSING
    multi_condition: List[str] = field(default_factory=list)
    allow_pipes: bool = MISSING
    lexicon: Optional[str] = None


# ---------------------------------------------------------------------------- features


@dataclass
class TransformSchema:
    """The options applied when features are read (``asr.features.config.TRANSFORM_FIELDS``)."""

    kind: str = MISSING
    cmvn: str = MISSING
    deltas: int = MISSING
    splice_left: int = MISSING
    splice_right: int = MISSING
    subsample: int = MISSING


@dataclass
class FbankSchema(TransformSchema):
    """``features=fbank``: the fields of ``FeatureConfig`` but ``scp`` and the MFCC-only ones."""

    num_mel_bins: int = MISSING
    frame_length: float = MISSING
    frame_shift: float = MISSING
    dither: float = MISSING
    use_energy: bool = MISSING
    energy_floor: float = MISSING
    low_freq: float = MISSING
    high_freq: float = MISSING
    preemphasis_coefficient: float = MISSING
    window_type: str = MISSING
    snip_edges: bool = MISSING
    sample_rate: int = MISSING
    resample: bool = MISSING
    seed: int = MISSING


@dataclass
class ExtractedFeaturesSchema(FbankSchema):
    """``features=mfcc``: the fields of ``FeatureConfig`` but ``scp``."""

    num_ceps: int = MISSING
    cepstral_lifter: float = MISSING


@dataclass
class KaldiScpSchema(TransformSchema):
    """``features=kaldi_scp``: an existing Kaldi ``feats.scp`` and the read-time transforms."""

    scp: str = MISSING


@dataclass
class FmllrSchema(TransformSchema):
    """``features=fmllr``: the GMM stage whose fMLLR transforms make the frames, and the transforms."""

    gmm_stage: str = MISSING


# ---------------------------------------------------------------------------- model
# Handed to asr.nn.spec.ModelSpec.from_dict: keys other than the spec's own fields are
# options of the cell.


@dataclass
class MlpSchema:
    """``model=mlp``: feed-forward layers on spliced frames."""

    cell: str = MISSING
    num_layers: int = MISSING
    hidden_size: int = MISSING
    dropout: float = MISSING
    splice_left: int = MISSING
    splice_right: int = MISSING


@dataclass
class RecurrentSchema:
    """``model=lstm|gru|mgu``: a stack of recurrent layers."""

    cell: str = MISSING
    num_layers: int = MISSING
    hidden_size: int = MISSING
    bidirectional: bool = MISSING
    dropout: float = MISSING
    front_mlp: List[int] = MISSING
    head_mlp: List[int] = MISSING


@dataclass
class RnnSchema(RecurrentSchema):
    """``model=rnn``: Elman RNN layers."""

    nonlinearity: str = MISSING


@dataclass
class LigruSchema(RecurrentSchema):
    """``model=ligru|sligru``: Light GRU layers (sligru: with layer norm)."""

    recurrent_dropout: float = MISSING
    batch_norm: bool = MISSING
    impl: str = MISSING


# ---------------------------------------------------------------------------- optim
# Handed to asr.train.optim.OptimConfig.from_dict.


@dataclass
class OptimSchema:
    """What every optimiser option has: learning rate, epochs, batches and the newbob schedule."""

    name: str = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    epochs: int = MISSING
    batch_size: int = MISSING
    max_frames: Optional[int] = MISSING
    max_grad_norm: float = MISSING
    newbob_factor: float = MISSING
    newbob_threshold: float = MISSING


@dataclass
class RmspropSchema(OptimSchema):
    """``optim=rmsprop``."""

    alpha: float = MISSING
    eps: float = MISSING


@dataclass
class SgdSchema(OptimSchema):
    """``optim=sgd``."""

    momentum: float = MISSING


@dataclass
class AdamSchema(OptimSchema):
    """``optim=adam``."""

    betas: List[float] = MISSING
    eps: float = MISSING


# ---------------------------------------------------------------------------- task


@dataclass
class GmmSizesSchema:
    """``task.gmm``: keyword arguments of ``GmmPipelineConfig.with_sizes``."""

    leaves: int = MISSING
    gauss: int = MISSING
    mono_gauss: int = MISSING


@dataclass
class GmmDecodingSchema:
    """``task.gmm_decoding``: fields of ``GmmDecodeConfig``."""

    acoustic_scales: List[float] = MISSING
    beam: float = MISSING
    max_active: int = MISSING
    self_loop_scale: float = MISSING
    words: bool = MISSING


@dataclass
class TaskSchema:
    """What both tasks have: the GMM stages' options."""

    name: str = MISSING
    gmm_decode: bool = MISSING
    gmm_decode_stages: Optional[List[str]] = None
    gmm: GmmSizesSchema = field(default_factory=GmmSizesSchema)
    gmm_decoding: GmmDecodingSchema = field(default_factory=GmmDecodingSchema)


@dataclass
class CtcSchema(TaskSchema):
    """``task=ctc``; the GMM options serve ``features=fmllr``, which runs the GMM stages."""

    units: str = MISSING
    bpe_vocab_size: int = MISSING


@dataclass
class HybridSchema(TaskSchema):
    """``task=hybrid``: targets are the alignments of ``alignment_stage``."""

    alignment_stage: str = MISSING
    mono_weight: float = MISSING
    prior_floor: float = MISSING
    targets: Optional[str] = MISSING


@dataclass
class TrainerSchema:
    """``train``: fields of ``asr.train.loop.TrainerConfig`` but ``seed`` (the top-level one)."""

    device: str = MISSING
    amp: str = MISSING
    resume: bool = MISSING
    max_bad_steps: int = MISSING
    progress: bool = MISSING
    loader_workers: int = MISSING


@dataclass
class DecodeSchema:
    """``decode``: fields of ``asr.decode.nn_decode.NetworkDecodeConfig`` (the network's decoding)."""

    acoustic_scales: Optional[List[float]] = MISSING
    prior_scales: List[float] = MISSING
    blank_penalties: List[float] = MISSING
    phone_penalties: List[float] = MISSING
    word_penalties: List[float] = MISSING
    beam: float = MISSING
    max_active: int = MISSING
    batch_size: int = MISSING
    num_workers: int = MISSING
    device: str = MISSING
    words: bool = MISSING
    progress: bool = MISSING


# ---------------------------------------------------------------------------- train.yaml


@dataclass
class TrainSchema:
    """The top level of ``train.yaml``; each group has its own schema (per option)."""

    recipe_name: str = MISSING
    exp_dir: str = MISSING
    seed: int = MISSING
    num_workers: int = MISSING
    stop_stage: Optional[str] = MISSING
    cache_dir: Optional[str] = MISSING
    data: Any = MISSING
    features: Any = MISSING
    model: Any = MISSING
    task: Any = MISSING
    optim: Any = MISSING
    train: TrainerSchema = field(default_factory=TrainerSchema)
    decode: DecodeSchema = field(default_factory=DecodeSchema)


# The schema of each option: configs/<group>/<option>.yaml has ``defaults: [base_<option>, _self_]``.
SCHEMAS: dict[str, dict[str, type]] = {
    "data": {"timit": DataSchema, "librispeech": DataSchema},
    "features": {"fbank": FbankSchema, "mfcc": ExtractedFeaturesSchema,
                 "kaldi_scp": KaldiScpSchema, "fmllr": FmllrSchema},
    "model": {"mlp": MlpSchema, "rnn": RnnSchema, "lstm": RecurrentSchema, "gru": RecurrentSchema,
              "mgu": RecurrentSchema, "ligru": LigruSchema, "sligru": LigruSchema},
    "optim": {"rmsprop": RmspropSchema, "sgd": SgdSchema, "adam": AdamSchema},
    "task": {"hybrid": HybridSchema, "ctc": CtcSchema},
}
# train.yaml has ``defaults: [base_train, ...]``.
PRIMARY_SCHEMAS: dict[str, type] = {"train": TrainSchema}


def register() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent; call before composing)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    for group, options in SCHEMAS.items():
        for option, schema in options.items():
            cs.store(group=group, name=f"base_{option}", node=schema)
    for name, schema in PRIMARY_SCHEMAS.items():
        cs.store(name=f"base_{name}", node=schema)
