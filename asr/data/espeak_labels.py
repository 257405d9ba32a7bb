"""espeak-ng synthesis events -> TIMIT-61 phone segments (``.PHN``) and word segments (``.WRD``).

Each espeak phoneme event starts a phone that lasts until the next event. Mnemonics map
to TIMIT labels through ``resources/espeak_to_timit.tsv``. Stops and affricates map to a
closure plus a release (``tcl t``): the release is the espeak phoneme's own span (from
its event, which espeak emits at the burst) and the closure is the silence just before
it, which espeak produces as a pre-pause after the word event (word-initial stops) or at
the end of the phone before (see :func:`closure_start`). Where there is no such silence
(voiced stops voice through their closure inside their own span), the closure runs from
the event to the burst found in the signal (:func:`find_burst`); a stop released at its
event (after a nasal, which holds the closure) gets no closure, and one with no burst
found has its span halved (counted in ``Labelled.num_halved``). Pauses at the ends of the
utterance become ``h#``, inner ones ``pau``. A phone belongs to the word whose word event
came last before it, as espeak orders its events; words espeak speaks as one are split by
:func:`align_words`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import numpy as np
from scipy.signal import butter, sosfilt

from asr.data.espeak import EVENT_PHONEME, EVENT_WORD, Synthesis
from asr.data.phones import PhoneSegment
from asr.errors import AsrError

PAUSE = "pau"
SILENCE = "h#"
_STRESS = re.compile(r"^[',]+")
_WORD = re.compile(r"[A-Za-z0-9']+")
_CLOSURE_FRAME = 55  # samples at 22050 Hz (2.5 ms) for the silence scan
_QUIET_FRACTION = 0.02  # a frame is silent below 2% (-34 dB) of the loud frames' RMS
_MIN_CLOSURE = 0.010  # seconds: shorter silences are not a closure
_BURST_BAND_HZ = 2500.0  # a release burst shows as energy above this; a voice bar has little
_BURST_RISE_DB = 12.0  # the burst rises this far above the voice bar's mean power
_BURST_LOUD_DB = 25.0  # and is at most this far below the utterance's loud frames
_RELEASED_FRAMES = 4  # 10 ms of loud frames at a voiced stop's event: released there


def load_phone_map() -> dict[str, tuple[str, ...]]:
    """espeak-ng mnemonic (stress marks removed) -> one TIMIT label, or closure + release."""
    text = resources.files("asr.data").joinpath("resources/espeak_to_timit.tsv").read_text()
    table: dict[str, tuple[str, ...]] = {}
    rows = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    for line in rows[1:]:  # rows[0] is the header
        espeak, timit = line.split("\t")[:2]
        table[espeak] = tuple(timit.split())
    return table


def strip_stress(mnemonic: str) -> str:
    """``"'a"`` -> ``"a"``: espeak prefixes stressed phonemes with ' (primary) or , (secondary)."""
    return _STRESS.sub("", mnemonic)


@dataclass
class _Phone:
    name: str  # espeak mnemonic, stress removed
    labels: tuple[str, ...]
    start: int  # samples at the synthesis rate
    end: int
    word: int | None  # index into the word list; None for pauses
    closure: int | None = None  # start of the closure, for closure + release phones


@dataclass(frozen=True)
class Labelled:
    """Segments of one utterance in samples at the output rate; ``words`` label its words."""

    phones: list[PhoneSegment]
    words: list[PhoneSegment]
    num_dropped: int  # zero-length phones dropped (events at the same sample)
    num_unaligned_words: int  # words of the text that got no phones (left out of ``words``)
    num_halved: int = 0  # voiced stops with no silence and no burst found: span halved


def _tokens(text: str) -> list[tuple[int, str]]:
    """Words of ``text`` as (1-based position of their last character, lower-case label)."""
    return [(m.end(), m.group().lower().strip("'")) for m in _WORD.finditer(text)]


