"""Piper (VITS) syntheses -> TIMIT-61 phone segments (``.PHN``) and word segments (``.WRD``).

Piper speaks a sequence of phoneme ids: ``^`` (BOS), then each phoneme symbol followed by a
pad ``_``, then ``$`` (EOS); the en-us voices' symbols are espeak-ng IPA, one code point per
id. With alignments the model says how many audio samples each id lasted (whole hops of 256
samples). :func:`label_piper` turns that into TIMIT labels by these rules:

* A pad ``_`` belongs to the unit after it: it is the transition into that unit (``^`` and
  its pad are the leading silence). Given to the unit before, the labels' boundaries came
  about 1.2 hops later than the GMM aligner's, and the same mono alignment of mini-TIMIT
  small's Piper speakers scored 73.5 % frame accuracy instead of 78.1 %.
* Stress marks ``ˈ ˌ`` merge into the phone after them. espeak-ng puts them before the
  stressed vowel, not before the syllable's onset (``kənˈuː``), and piper gives them real
  durations that sound like that vowel.
* The other symbols are tokenised into units, longest match first, with the table
  ``resources/piper_ipa_to_timit.tsv``: diphthongs (``aɪ``), affricates (``tʃ``), long vowels
  (``iː``) and syllabic consonants (``n`` + U+0329) span several ids. A length mark ``ː``
  that no unit takes merges into the unit before it. ``əl`` (espeak's syllabic l) is ``el``
  only where no vowel follows (``little``); before a vowel (``collapse``) it is ``ə`` + ``l``.
* Word spaces, punctuation (``, . ? ! ; :``) and ``^ $`` are boundaries; a run of them with
  their pads is a boundary region. The regions at the two ends are ``h#``, moved to the
  signal: ``h#`` ends at the first frame that is not silent and starts after the last one,
  taking no more than half of the first or last phone (an utterance-initial stop keeps its
  silent start: that is its closure), and keeps the ``^`` and ``$`` ids (but for what an
  initial stop's closure takes, below).
* An inner boundary region is ``pau`` when its longest run of silent frames lasts at least
  :data:`MIN_PAUSE`: the pause is that run, widened over the silent frames on either side
  into the neighbouring phones (up to half of each; not into a following stop, whose silence
  is its closure); what is left of the region on either side goes to the neighbour on that
  side. Otherwise the region is split evenly between the phones before and after it. A word
  space (no punctuation) before a stop is always split evenly: its silence is the stop's
  closure, found below. Silence here is below :data:`PAUSE_FRACTION` (-60 dB) of the loud
  frames' RMS: piper's pauses are digital silence (-80 dB), while weak fricatives and the
  gaps piper leaves between words run at -35 to -55 dB.
* Stops and affricates (two labels in the table, ``tcl t``) are closure + release. The
  closure is the silence before the burst, as in :mod:`asr.data.espeak_labels`, with the
  same frames (:data:`~asr.data.espeak_labels._CLOSURE_FRAME` samples, 2.5 ms at 22050 Hz)
  and silence (below 2% of the loud frames' RMS); a voiced stop's closure may also be a voice
  bar (high band more than 25 dB below the loud frames). The burst is the first sound after
  at least two closure frames: for a voiceless stop a frame that is not silent with sound
  again within two frames, for a voiced one a frame that is not a voice bar. Piper's
  durations are whole hops, so the burst is looked for from :data:`BURST_SLACK` before the
  stop's span (no further than half of the segment before) to half of the phone after (not
  into a pause or a following stop); inside the span the burst after the longest closure
  wins, else the one nearest the span. The closure runs back from the burst over closure
  frames, then over silence (:func:`~asr.data.espeak_labels.closure_start`) up to half of
  the phone before, or :data:`BURST_SLACK` into a pause or ``h#`` (half of it at most);
  loud frames at the start of the span
  before the closure go to the phone before. A burst at the end of the span or in the next
  phone takes up to :data:`BURST_SLACK` of it as the release (half of it at most). A stop
  with no burst found (unreleased before another stop or a pause, or with no closure: after a
  nasal, in ``st``) has its final span halved into closure and release, counted in
  ``num_halved``. (espeak's :func:`~asr.data.espeak_labels.find_burst` does not fit: it
  reads a loud span start as "released at the event", and its 12 dB rise over the voice bar
  misses piper's gradual bursts.)
* Words: the groups of units between boundaries are piper's words. When there are as many
  groups as text words they match one to one. Otherwise espeak-ng has run words together
  (``on the`` -> ``ɔnðə``, ``at once`` -> ``ɐtwˈʌns``, ``hot-cross``) or split one: the
  groups are matched to the words by edit distance between their units and the words'
  citation forms (each word phonemised alone; vowels compare equal), and a group of several
  words is split among them with :func:`~asr.data.espeak_labels.align_words`. A word that
  gets no unit raises :class:`AsrError`, naming the text.
"""

