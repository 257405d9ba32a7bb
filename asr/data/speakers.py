"""Speakers of mini-TIMIT: real TIMIT dev/test speaker IDs, made-up train IDs, and voices.

A speaker is one synthetic voice: an espeak-ng voice variant matching the sex letter of
the ID (``M``/``F``), an English accent, a pitch, a pitch range and a speaking rate.
Dev and core-test speakers keep their real TIMIT IDs and dialect regions, so one TIMIT
reader serves both the LDC corpus and mini-TIMIT with the standard split.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from importlib import resources

import numpy as np

from asr.data.voice_transform import PiperSpeaker

# English accents of espeak-ng 1.52 (``lang/gmw/en*``); en-Shaw (Shavian script) is left out.
ACCENTS = (
    "en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029",
    "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
)
# Voice variants (``voices/!v``) by sex. Left out: whispering, croaking, robotic and
# "demonic" variants, Klatt-synthesiser variants (they sound like no real speaker), and
# "antonio", whose peaks clip even at half volume.
MALE_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Andy", "Denis", "Diogo",
    "Henrique", "Hugo", "Lee", "Marco", "michel", "miguel", "sandro", "travis", "victor",
)
FEMALE_VARIANTS = (
    "f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "anika", "aunty",
    "belinda", "linda", "steph", "steph2", "steph3",
)
# Prosody ranges, in espeak-ng units: pitch and range 0..100 (default 50), rate in words/min.
PITCH_RANGE = (30, 70)
PITCH_SPREAD_RANGE = (30, 70)
RATE_RANGE = (145, 200)
MALE_FRACTION = 0.7  # about as in TIMIT (438 of 630 speakers)
NUM_DIALECT_REGIONS = 8


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: ``name`` such as ``"en-us+m3"``; prosody in espeak units."""

    accent: str
    variant: str
    pitch: int
    pitch_range: int
    rate: int

    @property
    def name(self) -> str:
        return f"{self.accent}+{self.variant}"


@dataclass(frozen=True)
class Speaker:
    """A mini-TIMIT speaker: ``id`` (``M``/``F`` + 4 chars), ``region`` (``DR1``..``DR8``).

    ``source`` is the synthesiser: ``espeak`` (``voice``) or ``piper`` (``piper``, a
    pseudo-speaker of the one Piper voice, :mod:`asr.data.voice_transform`).
    """

    id: str
    region: str
    voice: Voice | None
    source: str = "espeak"
    piper: "PiperSpeaker | None" = None

    def settings(self) -> dict[str, object]:
        """The synthesis settings, flat (for ``speakers.tsv``)."""
        from dataclasses import asdict

        return asdict(self.voice) if self.source == "espeak" else asdict(self.piper)


def _read_resource(name: str) -> list[str]:
    text = resources.files("asr.data").joinpath(f"resources/{name}").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def dev_speakers() -> list[str]:
    """IDs of the 50 speakers of the standard TIMIT dev set, in Kaldi's order (``FAKS0``, ...)."""
    return [line.upper() for line in _read_resource("timit_dev_speakers.txt")]


def test_speakers() -> list[str]:
    """IDs of the 24 speakers of the TIMIT core test set, in Kaldi's order (``MDAB0``, ...)."""
    return [line.upper() for line in _read_resource("timit_test_speakers.txt")]


def speaker_regions() -> dict[str, str]:
    """Dialect region (``DR1``..``DR8``) of each dev and core-test speaker, as in LDC TIMIT."""
    return dict(line.split() for line in _read_resource("timit_speaker_regions.tsv"))


def draw_voice(sex: str, rng: np.random.Generator) -> Voice:
    """Draw a voice for a speaker of sex ``"M"`` or ``"F"`` from ``rng``."""
    variants = MALE_VARIANTS if sex == "M" else FEMALE_VARIANTS
    return Voice(
        accent=ACCENTS[rng.integers(len(ACCENTS))],
        variant=variants[rng.integers(len(variants))],
        pitch=int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
        pitch_range=int(rng.integers(PITCH_SPREAD_RANGE[0], PITCH_SPREAD_RANGE[1] + 1)),
        rate=int(rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1)),
    )


def make_train_ids(num: int, rng: np.random.Generator, taken: set[str]) -> list[str]:
    """``num`` distinct made-up IDs, sex letter + three letters + a digit, none in ``taken``.

    The sex letter is ``M`` with probability :data:`MALE_FRACTION`.
    """
    letters = np.array(list(string.ascii_uppercase))
    ids: list[str] = []
    seen = set(taken)
    while len(ids) < num:
        sex = "M" if rng.random() < MALE_FRACTION else "F"
        spk = sex + "".join(rng.choice(letters, 3)) + str(int(rng.integers(10)))
        if spk not in seen:
            seen.add(spk)
            ids.append(spk)
    return ids


def make_speakers(ids: list[str], regions: dict[str, str], rng: np.random.Generator) -> list[Speaker]:
    """Speakers for ``ids``: region from ``regions`` (else drawn), voice drawn to match the sex."""
    out = []
    for spk in ids:
        region = regions.get(spk) or f"DR{int(rng.integers(1, NUM_DIALECT_REGIONS + 1))}"
        out.append(Speaker(spk, region, draw_voice(spk[0], rng)))
    return out
