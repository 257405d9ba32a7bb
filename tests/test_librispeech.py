"""LibriSpeech data prep (a hand-made tree with every kind of bad input) and mini-LibriSpeech."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.data.kaldi_dir import load_utterance, read_data_dir
from asr.data.librispeech import (
    BAD_AUDIO,
    BAD_ID,
    DUPLICATE,
    EMPTY_TRANSCRIPT,
    MISSING_AUDIO,
    NO_TRANSCRIPT,
    prepare_librispeech,
)
from asr.data.mini_librispeech import synthesize_mini_librispeech, transcript_words
from asr.data.phones import TIMIT48
from asr.errors import AsrError

RATE = 16000


def _flac(path: Path, num_samples: int = 8000, seed: int = 0) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = np.random.default_rng(seed).integers(-2000, 2000, num_samples).astype(np.int16)
    sf.write(str(path), audio, RATE, format="FLAC", subtype="PCM_16")
    return audio


def _chapter(subset: Path, spk: str, chap: str, lines: list[str] | None, flacs: dict[str, int]) -> Path:
    """One chapter folder: FLACs (NNNN -> samples; 0 -> a zero-byte file) and its transcript."""
    folder = subset / spk / chap
    folder.mkdir(parents=True, exist_ok=True)
    for n, samples in flacs.items():
        path = folder / f"{spk}-{chap}-{n}.flac"
        if samples:
            _flac(path, samples, seed=int(spk) + int(n))
        else:
            path.write_bytes(b"")
    if lines is not None:
        (folder / f"{spk}-{chap}.trans.txt").write_text("".join(line + "\n" for line in lines))
    return folder


def _make_corpus(root: Path) -> Path:
    """``root/LibriSpeech/{dev-clean,test-clean}`` with three good utterances and seven bad ones."""
    ls = root / "LibriSpeech"
    dev, test = ls / "dev-clean", ls / "test-clean"
    _chapter(dev, "84", "121123", [
        "84-121123-0000 GO DO YOU HEAR",
        "84-121123-0001 BUT IN LESS THAN FIVE MINUTES THE STAIRCASE GROANED",
        "84-121123-0002 A ZERO LENGTH FILE",        # zero-byte FLAC
        "84-121123-0004 NO AUDIO FOR THIS LINE",     # missing FLAC
        "84-121123-0005",                            # empty transcript
        "",                                          # blank lines are ignored
        "99-121123-0006 WRONG SPEAKER PREFIX",       # id not of this speaker-chapter
    ], {"0000": 8000, "0001": 12000, "0002": 0, "0003": 4000, "0005": 4000})  # 0003: no line
    _chapter(dev, "174", "50561", ["174-50561-0000 FORGOTTEN TOO THE NAME OF GILLIAN",
                                   "174-50561-0001 A BROKEN FILE"], {"0000": 16000})
    (dev / "174" / "50561" / "174-50561-0001.flac").write_bytes(b"fLaC not really")  # unreadable
    _chapter(test, "1089", "134686", [
        "1089-134686-0000 HE HOPED THERE WOULD BE STEW FOR DINNER",
        "1089-134686-0001 STUFF IT INTO YOU",
        "1089-134686-0001 STUFF IT INTO YOU HIS BELLY COUNSELLED HIM",  # duplicated id
    ], {"0000": 8000, "0001": 8000})
    _chapter(test, "1188", "133604", None, {"0000": 8000, "0001": 8000})  # no trans.txt at all
    return ls


def test_prepare_writes_one_data_dir_per_subset_and_counts_every_bad_input(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ls = _make_corpus(tmp_path)
    with caplog.at_level(logging.WARNING):
        report = prepare_librispeech(tmp_path, tmp_path / "data")  # the parent of LibriSpeech/ will do
    assert report.num_utts == {"dev_clean": 3, "test_clean": 1}
    assert report.num_speakers == {"dev_clean": 2, "test_clean": 1}
    assert report.seconds["dev_clean"] == pytest.approx((8000 + 12000 + 16000) / RATE)
    assert report.num_skipped == {BAD_AUDIO: 2, MISSING_AUDIO: 1, EMPTY_TRANSCRIPT: 1, NO_TRANSCRIPT: 3,
                                  BAD_ID: 1, DUPLICATE: 1}
    assert len(report.skipped) == 9
    summary = report.summary()
    assert "dev_clean:      3 utts,    2 speakers" in summary
    assert summary.splitlines()[-1].startswith("skipped utterances: 9 (")
    assert "1 missing FLAC" in summary and "3 no transcript line" in summary

    dev = read_data_dir(tmp_path / "data" / "dev_clean")
    assert dev.utts == ["174-50561-0000", "84-121123-0000", "84-121123-0001"]  # Kaldi (string) order
    assert dev.text["84-121123-0000"] == "GO DO YOU HEAR"  # words as in the transcript
    assert dev.utt2spk == {"174-50561-0000": "174", "84-121123-0000": "84", "84-121123-0001": "84"}
    assert dev.spk2utt["84"] == ["84-121123-0000", "84-121123-0001"]
    assert dev.utt2dur["84-121123-0001"] == pytest.approx(0.75)
    flac = ls / "dev-clean" / "84" / "121123" / "84-121123-0000.flac"
    assert dev.wav["84-121123-0000"] == str(flac.resolve())
    samples, rate = load_utterance(dev, "84-121123-0000")  # the loader reads FLAC
    written, _ = sf.read(str(flac), dtype="float32")
    assert rate == RATE and samples.shape == (8000,) and np.array_equal(samples, written)
    assert (tmp_path / "data" / "dev_clean" / "done.json").is_file()  # a stage of asr.stage
    assert read_data_dir(tmp_path / "data" / "test_clean").utts == ["1089-134686-0000"]

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert all("\n" not in w for w in warnings)
    chap = ls / "dev-clean" / "84" / "121123"
    expected = [
        f"skipping 84-121123-0002: {chap / '84-121123-0002.flac'}: cannot read audio (",
        f"skipping 84-121123-0004: {chap / '84-121123.trans.txt'}:4: no FLAC file {chap / '84-121123-0004.flac'}",
        f"skipping 84-121123-0005: {chap / '84-121123.trans.txt'}:5: empty transcript (no words)",
        f"skipping 84-121123-0003: {chap / '84-121123-0003.flac'}: no transcript line for 84-121123-0003",
        (f"skipping 99-121123-0006: {chap / '84-121123.trans.txt'}:7: utterance id 99-121123-0006 does not "
         "start with 84-121123-"),
        f"skipping 174-50561-0001: {ls / 'dev-clean/174/50561/174-50561-0001.flac'}: cannot read audio (",
        "skipping 1089-134686-0001: utterance id 1089-134686-0001 appears 2 times (",
        f"skipping 2 utterance(s) of {ls / 'test-clean/1188/133604'}: no 1188-133604.trans.txt in it",
        "skipped 9 utterance(s) in total",
    ]
    for start in expected:
        assert sum(w.startswith(start) for w in warnings) == 1, (start, warnings)
    assert len(warnings) == len(expected)  # one line per problem (the chapter's two files: one line)


def test_subsets_can_be_chosen_and_a_missing_one_is_named(tmp_path: Path) -> None:
    ls = _make_corpus(tmp_path)
    report = prepare_librispeech(ls, tmp_path / "data", subsets=["test_clean"])
    assert list(report.num_utts) == ["test_clean"]
    assert not (tmp_path / "data" / "dev_clean").exists()
    with pytest.raises(AsrError, match=r"no subset folder test-other \(found: dev-clean, test-clean\); "
                                       r"set corpus.root="):
        prepare_librispeech(ls, tmp_path / "data", subsets=["test-clean", "test-other"], override="corpus.root")


def test_missing_corpus_is_one_line_naming_the_folder_and_the_override(tmp_path: Path) -> None:
    for root, what in ((tmp_path / "nowhere", "LibriSpeech corpus directory not found"),
                       (tmp_path, "no LibriSpeech subset folder (train-clean-100, ")):
        with pytest.raises(AsrError) as err:
            prepare_librispeech(root, tmp_path / "data")
        message = str(err.value)
        assert message.startswith(f"{root}: {what}") and "\n" not in message
        assert "set data.root=/path/to/LibriSpeech" in message
        assert "asr-prepare corpus=mini_librispeech out=DIR" in message
    assert not (tmp_path / "data").exists()


def test_nothing_written_when_a_subset_has_no_usable_utterance(tmp_path: Path) -> None:
    ls = tmp_path / "LibriSpeech"
    _chapter(ls / "dev-clean", "84", "121123", ["84-121123-0000 GO"], {"0000": 8000})
    _chapter(ls / "test-clean", "1089", "134686", ["1089-134686-0000"], {"0000": 8000})  # empty transcript
    with pytest.raises(AsrError, match=r"test-clean: no usable utterances in the 'test-clean' subset"):
        prepare_librispeech(ls, tmp_path / "data")
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_unchanged_subset_is_reused_and_a_change_redoes_it(tmp_path: Path) -> None:
    ls = _make_corpus(tmp_path)
    prepare_librispeech(ls, tmp_path / "data")
    text = tmp_path / "data" / "dev_clean" / "text"
    mtime = text.stat().st_mtime_ns
    again = prepare_librispeech(ls, tmp_path / "data")
    assert text.stat().st_mtime_ns == mtime
    assert again.num_utts["dev_clean"] == 3 and len(again.skipped) == 9  # counts come back on reuse
    trans = ls / "dev-clean" / "84" / "121123" / "84-121123.trans.txt"
    trans.write_text(trans.read_text() + "84-121123-0003 NOW IT HAS ONE\n")
    assert prepare_librispeech(ls, tmp_path / "data").num_utts["dev_clean"] == 4


def test_transcript_words_are_librispeech_style() -> None:
    assert transcript_words("The soft cushion broke the man's fall.") == \
        ["THE", "SOFT", "CUSHION", "BROKE", "THE", "MAN'S", "FALL"]
    assert transcript_words("'Quoted,' she said -- twice!") == ["QUOTED", "SHE", "SAID", "TWICE"]


# ---------------------------------------------------------------------------- mini-LibriSpeech


def _prepare_mini(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "asr.cli.prepare", "corpus=mini_librispeech", "corpus.size=tiny", "corpus.seed=0",
         f"out={out}"], check=False, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def mini_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two ``asr-prepare corpus=mini_librispeech corpus.size=tiny`` runs, same seed, separate folders."""
    base = tmp_path_factory.mktemp("mini_librispeech")
    outs = [base / "a", base / "b"]
    for out in outs:
        res = _prepare_mini(out)
        assert res.returncode == 0, res.stderr
        assert "train_clean_100:" in res.stdout and "skipped utterances: 0" in res.stdout
    return outs