from __future__ import annotations

import itertools
import re
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

import numpy as np

from asr.data.espeak_labels import (
    _BURST_LOUD_DB,
    _CLOSURE_FRAME,
    _QUIET_FRACTION,
    _band_db,
    _frame_rms,
    align_words,
    closure_start,
)
from asr.data.phones import TIMIT61, PhoneSegment
from asr.errors import AsrError

PAD = "_"
BOS = "^"
EOS = "$"
SPACE = " "
STRESS = frozenset("ˈˌ")
LENGTH = "ː"
SYLLABIC_MARK = "\u0329"
PUNCTUATION = frozenset(",.?!;:")
BOUNDARY = PUNCTUATION | {SPACE, BOS, EOS}
PAUSE = "pau"
SILENCE = "h#"
MIN_PAUSE = 0.020  # seconds of silent frames that make a boundary region a pause
PAUSE_FRACTION = 0.001  # pauses: frames below 0.1% (-60 dB) of the loud frames' RMS
BURST_SLACK = 0.025  # seconds: how far outside a stop's span its burst is looked for
_MIN_CLOSURE_FRAMES = 2  # closure frames before a burst (5 ms at 22050 Hz)
_VOICED_CLOSURES = frozenset({"bcl", "dcl", "gcl"})  # a voice bar may be their closure
MAX_MERGE = 4  # most words one piper word group may hold (and groups one word may span)
_MERGE_COST = 0.5  # per extra word or group in a match: ties go to one-to-one
_VOWELS = frozenset(
    {"iy", "ih", "eh", "ae", "aa", "ah", "ao", "uh", "uw", "ux", "er", "ax", "ix", "axr", "ax-h",
     "ey", "ay", "oy", "aw", "ow"}
)
_SYLLABIC = frozenset({"el", "em", "en", "eng"})
_WORD = re.compile(r"[A-Za-z0-9']+")


def text_words(text: str) -> list[str]:
    """The words of ``text`` as mini-TIMIT labels them: lower case, outer apostrophes removed."""
    return [m.group().lower().strip("'") for m in _WORD.finditer(text)]


@lru_cache(maxsize=1)
def load_piper_map() -> dict[str, tuple[str, ...]]:
    """Piper IPA unit -> one TIMIT label, or closure + release (``resources/piper_ipa_to_timit.tsv``)."""
    text = resources.files("asr.data").joinpath("resources/piper_ipa_to_timit.tsv").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    table: dict[str, tuple[str, ...]] = {}
    for line in rows[1:]:  # rows[0] is the header
        ipa, timit = line.split("\t")[:2]
        labels = tuple(timit.split())
        if not 1 <= len(labels) <= 2 or any(lab not in TIMIT61 for lab in labels):
            raise AsrError(f"piper_ipa_to_timit.tsv: '{ipa}' maps to {timit!r}, not TIMIT-61 label(s)")
        table[ipa] = labels
    return table


