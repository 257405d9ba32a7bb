"""A ctypes driver for the espeak-ng library shipped by ``espeakng-loader``.

The library keeps global state, so there is one :class:`Espeak` per process
(:func:`get_espeak`); worker processes each build their own. Synthesis runs in
synchronous retrieval mode: espeak calls our callback with blocks of 16-bit samples
at its native rate (22050 Hz) and the events that fall in each block. Phoneme events
(type 7) carry the espeak-ng phoneme mnemonic and the sample where it starts; word
events (type 1) carry the word's character position in the text.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.errors import AsrError

# espeak_EVENT_TYPE values (speak_lib.h).
EVENT_WORD = 1
EVENT_SENTENCE = 2
EVENT_END = 5
EVENT_MSG_TERMINATED = 6
EVENT_PHONEME = 7
_EVENT_LIST_TERMINATED = 0

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
# espeak_PARAMETER values.
_PARAM_RATE = 1
_PARAM_VOLUME = 2
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_BUFFER_MS = 200  # length of the blocks handed to the callback


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class Event:
    """One synthesis event.

    ``kind`` is an ``EVENT_*`` code; ``sample`` the position in samples at the native
    rate from the start of the utterance; ``name`` the phoneme mnemonic (phoneme
    events, else ""); ``text_position`` (1-based character index) and ``length``
    (characters) locate a word in the input text (word events).
    """

    kind: int
    sample: int
    name: str
    text_position: int
    length: int


@dataclass(frozen=True)
class Synthesis:
    """Audio and events of one utterance. ``audio``: int16 ``[num_samples]`` at ``sample_rate`` Hz."""

    audio: np.ndarray
    sample_rate: int
    events: list[Event]


def espeak_paths() -> tuple[Path, Path]:
    """Paths of ``libespeak-ng`` and its ``espeak-ng-data`` directory from ``espeakng-loader``.

    Raises:
        AsrError: the package is not installed or a path does not exist.
    """
    try:
        import espeakng_loader
    except ImportError as err:
        raise AsrError(
            f"espeak-ng not found: cannot import espeakng_loader ({err}); pip install espeakng-loader"
        ) from err
    library = Path(espeakng_loader.get_library_path())
    if not library.is_file():
        raise AsrError(f"espeak-ng library not found at {library}")
    data = Path(espeakng_loader.__file__).parent / "espeak-ng-data"
    if not (data / "phontab").is_file():
        raise AsrError(f"espeak-ng data not found: {data / 'phontab'} is missing")
    return library, data


class Espeak:
    """One process's espeak-ng engine. Use :func:`get_espeak` rather than building several."""

    def __init__(self, library: Path, data: Path) -> None:
        if not Path(library).is_file():
            raise AsrError(f"espeak-ng library not found at {library}")
        if not (Path(data) / "phontab").is_file():
            raise AsrError(f"espeak-ng data not found: {Path(data) / 'phontab'} is missing")
        try:
            self._lib = ctypes.CDLL(str(library))
        except OSError as err:
            raise AsrError(f"cannot load espeak-ng library {library}: {err}") from err
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p

        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, str(data).encode(), _INITIALIZE_PHONEME_EVENTS
        )
        if rate <= 0:
            raise AsrError(f"espeak-ng failed to initialise with data path {data}")
        self.sample_rate = int(rate)
        self.version = lib.espeak_Info(None).decode()
        self._blocks: list[np.ndarray] = []
        self._events: list[Event] = []
        # espeak keeps only the raw pointer: keep the ctypes callback alive with self.
        self._callback = _SynthCallback(self._on_synth)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav, num_samples, events) -> int:
        if num_samples > 0:
            self._blocks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            name = ev.id.string.decode("utf-8", "replace") if ev.type == EVENT_PHONEME else ""
            self._events.append(Event(ev.type, ev.sample, name, ev.text_position, ev.length))
            i += 1
        return 0  # 0 = carry on synthesising

    def set_voice(self, name: str, pitch: int, pitch_range: int, rate: int, volume: int = 50) -> None:
        """Select a voice such as ``"en-us+m3"`` and set its prosody.

        Args:
            name: espeak voice name, language plus optional ``+variant``.
            pitch: base pitch, 0..100 (espeak default 50).
            pitch_range: pitch range, 0..100 (espeak default 50).
            rate: speaking rate in words per minute, 80..450 (default 175).
            volume: amplitude, 0..200; espeak's default of 100 clips the loudest variants.
        """
        if self._lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise AsrError(f"espeak-ng voice '{name}' not found in its data directory")
        for param, value in (
            (_PARAM_RATE, rate), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range), (_PARAM_VOLUME, volume)
        ):
            if self._lib.espeak_SetParameter(param, int(value), 0) != 0:
                raise AsrError(f"espeak-ng rejected parameter {param}={value} for voice '{name}'")

    def synthesize(self, text: str, seed: int = 0) -> Synthesis:
        """Synthesise ``text`` with the current voice.

        Args:
            text: UTF-8 text (one sentence).
            seed: seed of espeak's noise generator. espeak also carries state from call to
                call (glottal phase, flutter, gain), so the samples repeat exactly only after
                the same sequence of calls in a fresh process.

        Returns:
            The int16 audio at :attr:`sample_rate` and all events in time order.
        """
        self._blocks, self._events = [], []
        self._lib.espeak_ng_SetRandSeed(int(seed))
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        status = self._lib.espeak_Synth(buf, len(buf), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if status != 0:
            raise AsrError(f"espeak-ng failed (status {status}) on sentence '{text}'")
        audio = np.concatenate(self._blocks) if self._blocks else np.zeros(0, np.int16)
        events = sorted(self._events, key=lambda e: e.sample)  # stable: keeps espeak's order on ties
        return Synthesis(audio.astype(np.int16), self.sample_rate, events)


    def text_to_phonemes(self, text: str) -> list[str]:
        """espeak-ng mnemonics (with stress marks) of ``text`` in the current voice, no audio."""
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        ptr = ctypes.c_void_p(ctypes.addressof(buf))
        out: list[str] = []
        while ptr.value:  # one clause per call; espeak sets the pointer to NULL at the end
            clause = self._lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, ord(" ") << 8)
            out.extend((clause or b"").decode("utf-8", "replace").split())
        return out


_ENGINE: Espeak | None = None


def get_espeak() -> Espeak:
    """This process's engine, created on first use from the ``espeakng-loader`` paths."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Espeak(*espeak_paths())
    return _ENGINE