def test_mini_librispeech_has_the_librispeech_layout_and_data_dirs(mini_runs: list[Path]) -> None:
    out = mini_runs[0]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["data", "dev-clean", "test-clean",
                                                                    "train-clean-100"]
    assert not (out / ".mini_timit").exists()  # the work folder is gone
    counts = {"train-clean-100": 10, "dev-clean": 2, "test-clean": 2}  # tiny's speakers, 6 sentences each
    lexicon = {line.split()[0] for line in (out / "lexicon.txt").read_text().splitlines()}
    speakers: set[str] = set()
    for subset, num_speakers in counts.items():
        chapters = sorted((out / subset).glob("*/*"))
        assert len(chapters) == num_speakers
        for chap in chapters:
            spk = chap.parent.name
            assert spk.isdigit() and chap.name.isdigit() and spk not in speakers
            speakers.add(spk)
            flacs = sorted(chap.glob("*.flac"))
            assert [f.name for f in flacs] == [f"{spk}-{chap.name}-{n:04d}.flac" for n in range(6)]
            info = sf.info(str(flacs[0]))
            assert (info.format, info.samplerate, info.channels, info.subtype) == ("FLAC", RATE, 1, "PCM_16")
            lines = (chap / f"{spk}-{chap.name}.trans.txt").read_text().splitlines()
            assert [line.split()[0] for line in lines] == [f.name[:-5] for f in flacs]
            for line in lines:
                words = line.split()[1:]
                assert words and all(w == w.upper() for w in words)
                assert set(words) <= lexicon  # every word has a pronunciation
    table = (out / "SPEAKERS.TXT").read_text().splitlines()
    assert table[0].startswith(";ID") and len(table) == 1 + sum(counts.values())
    for name, subset in (("train_clean_100", "train-clean-100"), ("dev_clean", "dev-clean"),
                         ("test_clean", "test-clean")):
        d = read_data_dir(out / "data" / name)
        assert len(d.utts) == 6 * counts[subset] and len(d.spk2utt) == counts[subset]
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in d.wav.values())
        assert all(utt.startswith(spk + "-") for utt, spk in d.utt2spk.items())
        # asr-prepare gives mini-LibriSpeech's data dirs phones from its own lexicon (hybrid recipes)
        assert set(d.phones) == set(d.utts) and all(p.split()[0] == "sil" for p in d.phones.values())


