"""Noisy and reverberant copies of a clean data dir, deterministic for a seed.

Set names (see INTERFACES.md): ``<set>_<noise>_snr<dB>`` with noise ``white``,
``pink`` or ``babble``; ``<set>_reverb_t60_<ms>``; or both, reverberation first
(``test_reverb_t60_600_babble_snr10``).

Every utterance draws its randomness from its own generator, seeded by a SHA-256
hash of (seed, what it is for, utterance id), so output does not depend on the
order or subset of utterances processed. The noise waveform of an utterance does
not depend on the SNR or T60, and its room does not depend on the noise: the
sets of one seed differ only in what their names say.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.data.kaldi_dir import DataDir, audio_present, load_utterance, read_data_dir, write_data_tables
from asr.data.noise import NOISE_TYPES, BabbleSource, active_speech_power, noise_gain, pink_noise, white_noise
from asr.data.reverb import RoomImpulseResponse, reverberate, simulate_rir
from asr.errors import AsrError
from asr.stage import read_done, run_stage

log = logging.getLogger(__name__)

MARKER = "contamination.json"
T60_RANGE_MS = (100, 2000)
_FORMAT_VERSION = 1  # bump when the same settings would give different audio
_FULL_SCALE = 32768.0  # 16-bit PCM: sample = round(x * 32768)
_NAME_RE = re.compile(
    r"^(?P<base>[A-Za-z0-9][A-Za-z0-9.-]*(?:_[A-Za-z0-9.-]+)*?)"
    r"(?:_reverb_t60_(?P<t60>[0-9]+))?"
    r"(?:_(?P<noise>" + "|".join(NOISE_TYPES) + r")_snr(?P<snr>-?[0-9]+(?:\.[0-9]+)?))?$"
)
_RESERVED = re.compile(r"(^|_)(reverb|t60|" + "|".join(NOISE_TYPES) + r"|snr-?[0-9.]*)(_|$)")


def _format_snr(snr_db: float) -> str:
    """``5`` for 5.0, ``-2.5`` for -2.5."""
    return f"{float(snr_db):.6f}".rstrip("0").rstrip(".")


def contaminated_set_name(base: str, noise: str | None, snr_db: float | None,
                          t60_ms: int | None) -> str:
    """Name of a contaminated copy of set ``base``.

    >>> contaminated_set_name("test", "babble", 10, 600)
    'test_reverb_t60_600_babble_snr10'
    >>> contaminated_set_name("test", "white", 5, None)
    'test_white_snr5'
    >>> contaminated_set_name("dev", None, None, None)
    'dev'

    Raises:
        AsrError: a noise without an SNR or the reverse, or an unknown noise.
    """
    _check_settings(noise, snr_db, t60_ms)
    name = base
    if t60_ms is not None:
        name += f"_reverb_t60_{int(t60_ms)}"
    if noise is not None:
        name += f"_{noise}_snr{_format_snr(snr_db)}"
    return name


def parse_set_name(name: str) -> tuple[str, str | None, float | None, int | None]:
    """Inverse of :func:`contaminated_set_name`: ``(base, noise, snr_db, t60_ms)``.

    >>> parse_set_name("test_reverb_t60_600_babble_snr10")
    ('test', 'babble', 10.0, 600)
    >>> parse_set_name("test")
    ('test', None, None, None)

    Raises:
        AsrError: ``name`` is not a clean set name with optional contamination
            suffixes, or its T60 is out of range.
    """
    m = _NAME_RE.match(name)
    if m is None or _RESERVED.search(m["base"]):
        raise AsrError(
            f"test set name '{name}' is not '<set>', '<set>_<noise>_snr<dB>', "
            f"'<set>_reverb_t60_<ms>' or '<set>_reverb_t60_<ms>_<noise>_snr<dB>' "
            f"(noise: {', '.join(NOISE_TYPES)})"
        )
    snr = float(m["snr"]) if m["snr"] is not None else None
    t60 = int(m["t60"]) if m["t60"] is not None else None
    _check_settings(m["noise"], snr, t60)
    return m["base"], m["noise"], snr, t60


def _check_settings(noise: str | None, snr_db: float | None, t60_ms: int | None) -> None:
    if noise is not None and noise not in NOISE_TYPES:
        raise AsrError(f"unknown noise '{noise}'; choose one of {', '.join(NOISE_TYPES)}")
    if (noise is None) != (snr_db is None):
        raise AsrError("noise and snr_db go together: give both or neither")
    if snr_db is not None and not np.isfinite(snr_db):
        raise AsrError(f"snr_db must be a finite number of dB, got {snr_db}")
    if t60_ms is not None and not T60_RANGE_MS[0] <= t60_ms <= T60_RANGE_MS[1]:
        raise AsrError(f"t60_ms must be in {T60_RANGE_MS[0]}..{T60_RANGE_MS[1]} ms, got {t60_ms}")


def utterance_rng(seed: int, purpose: str, *keys: object) -> np.random.Generator:
    """A generator seeded by SHA-256 of (seed, purpose, keys): stable across runs and machines."""
    text = "\x1f".join(str(k) for k in (seed, purpose, *keys))
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return np.random.default_rng(np.frombuffer(digest[:16], dtype="<u4").tolist())


class _RirPool:
    """``num_rirs`` rooms per sample rate for one (seed, T60), simulated on first use."""

    def __init__(self, seed: int, t60_ms: int, num_rirs: int):
        self.seed, self.t60_ms, self.num_rirs = seed, t60_ms, num_rirs
        self._pools: dict[int, list[RoomImpulseResponse]] = {}

    def get(self, index: int, sample_rate: int) -> RoomImpulseResponse:
        if sample_rate not in self._pools:
            log.info("simulating %d rooms with T60 %d ms at %d Hz",
                     self.num_rirs, self.t60_ms, sample_rate)
            self._pools[sample_rate] = [
                simulate_rir(utterance_rng(self.seed, "room", self.t60_ms, sample_rate, k),
                             self.t60_ms / 1000.0, sample_rate)
                for k in range(self.num_rirs)
            ]
        return self._pools[sample_rate][index]


def contaminate_data_dir(
    src: str | os.PathLike | DataDir,
    out_dir: str | os.PathLike,
    *,
    noise: str | None = None,
    snr_db: float | None = None,
    t60_ms: int | None = None,
    seed: int = 0,
    babble_source: DataDir | str | os.PathLike | None = None,
    num_babble_speakers: int = 5,
    num_rirs: int = 8,
    babble_speakers: Sequence[str] | None = None,
) -> Path:
    """Write a noisy and/or reverberant copy of data dir ``src`` to ``out_dir``.

    Audio goes to ``out_dir/wav/<utt>.wav`` (16-bit PCM, the source sample rate);
    ``out_dir`` is a Kaldi data dir with the same utterance ids, ``text``,
    phones, ``utt2spk`` and ``utt2dur``, and a ``wav.scp`` of absolute paths
    (``segments`` are resolved: one file per utterance). ``out_dir/contamination.json``
    records the settings, a fingerprint of the inputs and, per utterance, the
    room, babble utterances and gains used. The directory is a stage of
    :mod:`asr.stage`: it appears at once (built beside it, then renamed, ``done.json``
    last); if it already holds output of the same settings and inputs, nothing is done.

    Reverberation: each utterance is convolved with one of ``num_rirs`` simulated
    rooms whose measured T60 is ``t60_ms`` (see :mod:`asr.data.reverb`), advanced by
    the direct-path delay so that the direct sound keeps the timing of the clean
    utterance (its frame labels still apply), cut to the clean length and scaled
    to the clean utterance's total energy.

    Noise: white (Gaussian), pink (1/f) or babble (``num_babble_speakers``
    utterances of distinct ``babble_source`` speakers absent from ``src``, each
    level-normalised, looped from a random offset, summed). The SNR is
    ``10 log10(P_speech / P_noise)`` where ``P_speech`` is the active speech power
    (:func:`asr.data.noise.active_speech_power`) of the *clean, dry* utterance and
    ``P_noise`` the mean power of the added noise over the whole utterance. With
    reverberation the noise is added to the reverberant speech, still scaled
    against the dry speech (which has the same total energy). Should the mix
    exceed full scale, speech and noise are scaled down together (the SNR is kept;
    the gain is recorded as ``output_gain``); the realised SNR is then exact up
    to 16-bit rounding (about -101 dB full scale).

    Args:
        src: clean data dir (path or :class:`DataDir`).
        out_dir: output data dir.
        noise: ``white``, ``pink``, ``babble`` or None.
        snr_db: target SNR in dB; required with ``noise``.
        t60_ms: reverberation time in ms (100..2000) or None for no reverberation.
        seed: any integer; the same seed gives byte-identical audio.
        babble_source: data dir of other speakers of the same corpus; required for babble.
        num_babble_speakers: voices per babble signal (default 5).
        num_rirs: rooms simulated per (seed, T60); each utterance draws one (default 8).
        babble_speakers: draw babble only from these speakers of ``babble_source`` (one
            pool of :func:`babble_speaker_pools`), never from the utterance's own speaker;
            ``src`` may then be the babble source itself (a multi-condition copy of the
            training set). None: every ``babble_source`` speaker absent from ``src``.

    Returns:
        ``out_dir``.

    Raises:
        AsrError: bad settings, too few babble speakers, or an utterance whose audio
            is missing, unreadable or silent (named); ``out_dir`` is then untouched.
    """
    _check_settings(noise, snr_db, t60_ms)
    if noise is None and t60_ms is None:
        raise AsrError("contaminate_data_dir: give a noise with snr_db, a t60_ms, or both")
    if noise == "babble" and babble_source is None:
        raise AsrError("babble noise needs babble_source: a data dir of other speakers")
    if t60_ms is not None and num_rirs < 1:
        raise AsrError(f"num_rirs must be at least 1, got {num_rirs}")
    data = src if isinstance(src, DataDir) else read_data_dir(src)
    babble_data = None
    if noise == "babble":
        babble_data = (babble_source if isinstance(babble_source, DataDir)
                       else read_data_dir(babble_source))
    out_dir = Path(out_dir).resolve()
    for utt in data.utts:
        if "/" in utt or "\\" in utt or utt in (".", ".."):
            raise AsrError(f"utterance id '{utt}' cannot be a file name")

    settings = {
        "version": _FORMAT_VERSION, "noise": noise,
        "snr_db": None if snr_db is None else float(snr_db),
        "t60_ms": None if t60_ms is None else int(t60_ms), "seed": int(seed),
        "num_babble_speakers": num_babble_speakers if noise == "babble" else None,
        "num_rirs": num_rirs if t60_ms is not None else None,
        "source": _fingerprint(data),
        "babble_source": _fingerprint(babble_data) if babble_data is not None else None,
    }
    if noise == "babble" and babble_speakers is not None:
        settings["babble_speakers"] = sorted(babble_speakers)

    def build(staging: Path) -> dict:
        babble = None
        if babble_data is not None:
            if babble_speakers is None:
                babble = BabbleSource(babble_data, set(data.utt2spk.values()), num_babble_speakers)
            else:  # a pool: each utterance leaves out only its own speaker
                babble = BabbleSource(babble_data, set(), num_babble_speakers, speakers=babble_speakers)
        rooms = _RirPool(seed, t60_ms, num_rirs) if t60_ms is not None else None
        (staging / "wav").mkdir()
        info, durations = {}, {}
        for utt in data.utts:
            y, sr, info[utt] = _contaminate_utterance(
                data, utt, noise=noise, snr_db=snr_db, seed=seed, babble=babble, rooms=rooms)
            sf.write(staging / "wav" / f"{utt}.wav", y, sr, subtype="PCM_16")
            durations[utt] = len(y) / sr
        num_scaled = sum(1 for v in info.values() if v["output_gain"] < 1.0)
        if num_scaled:
            log.warning("%s: %d of %d utterances scaled down to avoid clipping",
                        out_dir, num_scaled, len(info))
        _write_tables(data, durations, staging, staging)  # wav.scp names staging: asr.stage retargets it
        with open(staging / MARKER, "w", encoding="utf-8") as f:
            json.dump({"settings": settings, "num_scaled_to_avoid_clipping": num_scaled,
                       "utterances": info}, f, indent=1, sort_keys=True)
        return {"utterances": len(info), "num_scaled_to_avoid_clipping": num_scaled}

    # wav.scp names the audio by absolute paths: a moved set is rebuilt, not reused with dead paths.
    run_stage(out_dir, settings, build, name=f"data/{out_dir.name}", version=_FORMAT_VERSION, check=audio_present,
              inputs=[p for p in (src, babble_source) if isinstance(p, (str, os.PathLike)) and read_done(p)])
    return out_dir


def babble_speaker_pools(speakers: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split a corpus's training speakers into two disjoint babble pools: (training-time,
    test-time). Sorted speakers alternate between them, so each pool has about half of
    each gender (TIMIT's ids start with it). A multi-condition model then never hears the
    voices of the test babble.

    >>> babble_speaker_pools(["FA", "FB", "MA", "MB", "MC"])
    (['FB', 'MB'], ['FA', 'MA', 'MC'])
    """
    ordered = sorted(set(speakers))
    return ordered[1::2], ordered[0::2]