def align_words(spoken: list[str], citations: list[list[str]]) -> list[int]:
    """Which word each spoken phoneme belongs to, for words espeak spoke as one group.

    Aligns ``spoken`` (the group's mnemonics, stress removed) with the concatenated
    citation forms of its words by edit distance; a spoken phoneme belongs to the word of
    the citation phoneme it is aligned with (an inserted one to the word before it).

    Returns:
        one word index per spoken phoneme, non-decreasing.
    """
    ref = [(p, w) for w, phones in enumerate(citations) for p in phones]
    n, m = len(spoken), len(ref)
    cost = np.zeros((n + 1, m + 1), dtype=np.int64)
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            sub = cost[i - 1, j - 1] + (spoken[i - 1] != ref[j - 1][0])
            cost[i, j] = min(sub, cost[i - 1, j] + 1, cost[i, j - 1] + 1)
    owner = [0] * n
    i, j = n, m
    while i > 0:
        if j > 0 and cost[i, j] == cost[i - 1, j - 1] + (spoken[i - 1] != ref[j - 1][0]):
            owner[i - 1] = ref[j - 1][1]
            i, j = i - 1, j - 1
        elif j > 0 and cost[i, j] == cost[i, j - 1] + 1:
            j -= 1
        else:  # spoken phoneme with no citation counterpart: goes with the word before
            owner[i - 1] = ref[j - 1][1] if j > 0 else 0
            i -= 1
    for k in range(1, n):  # keep it monotonic
        owner[k] = max(owner[k], owner[k - 1])
    return owner


def _frame_rms(audio: np.ndarray) -> np.ndarray:
    n = len(audio) // _CLOSURE_FRAME
    frames = audio[: n * _CLOSURE_FRAME].astype(np.float64).reshape(n, _CLOSURE_FRAME)
    return np.sqrt((frames**2).mean(axis=1))


def closure_start(release: int, earliest: int, rms: np.ndarray, quiet: float) -> int:
    """Start of the silence that ends at ``release``, scanning back no further than ``earliest``.

    Args:
        release: sample of the burst (the stop's phoneme event).
        earliest: the closure may not start before this sample.
        rms: RMS of consecutive :data:`_CLOSURE_FRAME`-sample frames of the audio.
        quiet: RMS below which a frame is silent.
    """
    frame = release // _CLOSURE_FRAME  # the frame holding the release is not used
    start = release
    while frame > 0 and (frame - 1) * _CLOSURE_FRAME >= earliest and rms[frame - 1] < quiet:
        frame -= 1
        start = frame * _CLOSURE_FRAME
    return start


def _collect_phones(
    synth: Synthesis,
    phone_map: dict[str, tuple[str, ...]],
    text: str,
    voice: str,
    citation: Callable[[str], list[str]],
) -> tuple[list[_Phone], list[tuple[int | None, str]]]:
    """Phones in time order, and the sentence's words as (word-event sample or None, label).

    espeak sometimes speaks several words as one (``on the``: one word event) and sometimes
    gives one word two events (``most``). Events are matched to the text's words by their
    character position; the phones of a multi-word event are split among its words by the
    alignment with each word's citation form (:func:`align_words`).
    """
    tokens = _tokens(text)
    phones: list[_Phone] = []
    groups: list[tuple[int, int]] = []  # (first token, word-event sample) per word event
    for ev in synth.events:
        if ev.kind == EVENT_WORD:
            tok = next((i for i, (last, _) in enumerate(tokens) if last >= ev.text_position), None)
            if tok is not None and (not groups or tok > groups[-1][0]):
                groups.append((tok, ev.sample))
        elif ev.kind == EVENT_PHONEME:
            name = strip_stress(ev.name)
            if name not in phone_map:
                raise AsrError(
                    f"espeak-ng phoneme '{ev.name}' (voice {voice}, sentence '{text}') is not in "
                    "asr/data/resources/espeak_to_timit.tsv"
                )
            labels = phone_map[name]
            in_word = labels != (PAUSE,) and groups
            phones.append(_Phone(name, labels, ev.sample, 0, len(groups) - 1 if in_word else None))
    for i, ph in enumerate(phones):
        ph.end = phones[i + 1].start if i + 1 < len(phones) else len(synth.audio)
    for prev, ph in zip(phones, phones[1:]):
        if ph.end == ph.start and PAUSE not in ph.labels and PAUSE not in prev.labels:
            # espeak renders some post-vocalic liquids inside the vowel ("bowls": l has no
            # samples of its own): give them the last third of the phone before.
            ph.start = prev.end = prev.end - (prev.end - prev.start) // 3
    words: list[tuple[int | None, str]] = [(None, label) for _, label in tokens]
    for g, (first, sample) in enumerate(groups):
        words[first] = (sample, tokens[first][1])
        last = groups[g + 1][0] if g + 1 < len(groups) else len(tokens)
        members = [ph for ph in phones if ph.word == g]
        if last - first == 1:
            owners = [0] * len(members)
        else:
            citations = [citation(tokens[t][1]) for t in range(first, last)]
            owners = align_words([ph.name for ph in members], citations)
        for ph, w in zip(members, owners):
            ph.word = -1 - (first + w)  # negative while renumbering, so groups and tokens do not mix
    for ph in phones:
        if ph.word is not None:
            ph.word = -1 - ph.word
    return phones, words