def test_mini_librispeech_is_byte_identical_for_a_seed_and_reused(mini_runs: list[Path]) -> None:
    def contents(root: Path) -> dict[str, bytes]:
        # wav.scp holds absolute paths; done.json records when a stage finished.
        return {str(p.relative_to(root)): p.read_bytes().replace(str(root).encode(), b"ROOT")
                for p in sorted(root.rglob("*")) if p.is_file() and p.name != "done.json"}

    a, b = contents(mini_runs[0]), contents(mini_runs[1])
    assert sum(k.endswith(".flac") for k in a) == 84 and "data/train_clean_100/wav.scp" in a
    assert a == b
    again = synthesize_mini_librispeech(mini_runs[0], size="tiny", seed=0)
    assert again["reused"] and again["subsets"]["dev-clean"]["utterances"] == 12
    with pytest.raises(AsrError, match="holds mini-LibriSpeech size=tiny seed=0"):
        synthesize_mini_librispeech(mini_runs[0], size="tiny", seed=1)
    with pytest.raises(AsrError, match="unknown mini-LibriSpeech size 'full'; valid sizes: tiny, small"):
        synthesize_mini_librispeech(mini_runs[0].parent / "c", size="full")


def test_mini_librispeech_speaks_mini_timit_samples(mini_runs: list[Path], mini_timit_root: Path) -> None:
    """Speaker 1000 is mini-TIMIT's first speaker (same size and seed), its audio sample for sample."""
    first = (mini_timit_root / "speakers.tsv").read_text().splitlines()[1].split("\t")
    timit_id, region = first[0], first[2]
    wavs = sorted((mini_timit_root / "TRAIN" / region / timit_id).glob("SX*.WAV"), key=lambda p: int(p.stem[2:]))
    flac = mini_runs[0] / "train-clean-100" / "1000" / "100000" / "1000-100000-0000.flac"
    assert np.array_equal(sf.read(str(flac), dtype="int16")[0], sf.read(str(wavs[0]), dtype="int16")[0])
    sentence = wavs[0].with_suffix(".TXT").read_text().split(maxsplit=2)[2]
    line = (flac.parent / "1000-100000.trans.txt").read_text().splitlines()[0]
    assert line == "1000-100000-0000 " + " ".join(transcript_words(sentence))


