"""mini-TIMIT synthesis: layout, file formats, ground-truth labels, splits, determinism."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.data.mini_timit import (
    MARKER,
    SIZES,
    _run_forked,
    harvard_sentences,
    plan_corpus,
    sentence_pools,
    synthesize_mini_timit,
)
from asr.data.phones import TIMIT61, read_segments
from asr.data import speakers
from asr.data.speakers import FEMALE_VARIANTS, MALE_VARIANTS, dev_speakers, speaker_regions
from asr.errors import AsrError

# The tiny corpora are session fixtures (tests/conftest.py): ``mini_timit_root`` (espeak-ng
# only) and ``mini_timit_mixed_root`` (espeak-ng and Piper speakers, plus TEST_PIPER/), both
# size="tiny", seed=0, num_workers=2. The corpus tests run on both.
MIXED = {"voices": ("espeak", "piper"), "piper_share": 0.5, "test_sources": ("piper",)}


@pytest.fixture(params=["espeak", "mixed"])
def corpus(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue("mini_timit_root" if request.param == "espeak" else "mini_timit_mixed_root")


def _utterances(root: Path) -> list[Path]:
    """Every ``.WAV`` of the corpus, sorted."""
    return sorted(root.glob("*/DR*/*/SX*.WAV"))


def _tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _speaker_sentences(root: Path, folder: str, only: set[str] | None = None) -> tuple[set[str], set[str]]:
    spks, sents = set(), set()
    for wav in root.glob(f"{folder}/DR*/*/SX*.WAV"):
        spk = wav.parent.name
        if only is None or spk in only:
            spks.add(spk)
            sents.add(wav.stem)
    return spks, sents


def test_layout_and_summary(corpus: Path) -> None:
    spec = SIZES["tiny"]
    wavs = [w for w in _utterances(corpus) if w.parts[-4] != "TEST_PIPER"]
    assert len(wavs) == (spec.num_train + spec.num_dev + spec.num_test) * spec.sentences_per_speaker
    for wav in wavs:
        split, region, spk = wav.parts[-4:-1]
        assert split in ("TRAIN", "TEST", "TEST_PIPER")
        assert re.fullmatch(r"DR[1-8]", region)
        assert re.fullmatch(r"[MF][A-Z0-9]{4}", spk)
        assert re.fullmatch(r"SX\d+", wav.stem) and 1 <= int(wav.stem[2:]) <= 720
        for ext in (".PHN", ".WRD", ".TXT"):
            assert wav.with_suffix(ext).is_file(), wav.with_suffix(ext)
    assert (corpus / "lexicon.txt").is_file()
    again = synthesize_mini_timit(corpus, size="tiny", seed=0,
                                  **(MIXED if corpus.name == "mixed" else {}))
    assert again["reused"] is True
    assert again["splits"]["train"]["utterances"] == spec.num_train * spec.sentences_per_speaker
    assert again["splits"]["dev"]["speakers"] == spec.num_dev
    assert again["words_without_phones"] == 0 and again["clipped_samples"] == 0
    total = sum(sf.info(str(w)).frames for w in _utterances(corpus)) / 16000
    assert sum(s["seconds"] for s in again["splits"].values()) == pytest.approx(total, abs=0.01)


def test_wav_is_nist_sphere_16k_pcm16(corpus: Path) -> None:
    for wav in _utterances(corpus):
        info = sf.info(str(wav))
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("NIST", "PCM_16", 16000, 1)
        assert wav.read_bytes()[:7] == b"NIST_1A"
        audio, _ = sf.read(str(wav), dtype="int16")
        assert np.abs(audio).max() > 1000  # speech, not silence


def test_phn_contiguous_covers_audio_in_timit61(corpus: Path) -> None:
    for wav in _utterances(corpus):
        frames = sf.info(str(wav)).frames
        segs = read_segments(wav.with_suffix(".PHN"))
        assert segs[0].start == 0 and segs[-1].end == frames, wav
        assert segs[0].label == "h#" and segs[-1].label == "h#"
        for a, b in zip(segs, segs[1:]):
            assert a.end == b.start, (wav, a, b)
        for s in segs:
            assert s.end > s.start, (wav, s)
            assert s.label in TIMIT61, (wav, s.label)
        inner = [s.label for s in segs[1:-1]]
        assert "h#" not in inner and len(inner) > 5


def test_phn_boundaries_follow_the_audio(corpus: Path) -> None:
    """h# and closures are quiet, vowels loud: the labels are aligned with the samples."""
    energy: dict[str, list[float]] = {"silent": [], "vowel": []}
    vowels = {"iy", "ih", "eh", "ae", "aa", "ah", "ao", "uw", "uh", "ey", "ay", "ow", "aw", "oy", "er"}
    for wav in _utterances(corpus):
        audio, _ = sf.read(str(wav), dtype="float64")
        for s in read_segments(wav.with_suffix(".PHN")):
            power = float(np.mean(audio[s.start: s.end] ** 2))
            if s.label in ("h#", "pcl", "tcl", "kcl"):
                energy["silent"].append(power)
            elif s.label in vowels:
                energy["vowel"].append(power)
    assert np.median(energy["vowel"]) > 1000 * np.median(energy["silent"])