def _band_db(audio: np.ndarray, rate: int) -> np.ndarray:
    """Energy above :data:`_BURST_BAND_HZ` of consecutive :data:`_CLOSURE_FRAME`-sample frames, dB."""
    sos = butter(4, _BURST_BAND_HZ, "highpass", fs=rate, output="sos")
    high = sosfilt(sos, audio.astype(np.float64))
    n = len(high) // _CLOSURE_FRAME
    power = (high[: n * _CLOSURE_FRAME].reshape(n, _CLOSURE_FRAME) ** 2).mean(axis=1)
    return 10.0 * np.log10(power + 1e-6)


def find_burst(high_db: np.ndarray, loud_db: float) -> int | None:
    """Frame of the release burst in a voiced stop's span, or None if there is none.

    A voiced stop that is not preceded by silence voices through its closure: a voice bar,
    with little energy at high frequencies ("bar" frames: more than :data:`_BURST_LOUD_DB`
    below the utterance's loud frames). The burst is the first frame after the bar whose
    high-band energy is back within :data:`_BURST_LOUD_DB` of the loud frames and
    :data:`_BURST_RISE_DB` above the bar's mean power. A span whose first
    :data:`_RELEASED_FRAMES` frames are all loud was released at its event (after a nasal,
    which holds the closure, or an affricate straight out of a vowel): the burst is frame 0.

    Args:
        high_db: high-band energy (dB) of the frames of the span, from the stop's event,
            trailing silence removed.
        loud_db: high-band energy (dB) of the utterance's loud frames (90th percentile).

    >>> find_burst(np.array([40.0, 20, 10, 15, 12, 45, 44]), 55.0)  # tail, bar, burst
    5
    >>> find_burst(np.array([42.0, 44, 45, 43, 40, 20]), 55.0)  # released at the event
    0
    >>> find_burst(np.array([20.0, 18, 22, 25]), 55.0) is None  # bar only
    True
    """
    threshold = loud_db - _BURST_LOUD_DB
    bar = np.flatnonzero(high_db < threshold)
    if len(bar) == 0 or bar[0] >= _RELEASED_FRAMES:
        return 0 if len(high_db) else None
    power = 0.0
    count = 0
    for j in range(int(bar[0]), len(high_db)):
        if count and high_db[j] >= threshold and high_db[j] >= 10.0 * np.log10(power / count) + _BURST_RISE_DB:
            return j
        if high_db[j] < threshold:
            power += 10.0 ** (high_db[j] / 10.0)
            count += 1
    return None


