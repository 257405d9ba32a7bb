"""Options of the feature pipeline: extraction (stored) and transforms (applied on reading)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from asr.errors import AsrError

KINDS = ("fbank", "mfcc", "kaldi_scp")
CMVN_MODES = ("none", "speaker_mean", "speaker_meanvar")

# Fields that only change how stored features are transformed when read; changing
# them never triggers re-extraction.
TRANSFORM_FIELDS = ("cmvn", "deltas", "splice_left", "splice_right", "subsample")
# Fields only MFCC extraction reads.
MFCC_FIELDS = ("num_ceps", "cepstral_lifter")


@dataclass
class FeatureConfig:
    """Feature options; Kaldi names and units (``frame_length``/``frame_shift`` in ms, Hz).

    Attributes:
        kind: ``fbank``, ``mfcc`` or ``kaldi_scp`` (wrap an existing Kaldi ``feats.scp``).
        num_mel_bins: triangular mel bins (Kaldi's fbank default is 23; we default to 40).
        num_ceps: cepstra kept for MFCC, C0 included.
        frame_length, frame_shift: window length and hop, ms.
        dither: Gaussian dither std, in int16 sample units (Kaldi scale); 0 disables.
            Seeded per utterance from ``seed`` and the utterance id.
        use_energy: fbank: prepend log energy as an extra dim. MFCC: replace C0 by it.
        energy_floor: floor on the energy (absolute); 0 disables.
        low_freq, high_freq: mel range in Hz; ``high_freq <= 0`` is an offset from Nyquist.
        preemphasis_coefficient: Kaldi ``--preemphasis-coefficient``.
        window_type: ``povey``, ``hamming``, ``hanning``, ``rectangular`` or ``blackman``.
        cepstral_lifter: MFCC liftering coefficient (0 disables).
        snip_edges: Kaldi ``--snip-edges``: only frames fully inside the audio.
        sample_rate: expected rate, Hz. Other rates are resampled (with a warning),
            or rejected if ``resample`` is false.
        resample: see ``sample_rate``.
        cmvn: per-speaker normalisation applied on reading: ``none``, ``speaker_mean``
            or ``speaker_meanvar``; statistics come from the same set's speaker.
        deltas: 0, 1 or 2: append Kaldi deltas (window 2) up to this order.
        splice_left, splice_right: frames of context appended on each side.
        subsample: keep every ``subsample``-th frame after splicing (1: all). With
            ``splice_left = splice_right = 1`` and 3, each kept frame stacks three 10 ms frames
            (a 30 ms frame rate): CTC only (hybrid targets are one pdf per 10 ms frame); the
            recurrence then runs over a third of the steps.
        seed: base seed of the per-utterance dither.
        scp: ``kaldi_scp`` only: path of the ``feats.scp`` to wrap; ``{set}`` in it is
            replaced by the set name (the store directory's name).
    """

    kind: str = "fbank"
    num_mel_bins: int = 40
    num_ceps: int = 13
    frame_length: float = 25.0
    frame_shift: float = 10.0
    dither: float = 1.0
    use_energy: bool = False
    energy_floor: float = 0.0
    low_freq: float = 20.0
    high_freq: float = 0.0
    preemphasis_coefficient: float = 0.97
    window_type: str = "povey"
    cepstral_lifter: float = 22.0
    snip_edges: bool = True
    sample_rate: int = 16000
    resample: bool = True
    cmvn: str = "speaker_mean"
    deltas: int = 0
    splice_left: int = 0
    splice_right: int = 0
    subsample: int = 1
    seed: int = 0
    scp: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise AsrError(f"features.kind: '{self.kind}' is not one of {', '.join(KINDS)}")
        if self.cmvn not in CMVN_MODES:
            raise AsrError(f"features.cmvn: '{self.cmvn}' is not one of {', '.join(CMVN_MODES)}")
        if self.deltas not in (0, 1, 2):
            raise AsrError(f"features.deltas: {self.deltas} must be 0, 1 or 2")
        if self.splice_left < 0 or self.splice_right < 0:
            raise AsrError("features.splice_left/splice_right must be >= 0")
        if not isinstance(self.subsample, int) or self.subsample < 1:
            raise AsrError(f"features.subsample: {self.subsample} must be an integer >= 1")
        if self.kind == "kaldi_scp" and not self.scp:
            raise AsrError("features.scp: required with features=kaldi_scp (path of a Kaldi feats.scp)")
        if self.kind == "mfcc" and self.num_ceps > self.num_mel_bins:
            raise AsrError(
                f"features.num_ceps ({self.num_ceps}) exceeds features.num_mel_bins ({self.num_mel_bins})"
            )
        if self.frame_shift <= 0 or self.frame_length <= 0:
            raise AsrError("features.frame_length and features.frame_shift must be > 0 (ms)")

    def extraction_options(self) -> dict:
        """The options that determine the stored (raw) features; a store's fingerprint.

        MFCC-only fields are left out for fbank (changing them must not re-extract), and a
        wrapped scp (``kaldi_scp``) has no extraction options but its path.
        """
        if self.kind == "kaldi_scp":  # nothing is extracted: the wrapped scp is all there is
            return {"kind": self.kind, "scp": self.scp}
        skip = TRANSFORM_FIELDS + (MFCC_FIELDS if self.kind != "mfcc" else ())
        return {k: v for k, v in asdict(self).items() if k not in skip}

    @classmethod
    def from_dict(cls, values: dict) -> "FeatureConfig":
        """Build from a plain dict (e.g. a resolved Hydra group); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise AsrError(f"features: unknown option(s) {', '.join(unknown)}")
        return cls(**values)