# ---------------------------------------------------------------------------- text.phn from a lexicon

# LibriSpeech-style (ARPAbet, CMUdict pronunciations) for the hand-made tree's words, but
# STAIRCASE, GROANED and GILLIAN: 84-121123-0001 and 174-50561-0000 have a word not in it.
_ARPABET_LEXICON = """\
BE\tB IY1
BUT\tB AH1 T
DINNER\tD IH1 N ER0
DO\tD UW1
FIVE\tF AY1 V
FOR\tF AO1 R
FORGOTTEN\tF ER0 G AA1 T AH0 N
GO\tG OW1
HE\tHH IY1
HEAR\tHH IY1 R
HOPED\tHH OW1 P T
IN\tIH0 N
LESS\tL EH1 S
MINUTES\tM IH1 N AH0 T S
NAME\tN EY1 M
OF\tAH1 V
STEW\tS T UW1
THAN\tDH AE1 N
THE\tDH AH0
THE\tDH IY0
THERE\tDH EH1 R
TOO\tT UW1
WOULD\tW UH1 D
YOU\tY UW1
"""


def _oov_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "not in the lexicon" in r.getMessage()]


def test_a_lexicon_gives_text_phn_and_utterances_with_oov_words_get_no_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ls = _make_corpus(tmp_path)
    lexicon = tmp_path / "librispeech-lexicon.txt"
    lexicon.write_text(_ARPABET_LEXICON)
    with caplog.at_level(logging.WARNING):
        report = prepare_librispeech(ls, tmp_path / "data", lexicon=lexicon)
    dev = read_data_dir(tmp_path / "data" / "dev_clean")
    # sil, the first pronunciation of each word (closures before stops, no stress), sil.
    assert dev.phones == {"84-121123-0000": "sil vcl g ow vcl d uw y uw hh iy r sil"}
    assert dev.utts == ["174-50561-0000", "84-121123-0000", "84-121123-0001"]  # OOV utterances kept
    assert dev.text["174-50561-0000"] == "FORGOTTEN TOO THE NAME OF GILLIAN"
    test = read_data_dir(tmp_path / "data" / "test_clean")
    assert test.phones == {"1089-134686-0000": "sil hh iy hh ow cl p cl t dh eh r w uh vcl d vcl b iy s cl t uw "
                                               "f ao r vcl d ih n er sil"}
    assert report.num_utts == {"dev_clean": 3, "test_clean": 1}
    assert report.num_phones == {"dev_clean": 1, "test_clean": 1}
    assert report.num_oov == {"dev_clean": 2, "test_clean": 0}
    assert len(report.skipped) == 9  # OOV utterances are not left out
    assert "dev_clean:      3 utts,    2 speakers,      0.0 min, text.phn for 1 (2 with words not in the lexicon)" \
        in report.summary()
    oov = _oov_warnings(caplog)
    assert oov == [(f"dev_clean: 2 utterance(s) with words not in the lexicon {lexicon} get no text.phn line "
                    "(audio and words kept); the first is 174-50561-0000 (GILLIAN)")]

    # Unchanged: reused, counts back from done.json, no new warning.
    phn = tmp_path / "data" / "dev_clean" / "text.phn"
    mtime = phn.stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        again = prepare_librispeech(ls, tmp_path / "data", lexicon=lexicon)
    assert phn.stat().st_mtime_ns == mtime and not _oov_warnings(caplog)
    assert again.num_phones == report.num_phones and again.num_oov == report.num_oov

    # A changed lexicon (GILLIAN added) rebuilds.
    lexicon.write_text(_ARPABET_LEXICON + "GILLIAN\tJH IH1 L IY0 AH0 N\n")
    changed = prepare_librispeech(ls, tmp_path / "data", lexicon=lexicon)
    assert changed.num_phones["dev_clean"] == 2 and changed.num_oov["dev_clean"] == 1
    assert read_data_dir(tmp_path / "data" / "dev_clean").phones["174-50561-0000"] == \
        "sil f er vcl g aa cl t ah n cl t uw dh ah n ey m ah v vcl jh ih l iy ah n sil"