def _place_closures(
    phones: list[_Phone], words: list[tuple[int | None, str]], audio: np.ndarray, rate: int
) -> int:
    """Set ``closure`` of each closure + release phone (see the module docstring).

    Returns:
        How many stops had neither a silence before the event nor a burst in their span;
        their span is halved into closure and release.
    """
    rms = _frame_rms(audio)
    quiet = _QUIET_FRACTION * float(np.percentile(rms, 90)) if len(rms) else 0.0
    min_closure = int(_MIN_CLOSURE * rate)
    voiced: list[_Phone] = []
    for i, ph in enumerate(phones):
        if len(ph.labels) != 2 or ph.end <= ph.start:
            continue
        prev = phones[i - 1] if i > 0 else None
        prev_start = prev.start if prev is not None else 0
        first_of_word = ph.word is not None and (prev is None or prev.word != ph.word)
        event = words[ph.word][0] if first_of_word else None
        if event is not None and prev_start <= event < ph.start:
            # espeak emits the word event, then the stop's pre-pause, then the phoneme event.
            start = event
        else:
            # Leave at least half of the previous phone to it.
            start = closure_start(ph.start, prev_start + (ph.start - prev_start) // 2, rms, quiet)
        if ph.start - start < min_closure:
            voiced.append(ph)  # voices through its closure: placed below, once spans are final
            continue
        ph.closure = start
        if prev is not None:
            prev.end = start
    if not voiced:
        return 0
    high = _band_db(audio, rate)
    loud = float(np.percentile(high, 90)) if len(high) else 0.0
    halved = 0
    for ph in voiced:
        first, last = ph.start // _CLOSURE_FRAME, ph.end // _CLOSURE_FRAME
        while last > first and rms[last - 1] < quiet:
            last -= 1  # the silence before a following pause is not the stop's
        burst = find_burst(high[first:last], loud)
        if burst is None:
            halved += 1
            release = ph.start + (ph.end - ph.start) // 2
        else:
            release = max(ph.start, (first + burst) * _CLOSURE_FRAME)
        if release > ph.start:
            ph.closure, ph.start = ph.start, release
    return halved


def _to_output(pos: int, ratio: float, offset: int) -> int:
    return offset + int(round(pos * ratio))


def label_synthesis(
    synth: Synthesis,
    text: str,
    voice: str,
    phone_map: dict[str, tuple[str, ...]],
    citation: Callable[[str], list[str]],
    out_rate: int,
    num_out: int,
    offset: int,
) -> Labelled:
    """``.PHN`` and ``.WRD`` segments of one synthesised sentence.

    Args:
        synth: espeak output (audio at ``synth.sample_rate`` and its events).
        text: the sentence synthesised (word labels are cut from it).
        voice: voice name, for error messages.
        phone_map: from :func:`load_phone_map`.
        citation: espeak mnemonics (stress removed) of one word said alone, to split the
            phones of words espeak speaks as one.
        out_rate: sample rate of the written audio, Hz.
        num_out: samples in the written audio (speech plus padding).
        offset: output samples of silence padded before the speech.

    Returns:
        Phone segments covering ``[0, num_out)`` contiguously with ``h#`` at both ends, and
        one word segment per word that has phones.

    Raises:
        AsrError: a phoneme missing from the mapping, naming it, the sentence and the voice.
    """
    phones, words = _collect_phones(synth, phone_map, text, voice, citation)
    halved = _place_closures(phones, words, synth.audio, synth.sample_rate)
    ratio = out_rate / synth.sample_rate
    # (start, end, label, word) in output samples, before trimming the silent ends.
    raw: list[tuple[int, int, str, int | None]] = []
    for ph in phones:
        start, end = _to_output(ph.start, ratio, offset), _to_output(ph.end, ratio, offset)
        if ph.closure is not None:
            raw.append((_to_output(ph.closure, ratio, offset), start, ph.labels[0], ph.word))
        raw.append((start, end, ph.labels[-1], ph.word))
    speech = [r for r in raw if r[2] != PAUSE and r[1] > r[0]]
    if not speech:
        raise AsrError(f"espeak-ng produced no phonemes for sentence '{text}' (voice {voice})")
    first, last = speech[0][0], speech[-1][1]
    segs: list[tuple[int, int, str, int | None]] = [(0, first, SILENCE, None)]
    dropped = 0
    for r in raw:
        start, end = max(r[0], first), min(r[1], last)
        if end <= start:
            dropped += r[0] >= first and r[1] <= last  # count only inner zero-length phones
            continue
        if r[2] == PAUSE and segs[-1][2] == PAUSE:
            segs[-1] = (segs[-1][0], end, PAUSE, None)  # merge adjacent pauses
        else:
            segs.append((start, end, r[2], r[3]))
    segs.append((last, num_out, SILENCE, None))
    segs = [s for s in segs if s[1] > s[0]]
    phone_segs = [PhoneSegment(s, e, lab) for s, e, lab, _ in segs]
    word_segs = []
    for w, (_, label) in enumerate(words):
        mine = [s for s in segs if s[3] == w]
        if mine and label:
            word_segs.append(PhoneSegment(mine[0][0], mine[-1][1], label))
    return Labelled(phone_segs, word_segs, dropped, len(words) - len(word_segs), halved)