def test_wrd_and_txt_match_the_sentence(corpus: Path) -> None:
    sentences = harvard_sentences()
    for wav in _utterances(corpus):
        frames = sf.info(str(wav)).frames
        sentence = sentences[int(wav.stem[2:]) - 1]
        start, end, text = wav.with_suffix(".TXT").read_text().split(maxsplit=2)
        assert (int(start), int(end), text.strip()) == (0, frames, sentence)
        words = read_segments(wav.with_suffix(".WRD"))
        expected = [w.strip("'") for w in re.findall(r"[a-z0-9']+", sentence.lower())]
        assert [w.label for w in words] == expected
        phones = read_segments(wav.with_suffix(".PHN"))
        edges = {p.start for p in phones} | {phones[-1].end}
        for a, b in zip(words, words[1:]):
            assert a.start < a.end <= b.start
        for w in words:  # word boundaries are phone boundaries inside the speech
            assert w.start in edges and w.end in edges
            assert phones[0].end <= w.start and w.end <= phones[-1].start


def test_lexicon_lists_every_spoken_pronunciation(corpus: Path) -> None:
    lexicon = set()
    for line in (corpus / "lexicon.txt").read_text().splitlines():
        word, *pron = line.split()
        assert pron and all(p in TIMIT61 for p in pron)
        lexicon.add((word, " ".join(pron)))
    spoken = set()
    for wav in _utterances(corpus):
        phones = read_segments(wav.with_suffix(".PHN"))
        for w in read_segments(wav.with_suffix(".WRD")):
            spoken.add((w.label, " ".join(p.label for p in phones if w.start <= p.start and p.end <= w.end)))
    assert spoken == lexicon


def test_speakers_and_sentences_are_disjoint(corpus: Path) -> None:
    dev, test = set(dev_speakers()), set(speakers.test_speakers())
    train_spk, train_sent = _speaker_sentences(corpus, "TRAIN")
    dev_spk, dev_sent = _speaker_sentences(corpus, "TEST", dev)
    test_spk, test_sent = _speaker_sentences(corpus, "TEST", test)
    all_test_spk, _ = _speaker_sentences(corpus, "TEST")
    assert all_test_spk == dev_spk | test_spk  # TEST/ holds only real dev and core-test IDs
    assert dev_spk and test_spk and train_spk
    assert not train_spk & (dev | test)
    assert not train_sent & dev_sent and not train_sent & test_sent and not dev_sent & test_sent
    regions = speaker_regions()
    for wav in corpus.glob("TEST/DR*/*/*.WAV"):
        assert wav.parts[-3] == regions[wav.parent.name]  # the real dialect region


def test_same_seed_same_bytes(corpus: Path, tmp_path: Path) -> None:
    # One worker instead of two: scheduling must not change the output either.
    summary = synthesize_mini_timit(tmp_path / "again", size="tiny", seed=0, num_workers=1,
                                    **(MIXED if corpus.name == "mixed" else {}))
    assert summary["reused"] is False
    assert _tree_hashes(tmp_path / "again") == _tree_hashes(corpus)
    assert not list(tmp_path.glob(".again.tmp-*"))  # temporary directory renamed away


def test_mixed_corpus_has_both_voices_in_every_split_and_a_piper_test_set(mini_timit_mixed_root: Path) -> None:
    rows = [line.split("\t") for line in (mini_timit_mixed_root / "speakers.tsv").read_text().splitlines()[1:]]
    by_split: dict[str, set[str]] = {}
    for spk, split, region, source, settings in rows:
        by_split.setdefault(split, set()).add(source)
        if source == "piper":
            assert "warp=" in settings and "length_scale=" in settings
    assert by_split == {"train": {"espeak", "piper"}, "dev": {"espeak", "piper"}, "test": {"espeak", "piper"},
                        "test_piper": {"piper"}}
    # test_piper: the core-test speakers and sentences again, every one voiced by Piper.
    test_spk, test_sent = _speaker_sentences(mini_timit_mixed_root, "TEST", set(speakers.test_speakers()))
    assert _speaker_sentences(mini_timit_mixed_root, "TEST_PIPER") == (test_spk, test_sent)
    from asr.data.timit import prepare_timit

    report = prepare_timit(mini_timit_mixed_root, mini_timit_mixed_root.parent / "data_mixed")
    assert report.num_utts["test_piper"] == report.num_utts["test"] and not report.skipped
    # A Piper speaker of the mix keeps its settings in the Piper-only test set.
    piper_test = {r[0]: r[4] for r in rows if r[1] == "test" and r[3] == "piper"}
    assert piper_test and all(r[4] == piper_test[r[0]] for r in rows if r[1] == "test_piper" and r[0] in piper_test)