@dataclass
class Token:
    """A unit (``labels`` from the table) or a boundary region (``labels == ()``).

    ``first``/``end`` are id positions: the token owns ``symbols[first:end]``, its pads,
    stress marks and merged length marks included. Tokens cover the sequence contiguously.
    """

    key: str  # table key of a unit; the boundary symbols of a region
    labels: tuple[str, ...]
    first: int
    end: int = 0

    @property
    def is_boundary(self) -> bool:
        return not self.labels


# A pad belongs to the unit after it (the module docstring's first rule).
PADS_TO_NEXT = True


def tokenize(
    symbols: list[str], table: dict[str, tuple[str, ...]] | None = None, text: str = ""
) -> list[Token]:
    """Split piper's symbol sequence into units and boundary regions (see the module docstring).

    Args:
        symbols: one symbol per phoneme id (pads, BOS and EOS included or not: a phonemizer's
            output tokenises too).
        table: from :func:`load_piper_map`.
        text: the sentence, for error messages.

    Raises:
        AsrError: a symbol no unit of the table covers, naming it and the text.
    """
    table = load_piper_map() if table is None else table
    longest = max(len(k) for k in table)
    vowel_starts = {k[0] for k, labels in table.items() if labels[0] in _VOWELS}
    items = [(i, s) for i, s in enumerate(symbols) if s != PAD]
    tokens: list[Token] = []
    firsts: list[int] = []  # first item of each token
    pending: int | None = None  # first item of stress marks waiting for their unit
    a = 0
    while a < len(items):
        sym = items[a][1]
        if sym in STRESS:
            pending = a if pending is None else pending
            a += 1
            continue
        if sym in BOUNDARY:
            if tokens and tokens[-1].is_boundary and pending is None:
                tokens[-1].key += sym
            else:
                tokens.append(Token(sym, (), 0))
                firsts.append(a if pending is None else pending)
            pending = None
            a += 1
            continue
        match = None
        for k in range(min(longest, len(items) - a), 0, -1):
            key = "".join(s for _, s in items[a : a + k])
            labels = table.get(key)
            if labels is None:
                continue
            if len(key) > 1 and labels[0] in _SYLLABIC and SYLLABIC_MARK not in key:
                after = a + k
                while after < len(items) and items[after][1] in STRESS:
                    after += 1
                if after < len(items) and items[after][1] in vowel_starts:
                    continue  # ə + l before a vowel is not a syllabic l
            match = (k, key, labels)
            break
        if match is None:
            if sym == LENGTH and tokens and not tokens[-1].is_boundary and pending is None:
                a += 1  # merges into the unit before
                continue
            where = f" in '{text}'" if text else ""
            raise AsrError(
                f"piper phoneme '{sym}' (U+{ord(sym[0]):04X}){where} is not in "
                "asr/data/resources/piper_ipa_to_timit.tsv"
            )
        k, key, labels = match
        tokens.append(Token(key, labels, 0))
        firsts.append(a if pending is None else pending)
        pending = None
        a += k
    if pending is not None and not tokens:  # stress marks at the end stay with the token before
        raise AsrError(f"piper gave only stress marks for '{text}'")
    for t, tok in enumerate(tokens):
        tok.first = 0 if t == 0 else items[firsts[t]][0]
        if t and PADS_TO_NEXT and symbols[tok.first - 1] == PAD and tok.first - 1 > tokens[t - 1].first:
            tok.first -= 1  # the pad before a unit is its onset (see PADS_TO_NEXT)
    for t, tok in enumerate(tokens):
        tok.end = tokens[t + 1].first if t + 1 < len(tokens) else len(symbols)
    return tokens