def _contaminate_utterance(data: DataDir, utt: str, *, noise: str | None,
                           snr_db: float | None, seed: int, babble: BabbleSource | None,
                           rooms: _RirPool | None) -> tuple[np.ndarray, int, dict]:
    """Contaminated samples of ``utt`` as int16 [T], its sample rate, and what was done."""
    try:
        clean, sr = load_utterance(data, utt)
    except AsrError as e:
        raise AsrError(f"utterance '{utt}': {e}") from None
    except KeyError:
        raise AsrError(f"utterance '{utt}': no audio entry in wav.scp") from None
    x = clean.astype(np.float64)
    info: dict = {}
    if rooms is not None:
        index = int(utterance_rng(seed, "room-choice", rooms.t60_ms, utt).integers(rooms.num_rirs))
        rir = rooms.get(index, sr)
        x = reverberate(x, rir)
        info.update(room=index, room_t60_s=round(rir.t60, 4))
    if noise is not None:
        speech_power = active_speech_power(clean, sr)
        if speech_power <= 0.0:
            raise AsrError(f"utterance '{utt}': audio is silent, its SNR is undefined")
        rng = utterance_rng(seed, "noise", noise, utt)
        if noise == "white":
            n = white_noise(rng, len(x))
        elif noise == "pink":
            n = pink_noise(rng, len(x))
        else:
            n, used = babble.make(rng, len(x), sr, exclude=data.utt2spk.get(utt))
            info["babble"] = used
        gain = noise_gain(speech_power, n, snr_db)
        x = x + gain * n
        info["noise_gain"] = gain
    peak = float(np.max(np.abs(x)))
    output_gain = min(1.0, (32767.0 / _FULL_SCALE) / peak) if peak > 0 else 1.0
    info["output_gain"] = output_gain
    y = np.clip(np.round(x * output_gain * _FULL_SCALE), -32768, 32767).astype(np.int16)
    return y, sr, info