def test_voices_leave_the_espeak_speakers_of_a_seed_alone() -> None:
    espeak = plan_corpus("small", 0, ("espeak",))
    mixed = plan_corpus("small", 0, ("espeak", "piper"), 0.5)
    assert plan_corpus("small", 0) == mixed  # small's default: both voices, half each
    assert plan_corpus("tiny", 0) == plan_corpus("tiny", 0, ("espeak",))  # tiny's: espeak alone
    assert [(j.split, j.speaker.id, j.sentences) for j in espeak] == [(j.split, j.speaker.id, j.sentences)
                                                                      for j in mixed]
    kept = [(a.speaker, b.speaker) for a, b in zip(espeak, mixed) if b.speaker.source == "espeak"]
    assert kept and all(a == b for a, b in kept)
    for split in ("train", "dev", "test"):
        piper = [j for j in mixed if j.split == split and j.speaker.source == "piper"]
        total = [j for j in mixed if j.split == split]
        assert abs(len(piper) - len(total) / 2) <= 1, split
        # Upward warps for female IDs, downward or none for male ones.
        for j in piper:
            assert (j.speaker.piper.warp > 1.1) == (j.speaker.id[0] == "F")
    assert all(j.speaker.source == "piper" for j in plan_corpus("tiny", 0, ("piper",)))
    with pytest.raises(AsrError, match="valid voices: espeak, piper"):
        plan_corpus("tiny", 0, ("festival",))


def test_seed_changes_speakers_not_pools() -> None:
    a, b = plan_corpus("small", 0, ("espeak",)), plan_corpus("small", 1, ("espeak",))
    assert [j.speaker for j in a] != [j.speaker for j in b]
    assert [j.speaker for j in a] == [j.speaker for j in plan_corpus("small", 0, ("espeak",))]
    pools = sentence_pools()
    for plan in (a, b):
        for job in plan:
            assert {i for i, _ in job.sentences} <= set(pools[job.split])
    for job in a:  # the voice matches the sex letter of the ID
        variants = MALE_VARIANTS if job.speaker.id[0] == "M" else FEMALE_VARIANTS
        assert job.speaker.voice.variant in variants
    assert {j.speaker.id[0] for j in a if j.split == "train"} == {"M", "F"}


def test_sizes_and_pools() -> None:
    pools = sentence_pools()
    assert sorted(pools["train"] + pools["dev"] + pools["test"]) == list(range(720))
    assert (len(pools["train"]), len(pools["dev"]), len(pools["test"])) == (560, 80, 80)
    full = plan_corpus("full", 0)
    counts = {s: sum(j.split == s for j in full) for s in ("train", "dev", "test")}
    assert counts == {"train": 462, "dev": 50, "test": 24}
    assert {j.speaker.id for j in full if j.split == "dev"} == set(dev_speakers())
    assert {j.speaker.id for j in full if j.split == "test"} == set(speakers.test_speakers())
    assert len({j.speaker.id for j in full}) == len(full)


def test_speaker_lists() -> None:
    dev, test = dev_speakers(), speakers.test_speakers()
    assert len(dev) == len(set(dev)) == 50 and len(test) == len(set(test)) == 24
    assert not set(dev) & set(test)
    assert dev[0] == "FAKS0" and test[0] == "MDAB0"
    regions = speaker_regions()
    assert set(regions) == set(dev) | set(test)
    assert all(re.fullmatch(r"DR[1-8]", r) for r in regions.values())


def test_unknown_size_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(AsrError, match="tiny, small, full"):
        synthesize_mini_timit(tmp_path / "x", size="huge")
    assert not (tmp_path / "x").exists()


def test_refuses_foreign_or_different_corpus(mini_timit_root: Path, tmp_path: Path) -> None:
    with pytest.raises(AsrError, match="size=tiny seed=0"):
        synthesize_mini_timit(mini_timit_root, size="tiny", seed=1)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(AsrError, match="not an empty directory"):
        synthesize_mini_timit(tmp_path / "busy", size="tiny")
    assert (mini_timit_root / MARKER).is_file()


def test_worker_failure_is_reported(tmp_path: Path) -> None:
    job = plan_corpus("tiny", 0)[0]
    bad_voice = dataclasses.replace(job.speaker.voice, accent="en-zz")
    bad = dataclasses.replace(job, speaker=dataclasses.replace(job.speaker, voice=bad_voice))
    with pytest.raises(AsrError, match=rf"speaker {job.speaker.id}: espeak-ng voice 'en-zz\+"):
        _run_forked((bad, str(tmp_path)))
    assert not list(tmp_path.glob(".result-*"))