def id_symbols(phoneme_ids: list[int], phoneme_id_map: dict[str, list[int]]) -> list[str]:
    """The symbol of each phoneme id, from a voice config's ``phoneme_id_map``.

    Raises:
        AsrError: an id no symbol has, or a symbol of several ids (not one id per position).
    """
    inverse: dict[int, str] = {}
    for sym, ids in phoneme_id_map.items():
        if len(ids) != 1:
            raise AsrError(f"piper symbol '{sym}' has {len(ids)} ids; one id per symbol is assumed")
        inverse[ids[0]] = sym
    missing = sorted({i for i in phoneme_ids if i not in inverse})
    if missing:
        raise AsrError(f"piper phoneme ids {missing} are not in the voice's phoneme_id_map")
    return [inverse[i] for i in phoneme_ids]


def word_groups(tokens: list[Token]) -> list[list[int]]:
    """Indices of the units of each of piper's words (runs of units between boundaries)."""
    groups: list[list[int]] = []
    open_group = False
    for t, tok in enumerate(tokens):
        if tok.is_boundary:
            open_group = False
        elif open_group:
            groups[-1].append(t)
        else:
            groups.append([t])
            open_group = True
    return groups


_PHONEMIZER_LOCK = threading.Lock()
_espeak_ready = False


@cache
def piper_citation(word: str, voice: str = "en-us") -> tuple[str, ...]:
    """Units (table keys) of ``word`` said alone, phonemised by piper's espeak-ng as piper does.

    Raises:
        AsrError: piper-tts is not installed.
    """
    global _espeak_ready
    try:
        from piper import espeakbridge
        from piper.phonemize_espeak import ESPEAK_DATA_DIR
    except ImportError as err:
        raise AsrError(f"piper-tts is needed to phonemise '{word}' ({err})") from None
    try:  # piper's own lock where it has one: espeak-ng is one global state
        from piper.voice import _ESPEAK_PHONEMIZER_LOCK as lock
    except ImportError:
        lock = _PHONEMIZER_LOCK
    with lock:
        if not _espeak_ready:
            espeakbridge.initialize(str(ESPEAK_DATA_DIR))
            _espeak_ready = True
        espeakbridge.set_voice(voice)
        clauses = espeakbridge.get_phonemes(word)
    # As piper's EspeakPhonemizer: drop (lang) switch flags, decompose into code points.
    text = "".join(re.sub(r"\([^)]+\)", "", phonemes) for phonemes, _, _ in clauses)
    symbols = list(unicodedata.normalize("NFD", text))
    return tuple(t.key for t in tokenize(symbols, text=word) if not t.is_boundary)


def _edit_distance(a: list[str], b: list[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j - 1] + (x != y), prev[j] + 1, cur[j - 1] + 1)
        prev = cur
    return prev[-1]


def _sound_class(key: str, table: dict[str, tuple[str, ...]]) -> str:
    """What units are compared by when matching words: ``V`` for any vowel, else the label."""
    labels = table.get(key)
    if labels is None:
        return key
    return "V" if labels[0] in _VOWELS else labels[-1]