def _fingerprint(data: DataDir) -> str:
    """SHA-256 of a data dir's tables and of the size and mtime of its audio files."""
    h = hashlib.sha256()
    for table in (data.wav, data.text, data.phones, data.utt2spk):
        h.update(json.dumps(table, sort_keys=True).encode("utf-8"))
    h.update(json.dumps({u: [s.recording, s.start, s.end] for u, s in data.segments.items()},
                        sort_keys=True).encode("utf-8"))
    for rec in sorted(data.wav):
        try:
            st = os.stat(data.wav[rec])
            h.update(f"{rec} {st.st_size} {st.st_mtime_ns}\n".encode("utf-8"))
        except OSError:
            h.update(f"{rec} missing\n".encode("utf-8"))
    return h.hexdigest()


def _write_tables(data: DataDir, durations: dict[str, float], out_dir: Path,
                  staging: Path) -> None:
    """Write the Kaldi tables of the output into ``staging``; wav.scp names final paths."""
    utts = data.utts
    out = DataDir(
        wav={u: str(out_dir / "wav" / f"{u}.wav") for u in utts},
        text={u: data.text[u] for u in utts if u in data.text},
        phones={u: data.phones[u] for u in utts if u in data.phones},
        utt2spk={u: data.utt2spk[u] for u in utts},
        utt2dur=durations,
    )
    write_data_tables(out, staging)