def test_without_a_lexicon_no_text_phn_and_the_stage_key_is_unchanged(tmp_path: Path) -> None:
    ls = _make_corpus(tmp_path)
    report = prepare_librispeech(ls, tmp_path / "data")
    dev_dir = tmp_path / "data" / "dev_clean"
    assert not (dev_dir / "text.phn").exists() and read_data_dir(dev_dir).phones == {}
    assert report.num_phones == {} and "text.phn" not in report.summary()
    # The key as before lexicons existed: data dirs prepared then are reused.
    assert set(json.loads((dev_dir / "done.json").read_text())["key"]) == {"subset", "files"}
    # Adding a lexicon rebuilds; taking it away again rebuilds without text.phn.
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text(_ARPABET_LEXICON)
    assert prepare_librispeech(ls, tmp_path / "data", lexicon=lexicon).num_phones["dev_clean"] == 1
    assert (dev_dir / "text.phn").is_file()
    prepare_librispeech(ls, tmp_path / "data")
    assert not (dev_dir / "text.phn").exists()


def test_a_bad_lexicon_is_one_line_naming_the_file_and_nothing_is_written(tmp_path: Path) -> None:
    ls = _make_corpus(tmp_path)
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text(_ARPABET_LEXICON.replace("GO\tG OW1", "GO\tG OWX1"))
    line = _ARPABET_LEXICON.splitlines().index("GO\tG OW1") + 1
    with pytest.raises(AsrError) as err:
        prepare_librispeech(ls, tmp_path / "data", lexicon=lexicon)
    assert str(err.value).startswith(f"{lexicon}:{line}: phone label 'OWX1' is not in the ARPAbet phone set")
    assert "\n" not in str(err.value)
    with pytest.raises(AsrError, match=r"nowhere.txt: cannot read the lexicon \("):
        prepare_librispeech(ls, tmp_path / "data", lexicon=tmp_path / "nowhere.txt")
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_mini_librispeech_lexicon_gives_every_utterance_phones(mini_runs: list[Path], tmp_path: Path) -> None:
    """mini-LibriSpeech's ``lexicon.txt`` (upper-case words, TIMIT-61 phones) covers its transcripts."""
    out = mini_runs[0]
    report = prepare_librispeech(out, tmp_path / "data", lexicon=out / "lexicon.txt")  # not into the fixture
    assert report.num_oov == {"train_clean_100": 0, "dev_clean": 0, "test_clean": 0}
    for name in ("train_clean_100", "dev_clean", "test_clean"):
        d = read_data_dir(tmp_path / "data" / name)
        assert set(d.phones) == set(d.utts) and report.num_phones[name] == len(d.utts)
        for phones in d.phones.values():
            labels = phones.split()
            assert labels[0] == labels[-1] == "sil" and len(labels) > 2 and set(labels) <= set(TIMIT48)