def assign_words(
    groups: list[list[str]],
    words: list[str],
    citation: Callable[[str], tuple[str, ...] | list[str]] = piper_citation,
    text: str = "",
    table: dict[str, tuple[str, ...]] | None = None,
) -> list[list[int]]:
    """The word (index into ``words``) of each unit of each group.

    Args:
        groups: the unit keys of each of piper's words (:func:`word_groups`).
        words: the text's words.
        citation: unit keys of a word said alone (only called when the counts differ).
        text: the sentence, for error messages.
        table: from :func:`load_piper_map`.

    Returns:
        per group, one word index per unit; non-decreasing, and every word gets a unit.

    Raises:
        AsrError: the groups cannot be matched to the words, naming the text.
    """
    text = text or " ".join(words)
    num_g, num_w = len(groups), len(words)
    if num_g == num_w:
        return [[w] * len(g) for w, g in enumerate(groups)]
    if not num_g or not num_w:
        raise AsrError(f"piper spoke {num_g} words for the {num_w} words of '{text}'")
    table = load_piper_map() if table is None else table
    groups = [[_sound_class(u, table) for u in g] for g in groups]
    cit = [[_sound_class(u, table) for u in citation(w)] for w in words]
    inf = float("inf")
    cost = [[inf] * (num_w + 1) for _ in range(num_g + 1)]
    back: dict[tuple[int, int], tuple[int, int]] = {}
    cost[0][0] = 0.0
    for i in range(num_g + 1):
        for j in range(num_w + 1):
            here = cost[i][j]
            if here == inf:
                continue
            moves = []
            if i < num_g:  # group i holds words j .. j+k-1
                for k in range(1, min(MAX_MERGE, num_w - j) + 1):
                    ref = [u for w in cit[j : j + k] for u in w]
                    moves.append((i + 1, j + k, _edit_distance(groups[i], ref) + _MERGE_COST * (k - 1)))
            if j < num_w:  # word j spoken as groups i .. i+k-1
                for k in range(2, min(MAX_MERGE, num_g - i) + 1):
                    spoken = [u for g in groups[i : i + k] for u in g]
                    moves.append((i + k, j + 1, _edit_distance(spoken, cit[j]) + _MERGE_COST * (k - 1)))
            for ni, nj, c in moves:
                if here + c < cost[ni][nj]:
                    cost[ni][nj] = here + c
                    back[(ni, nj)] = (i, j)
    if cost[num_g][num_w] == inf:
        raise AsrError(f"cannot match piper's {num_g} word groups to the {num_w} words of '{text}'")
    steps = []
    i, j = num_g, num_w
    while (i, j) != (0, 0):
        pi, pj = back[(i, j)]
        steps.append((pi, i, pj, j))
        i, j = pi, pj
    owners: list[list[int]] = [[] for _ in groups]
    for g0, g1, w0, w1 in reversed(steps):
        if w1 - w0 == 1:
            for g in range(g0, g1):
                owners[g] = [w0] * len(groups[g])
            continue
        offsets = align_words(groups[g0], cit[w0:w1])
        owners[g0] = [w0 + o for o in offsets]
        missing = sorted(set(range(w0, w1)) - set(owners[g0]))
        if missing:
            raise AsrError(
                f"piper spoke words {', '.join(repr(words[w]) for w in range(w0, w1))} of '{text}' "
                f"as one and word {words[missing[0]]!r} got no phoneme"
            )
    return owners


@dataclass(frozen=True)
class PiperLabels:
    """Segments of one utterance in samples at the synthesis rate."""

    phones: list[PhoneSegment]  # TIMIT-61, contiguous over [0, len(audio)), h# at both ends
    words: list[PhoneSegment]  # one per text word, in order
    pronunciations: list[tuple[str, tuple[str, ...]]]  # per word: its TIMIT-61 phones
    num_halved: int  # stops with no burst found: span halved into closure and release
    num_pauses: int  # inner pauses (pau)
    num_merged_words: int  # words piper ran together with a neighbour (split by alignment)
    num_dropped: int  # zero-length phones dropped


@dataclass
class _Seg:
    labels: tuple[str, ...]  # a unit's labels, or (pau,) / (h#,)
    start: int  # release start for closure + release phones
    end: int
    word: int | None = None
    closure: int | None = None  # closure start (closure + release phones, once placed)
    halve: bool = False  # no burst found: halve once spans are final

    @property
    def is_phone(self) -> bool:
        return self.labels not in ((PAUSE,), (SILENCE,))

    @property
    def is_stop(self) -> bool:
        return len(self.labels) == 2

    @property
    def begin(self) -> int:
        return self.start if self.closure is None else self.closure

    def mid(self) -> int:
        return self.start + (self.end - self.start) // 2


