"""espeak-ng driver and the espeak -> TIMIT-61 phoneme mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asr.data.espeak import EVENT_PHONEME, EVENT_WORD, Espeak, espeak_paths, get_espeak
from asr.data.espeak_labels import (
    align_words,
    _band_db,
    closure_start,
    find_burst,
    label_synthesis,
    load_phone_map,
    strip_stress,
)
from asr.data.mini_timit import harvard_sentences
from asr.data.phones import TIMIT61
from asr.data.speakers import ACCENTS, RATE_RANGE
from asr.errors import AsrError


def _unmapped(sentences: list[str], rates: tuple[int, ...]) -> dict[str, tuple[str, str]]:
    """Mnemonics espeak emits for ``sentences`` in every accent and rate that the map lacks."""
    engine, table = get_espeak(), load_phone_map()
    missing: dict[str, tuple[str, str]] = {}
    for accent in ACCENTS:
        for rate in rates:
            engine.set_voice(f"{accent}+m1", 50, 50, rate)
            for text in sentences:
                for ev in engine.synthesize(text).events:
                    if ev.kind == EVENT_PHONEME and strip_stress(ev.name) not in table:
                        missing.setdefault(ev.name, (accent, text))
    return missing


def test_table_targets_are_timit61() -> None:
    table = load_phone_map()
    assert len(table) > 60
    for espeak, labels in table.items():
        assert 1 <= len(labels) <= 2, espeak
        assert all(label in TIMIT61 for label in labels), (espeak, labels)
        if len(labels) == 2:  # closure + release
            assert labels[0].endswith("cl"), (espeak, labels)
    assert table["t"] == ("tcl", "t") and table["_:"] == ("pau",) and table["D"] == ("dh",)


def test_every_phoneme_is_mapped_subset() -> None:
    """Every 12th Harvard sentence, every accent, the default rate."""
    assert _unmapped(harvard_sentences()[::12], (175,)) == {}


@pytest.mark.slow
def test_every_phoneme_is_mapped_all_sentences() -> None:
    """All 720 sentences in every accent, at the slowest and fastest speaker rates."""
    assert _unmapped(harvard_sentences(), RATE_RANGE) == {}


def test_synthesis_events() -> None:
    engine = get_espeak()
    engine.set_voice("en-us+f2", 50, 50, 175)
    synth = engine.synthesize("The birch canoe slid on the smooth planks.")
    assert synth.sample_rate == 22050 and synth.audio.dtype == np.int16
    assert 1.0 < len(synth.audio) / synth.sample_rate < 4.0
    samples = [ev.sample for ev in synth.events]
    assert samples == sorted(samples) and 0 <= samples[0] and samples[-1] <= len(synth.audio)
    names = [strip_stress(ev.name) for ev in synth.events if ev.kind == EVENT_PHONEME]
    assert names[:5] == ["D", "@2", "b", "3:", "tS"]
    assert sum(ev.kind == EVENT_WORD for ev in synth.events) == 7  # "on the" is one word event


def test_label_synthesis_covers_audio() -> None:
    engine = get_espeak()
    engine.set_voice("en-gb-x-rp+m2", 50, 50, 175)
    text = "Glue the sheet to the dark blue background."
    synth = engine.synthesize(text)
    num_out, offset = int(len(synth.audio) * 16000 / 22050) + 1 + 3000, 1000
    lab = label_synthesis(synth, text, "en-gb-x-rp+m2", load_phone_map(), _citation, 16000, num_out, offset)
    assert lab.phones[0].start == 0 and lab.phones[-1].end == num_out
    assert lab.phones[0].label == "h#" and lab.phones[-1].label == "h#"
    assert lab.phones[0].end >= offset
    assert [w.label for w in lab.words] == ["glue", "the", "sheet", "to", "the", "dark", "blue", "background"]
    labels = [p.label for p in lab.phones]
    assert labels[1:3] == ["gcl", "g"] and "bcl" in labels and lab.num_unaligned_words == 0


def _citation(word: str) -> list[str]:
    return [strip_stress(p) for p in get_espeak().text_to_phonemes(word)]


def test_unmapped_phoneme_names_it() -> None:
    engine = get_espeak()
    engine.set_voice("en-us+m3", 50, 50, 175)
    text = "Rice is often served in round bowls."
    table = load_phone_map()
    del table["s"]
    with pytest.raises(AsrError, match=r"phoneme 's'.*en-us\+m3.*Rice is often"):
        label_synthesis(engine.synthesize(text), text, "en-us+m3", table, _citation, 16000, 40000, 0)


def test_align_words_splits_merged_words() -> None:
    # espeak says "on the" as one word; its phones split at the citation forms.
    assert align_words(["O2", "n", "D", "@2"], [["O2", "n"], ["D", "@2"]]) == [0, 0, 1, 1]
    # a linking glide with no citation counterpart stays with the word before it
    assert align_words(["f", "r", "V", "m", "D", "i", ";"], [["f", "r", "0", "m"], ["D", "@"]]) == [
        0, 0, 0, 0, 1, 1, 1,
    ]


def test_closure_start_finds_the_silence() -> None:
    frame = 55
    rms = np.array([100.0] * 10 + [0.0] * 6 + [100.0] * 4)  # silent frames 10..15
    release = 16 * frame + 3
    assert closure_start(release, 0, rms, quiet=1.0) == 10 * frame
    assert closure_start(release, 13 * frame, rms, quiet=1.0) == 13 * frame  # bounded
    assert closure_start(5 * frame, 0, rms, quiet=1.0) == 5 * frame  # no silence: none


def test_find_burst_on_a_voice_bar() -> None:
    bar = [15.0, 5, 18, 2, 16]  # periodic voice bar: high-band energy flickers with the pulses
    assert find_burst(np.array([44.0, 30] + bar + [47, 45, 40]), 58.0) == 7
    # 34 is loud enough (>= 58 - 25) but less than 12 dB above the bar's mean power (about 24 dB)
    assert find_burst(np.array([44.0, 30] + bar + [34, 45]), 58.0) == 8
    assert find_burst(np.array([40.0, 43, 45, 44, 20, 10]), 58.0) == 0  # released at the event
    assert find_burst(np.array(bar), 58.0) is None
    assert find_burst(np.array([]), 58.0) is None


def test_voiced_closures_end_at_the_burst() -> None:
    """Each voiced closure found in the signal ends where the high band jumps: the burst."""
    engine, table = get_espeak(), load_phone_map()
    engine.set_voice("en-us+m3", 50, 50, 175)
    text = "A big dog dug a bad hole by the bridge."
    synth = engine.synthesize(text)
    rate = synth.sample_rate
    lab = label_synthesis(synth, text, "en-us+m3", table, lambda w: [], rate, len(synth.audio), 0)
    high = _band_db(synth.audio, rate)
    frame = 55  # samples per high-band frame at espeak's rate
    checked = 0
    for clo, rel in zip(lab.phones, lab.phones[1:]):
        if clo.label in ("bcl", "dcl", "gcl") and rel.label in ("b", "d", "g") and clo.end == rel.start:
            closure = high[clo.start // frame: rel.start // frame]
            burst = high[rel.start // frame: rel.start // frame + 2]
            if len(closure) > 2 and closure.min() > -30:  # voiced through (not silence)
                assert burst.max() >= np.median(closure) + 12, (clo, rel)
                checked += 1
    assert checked >= 3
    assert lab.num_halved == 0


def test_missing_library_or_data_names_the_path(tmp_path: Path) -> None:
    library, data = espeak_paths()
    with pytest.raises(AsrError, match=str(tmp_path / "libespeak-ng.so")):
        Espeak(tmp_path / "libespeak-ng.so", data)
    with pytest.raises(AsrError, match=str(tmp_path / "phontab")):
        Espeak(library, tmp_path)


def test_unknown_voice_is_an_error() -> None:
    with pytest.raises(AsrError, match="en-zz"):
        get_espeak().set_voice("en-zz+m1", 50, 50, 175)