class _Signal:
    """Frame RMS, silence masks and high-band energy of one utterance."""

    def __init__(self, audio: np.ndarray, rate: int) -> None:
        self.rms = _frame_rms(audio)
        ref = float(np.percentile(self.rms, 90)) if len(self.rms) else 0.0
        self.quiet = _QUIET_FRACTION * ref
        self.silent = self.rms < self.quiet  # closures (as in espeak_labels)
        self.hush = self.rms < PAUSE_FRACTION * ref  # pauses and the ends (h#)
        self.high = _band_db(audio, rate)
        self.loud = float(np.percentile(self.high, 90)) if len(self.high) else 0.0

    def frames(self, start: int, end: int) -> tuple[int, int]:
        """Frames lying wholly inside samples [start, end)."""
        return -(-start // _CLOSURE_FRAME), min(end // _CLOSURE_FRAME, len(self.rms))

    def hush_back(self, pos: int, earliest: int) -> int:
        """Start of the pause-silent frames just before ``pos``, back to ``earliest`` at most."""
        f, start = pos // _CLOSURE_FRAME, pos
        while f > 0 and (f - 1) * _CLOSURE_FRAME >= earliest and self.hush[f - 1]:
            f -= 1
            start = f * _CLOSURE_FRAME
        return start

    def hush_forward(self, pos: int, latest: int) -> int:
        """End of the pause-silent frames from ``pos`` on, up to ``latest`` at most."""
        f, end = -(-pos // _CLOSURE_FRAME), pos
        while f < len(self.hush) and (f + 1) * _CLOSURE_FRAME <= latest and self.hush[f]:
            f += 1
            end = f * _CLOSURE_FRAME
        return end


def _longest_silence(sig: _Signal, start: int, end: int) -> tuple[int, int]:
    """Samples [a, b) of the longest run of pause-silent frames inside [start, end) (a == b: none)."""
    f0, f1 = sig.frames(start, end)
    best = (start, start)
    run = None
    for f in range(f0, f1 + 1):
        if f < f1 and sig.hush[f]:
            run = f if run is None else run
        elif run is not None:
            if (f - run) * _CLOSURE_FRAME > best[1] - best[0]:
                best = (run * _CLOSURE_FRAME, f * _CLOSURE_FRAME)
            run = None
    return best


def _resolve_ends(segs: list[_Seg], sig: _Signal, num: int, head: int, tail: int) -> None:
    """Move the h# at each end to the first and last frames that are not silent.

    ``head``/``tail``: the end of the first id and the start of the last id (``^``, ``$``),
    which stay h# whatever the signal.
    """
    loud = np.flatnonzero(~sig.hush)
    first, last = segs[1], segs[-2]
    if not len(loud):
        return
    onset = int(loud[0]) * _CLOSURE_FRAME
    offset = min(num, (int(loud[-1]) + 1) * _CLOSURE_FRAME)
    # An utterance-initial stop keeps its silent start: it is the closure.
    begin = min(onset, first.start if first.is_stop else first.mid())
    begin = min(max(begin, head), first.end - 1)
    end = max(offset, last.mid())
    end = max(min(end, tail), last.start + 1)
    segs[0].end = first.start = begin
    segs[-1].start = last.end = end


def _resolve_region(
    segs: list[_Seg], r: int, region: Token, sig: _Signal, min_pause: int
) -> bool:
    """Turn the inner boundary region ``segs[r]`` into a pause or share it out; True if pau."""
    left, here, right = segs[r - 1], segs[r], segs[r + 1]
    clause = bool(set(region.key) - {SPACE})
    if clause or not right.is_stop:
        a, b = _longest_silence(sig, here.start, here.end)
        if b - a >= min_pause:
            a = sig.hush_back(a, left.mid())
            if not right.is_stop:
                b = sig.hush_forward(b, right.mid())
            left.end, right.start = a, b
            here.start, here.end = a, b
            return True
    mid = here.start + (here.end - here.start) // 2
    left.end = right.start = mid
    here.start = here.end = mid
    return False


def _place_closure(prev: _Seg, stop: _Seg, nxt: _Seg, sig: _Signal, slack: int) -> None:
    """Closure + release of one stop (rules: the module docstring); ``stop.halve`` if no burst."""
    s, e = stop.start, stop.end
    lo = max(s - slack, prev.mid())
    hi = nxt.mid() if (nxt.is_phone and not nxt.is_stop) else e
    f0, f1 = sig.frames(lo, hi)
    while f1 > f0 and sig.silent[f1 - 1]:
        f1 -= 1  # the silence before a following pause or closure is not the release
    silent = sig.silent[f0:f1]
    if stop.labels[0] in _VOICED_CLOSURES:  # closure: silence or a voice bar; burst: bright
        closing = silent | (sig.high[f0:f1] < sig.loud - _BURST_LOUD_DB)
        sound = ~closing
    else:  # closure: silence; burst: sound again within two frames (not a lone blip)
        closing = silent
        loud = ~silent
        ahead = np.concatenate([loud, [True, True]])
        sound = loud & (ahead[1 : len(loud) + 1] | ahead[2 : len(loud) + 2])
    best, best_key, run = None, None, 0
    for f in range(f0, f1):
        if closing[f - f0]:
            run += 1
            continue
        if run >= _MIN_CLOSURE_FRAMES and sound[f - f0]:
            pos = f * _CLOSURE_FRAME
            key = (0, -run) if s <= pos < e else (1, s - pos if pos < s else pos - e)
            if best_key is None or key < best_key:
                best, best_key = f, key
        run = 0
    if best is None:
        stop.halve = True
        return
    release = best * _CLOSURE_FRAME
    f = best  # the closure: closure frames back to lo, then silence back to half of prev
    while f > f0 and closing[f - 1 - f0]:
        f -= 1
    begin = f * _CLOSURE_FRAME
    if f == f0:  # into the silence before: up to half of a phone, ``slack`` of a pause
        earliest = prev.mid() if prev.is_phone else max(prev.mid(), s - slack)
        begin = min(begin, closure_start(begin, earliest, sig.rms, sig.quiet))
    if begin > s and not prev.is_phone:
        begin = s  # loud frames at the start of the span go to the phone before, not to a pause
    begin = max(begin, prev.begin + 1)
    prev.end = begin
    if release > e - slack // 2 and nxt.is_phone and not nxt.is_stop:
        # The burst is at the end of the span or in the next phone: the release takes up
        # to ``slack`` samples, leaving the next phone at least half of what is left of it.
        stop.end = nxt.start = max(e, min(release + slack, release + (nxt.end - release) // 2))
    stop.closure, stop.start = begin, release


def label_piper(
    audio: np.ndarray,
    sample_rate: int,
    symbols: list[str],
    samples: list[int],
    words: list[str],
    *,
    text: str | None = None,
    citation: Callable[[str], tuple[str, ...] | list[str]] = piper_citation,
    table: dict[str, tuple[str, ...]] | None = None,
) -> PiperLabels:
    """``.PHN`` and ``.WRD`` segments of one piper synthesis (rules: the module docstring).

    Args:
        audio: int16 ``[N]`` at ``sample_rate``.
        sample_rate: Hz (22050 for piper's medium voices).
        symbols: the phoneme symbol of each phoneme-id position (``^``, pads ``_``, ``$``
            included); several chunks' sequences may be concatenated.
        samples: audio samples of each id position; they sum to ``len(audio)``.
        words: the text's words, lower case (:func:`text_words`).
        text: the sentence, for error messages (default: ``words`` joined).
        citation: unit keys of one word said alone, to split words piper ran together.
        table: from :func:`load_piper_map`.

    Returns:
        Phone segments covering ``[0, len(audio))`` contiguously with ``h#`` at both ends,
        one word segment and pronunciation per word of ``words``, and counters.

    Raises:
        AsrError: mismatched inputs, a symbol missing from the table, no phonemes, or words
            that cannot be matched, naming the text.
    """
    text = text if text is not None else " ".join(words)
    num = len(audio)
    if len(symbols) != len(samples):
        raise AsrError(f"piper gave {len(symbols)} symbols but {len(samples)} durations for '{text}'")
    if int(np.sum(samples)) != num:
        raise AsrError(f"piper's durations sum to {int(np.sum(samples))}, not the {num} audio samples, for '{text}'")
    tokens = tokenize(symbols, table, text)
    groups = word_groups(tokens)
    if not groups:
        raise AsrError(f"piper produced no phonemes for '{text}'")
    owners = assign_words([[tokens[t].key for t in g] for g in groups], words, citation, text, table)
    owner = {t: w for g, ws in zip(groups, owners) for t, w in zip(g, ws)}
    merged = sum(len(set(ws)) for ws in owners if len(set(ws)) > 1)

    bounds = np.concatenate([[0], np.cumsum(np.asarray(samples, dtype=np.int64))])
    first_unit, last_unit = groups[0][0], groups[-1][-1]
    segs: list[_Seg] = [_Seg((SILENCE,), 0, int(bounds[tokens[first_unit].first]))]
    regions: list[tuple[int, Token]] = []  # (index into segs, token) of inner boundary regions
    for t in range(first_unit, last_unit + 1):
        tok = tokens[t]
        start, end = int(bounds[tok.first]), int(bounds[tok.end])
        if tok.is_boundary:
            regions.append((len(segs), tok))
            segs.append(_Seg((PAUSE,), start, end))
        else:
            segs.append(_Seg(tok.labels, start, end, owner[t]))
    segs.append(_Seg((SILENCE,), int(bounds[tokens[last_unit].end]), num))

    sig = _Signal(audio, sample_rate)
    head = int(bounds[tokens[0].first + 1]) if tokens[0].is_boundary else 0
    tail = int(bounds[tokens[-1].end - 1]) if tokens[-1].is_boundary else num
    _resolve_ends(segs, sig, num, head, tail)
    min_pause = round(MIN_PAUSE * sample_rate)
    pauses = {r for r, tok in regions if _resolve_region(segs, r, tok, sig, min_pause)}
    regions_at = {r for r, _ in regions}
    segs = [seg for i, seg in enumerate(segs) if i not in regions_at or i in pauses]
    slack = round(BURST_SLACK * sample_rate)
    for i in range(1, len(segs) - 1):
        if segs[i].is_stop:
            _place_closure(segs[i - 1], segs[i], segs[i + 1], sig, slack)
    halved = 0
    for seg in segs:
        if seg.halve:
            halved += 1
            seg.closure, seg.start = seg.start, seg.mid()

    out: list[tuple[int, int, str, int | None]] = []
    for seg in segs:
        if seg.closure is not None:
            out.append((seg.closure, seg.start, seg.labels[0], seg.word))
        out.append((seg.start, seg.end, seg.labels[-1], seg.word))
    dropped = sum(1 for s, e, _, _ in out if e <= s)
    out = [o for o in out if o[1] > o[0]]
    for (_, e, _, _), (s, _, _, _) in itertools.pairwise(out):
        if e != s:
            raise AsrError(f"piper labelling of '{text}' left a gap or overlap at sample {e}/{s}")
    if not out or out[0][0] != 0 or out[-1][1] != num:
        raise AsrError(f"piper labelling of '{text}' does not cover the audio")
    phones = [PhoneSegment(s, e, lab) for s, e, lab, _ in out]
    word_segs, prons = [], []
    for w, label in enumerate(words):
        mine = [o for o in out if o[3] == w]
        if not mine:
            raise AsrError(f"word {label!r} of '{text}' got no phones from piper")
        word_segs.append(PhoneSegment(mine[0][0], mine[-1][1], label))
        prons.append((label, tuple(o[2] for o in mine)))
    return PiperLabels(phones, word_segs, prons, halved, len(pauses), merged, dropped)
