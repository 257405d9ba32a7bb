"""mini-TIMIT: a synthetic corpus in the LDC TIMIT layout, spoken by espeak-ng and/or Piper voices.

Layout written under ``out_dir`` (see ``INTERFACES.md``)::

    TRAIN/DR<n>/<SPK>/SX<k>.{WAV,PHN,WRD,TXT}   made-up train speakers
    TEST/DR<n>/<SPK>/SX<k>.{WAV,PHN,WRD,TXT}    the real TIMIT dev (50) and core-test (24) IDs
    TEST_PIPER/...                               with test_sources=("piper",): the core test again,
                                                 every speaker voiced by Piper (likewise TEST_ESPEAK/)
    lexicon.txt                                  word -> TIMIT-61 phones as in .PHN (closures included),
                                                 one line per distinct pronunciation, of every voice
    speakers.tsv                                 each speaker's split, region, source and settings
    .mini_timit.json                             settings and summary; marks a complete corpus

``SX<k>`` is the Harvard sentence number k (1..720). The 72 Harvard lists of ten are
split once and for all into train (56 lists), dev (8) and test (8) pools, so dev and test
sentences never occur in training. Each speaker reads consecutive sentences of its pool
after a seeded shuffle, so every sentence is read about equally often.

Two synthesisers (``voices``): espeak-ng, a rule-based formant synthesiser with many voice
variants and accents (:mod:`asr.data.espeak_labels` labels it from its phoneme events), and
Piper, a neural VITS voice trained on one recorded talker (:mod:`asr.data.piper_voice`,
labelled from its predicted durations by :mod:`asr.data.piper_labels`). Piper speakers are
pseudo-speakers of that one talker (:mod:`asr.data.voice_transform`: speaking rate, prosody
noise, a frequency warp): in dev and test they are not new voices the way espeak's are.
With both voices every split holds speakers of each; which speaker has which source is
drawn from its own generator, so the espeak speakers of a seed do not change.

Synthesis runs in ``num_workers`` worker interpreters (``asr.data.mini_timit_worker``). espeak-ng keeps state between
utterances (glottal phase, flutter, AGC) that changes the samples, so each speaker is
synthesised in a process forked fresh for it: the output depends only on the seed, not on
the number of workers or the order in which speakers are scheduled, nor on any espeak-ng
state of the calling process. Piper's noise is drawn from a seeded generator too. Each
utterance gets 100-250 ms of silence before and after the speech and a faint white-noise
floor (standard deviation 3 in int16 units).
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import subprocess
import sys
import shutil
import time
import traceback
import zlib
import dataclasses
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from asr.data.espeak import get_espeak
from asr.data.espeak_labels import label_synthesis, load_phone_map, strip_stress
from asr.data.phones import PhoneSegment
from asr.data.voice_transform import draw_piper_speaker, warp_to_16k
from asr.data.speakers import (
    Speaker,
    dev_speakers,
    make_speakers,
    make_train_ids,
    speaker_regions,
    test_speakers,
)
from asr.errors import AsrError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FORMAT_VERSION = 3  # bump when the bytes written for a given size and seed change (3: speakers.tsv sources)
MARKER = ".mini_timit.json"
SPLITS = ("train", "dev", "test")
VOICES = ("espeak", "piper")  # the synthesisers a speaker can be voiced by
# Each size's voices when none are asked for. small and full (the corpora figures are measured
# on) mix both: espeak alone is too easy and too unlike recorded speech (a tri3 model trained
# on it scores 64 % PER on the same sentences spoken by Piper); tiny (the tests) stays espeak
# alone, the fastest to make.
DEFAULT_VOICES = {"tiny": ("espeak",), "small": ("espeak", "piper"), "full": ("espeak", "piper")}
_LIST_LEN = 10  # Harvard sentences come in lists of ten
_PAD_SECONDS = (0.10, 0.25)  # silence before and after the speech, drawn per utterance
_NOISE_STD = 3.0  # int16 units: a faint noise floor (about -80 dBFS) so silence is not all zeros


@dataclass(frozen=True)
class SizeSpec:
    """Speakers per split and sentences per speaker of one corpus size."""

    num_train: int
    num_dev: int
    num_test: int
    sentences_per_speaker: int


SIZES = {
    # tiny: for tests, two dev and two test speakers (one M, one F) from the real lists. Ten
    # training speakers (about 2.5 minutes) is about the least a flat-start monophone aligner
    # learns from: 4 x 3 sentences left most phones with one or two examples.
    "tiny": SizeSpec(num_train=10, num_dev=2, num_test=2, sentences_per_speaker=6),
    # small: the demo, about one hour of training speech.
    "small": SizeSpec(num_train=180, num_dev=10, num_test=24, sentences_per_speaker=8),
    # full: TIMIT-sized (462 train speakers, 50 dev, 24 core test, 8 sentences each).
    "full": SizeSpec(num_train=462, num_dev=50, num_test=24, sentences_per_speaker=8),
}


def harvard_sentences() -> list[str]:
    """The 720 Harvard sentences, in their published order (lists of ten)."""
    text = resources.files("asr.data").joinpath("resources/harvard_sentences.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def sentence_pools(num_sentences: int = 720) -> dict[str, list[int]]:
    """Disjoint sentence indices (0-based) per split: whole lists of ten, fixed for all seeds.

    Of every nine consecutive lists, the first goes to test, the second to dev and the rest
    to train (8 + 8 + 56 lists for the 720 sentences).
    """
    pools: dict[str, list[int]] = {split: [] for split in SPLITS}
    for i in range(num_sentences):
        slot = (i // _LIST_LEN) % 9
        pools["test" if slot == 0 else "dev" if slot == 1 else "train"].append(i)
    return pools


def _pick_balanced(ids: list[str], num: int) -> list[str]:
    """The first ``num`` of ``ids``, alternating male and female while both remain."""
    males = [s for s in ids if s[0] == "M"]
    females = [s for s in ids if s[0] == "F"]
    out = []
    while len(out) < num and (males or females):
        take = females if (len(out) % 2 and females) or not males else males
        out.append(take.pop(0))
    return out


@dataclass(frozen=True)
class _Job:
    """One speaker's work: written under ``out_dir/<split folder>/<region>/<id>/``."""

    split: str
    speaker: Speaker
    sentences: tuple[tuple[int, str], ...]  # (Harvard index, text)
    seed: int


def plan_corpus(size: str, seed: int, voices: tuple[str, ...] | None = None, piper_share: float = 0.5,
                test_sources: tuple[str, ...] = ()) -> list[_Job]:
    """Every speaker's voice and sentences for ``size`` and ``seed`` (no synthesis).

    Args:
        voices: the synthesisers speakers are voiced by (:data:`VOICES`); None: the size's
            default (:data:`DEFAULT_VOICES`).
        piper_share: with both voices, the share of each split's speakers voiced by Piper
            (balanced over the sexes).
        test_sources: extra test sets of one synthesiser each (``test_<source>``, written
            to ``TEST_<SOURCE>/``): the core-test speakers and sentences again, all voiced
            by that source, so a model trained on one synthesiser can be scored on another.

    Raises:
        AsrError: unknown size or voice, listing the valid ones.
    """
    jobs = _plan_espeak(size, seed)
    voices = resolve_voices(size, voices)
    for v in (*voices, *test_sources):
        if v not in VOICES:
            raise AsrError(f"unknown mini-TIMIT voice '{v}'; valid voices: {', '.join(VOICES)}")
    if not voices:
        raise AsrError("mini-TIMIT needs at least one voice (corpus.voices)")
    if "piper" in voices and "espeak" in voices and not 0.0 < piper_share < 1.0:
        raise AsrError(f"corpus.piper_share must lie strictly between 0 and 1, got {piper_share}")
    # Sources and Piper settings come from their own generator, so the espeak speakers of a
    # seed stay the same whatever voices are chosen.
    rng = np.random.default_rng([seed, zlib.crc32(f"{size}/voices".encode())])
    share = 1.0 if voices == ("piper",) else 0.0 if "piper" not in voices else piper_share
    out: list[_Job] = []
    for split in SPLITS:
        split_jobs = [j for j in jobs if j.split == split]
        piper_ids = _pick_piper(split_jobs, share, rng)
        out += [_with_source(j, "piper", rng) if j.speaker.id in piper_ids else j for j in split_jobs]
    voiced = {j.speaker.id: j for j in out if j.split == "test"}
    for source in test_sources:
        for j in jobs:
            if j.split == "test":  # a test speaker already voiced by this source keeps its voice
                same = voiced[j.speaker.id] if voiced[j.speaker.id].speaker.source == source else None
                out.append(dataclasses.replace(same or _with_source(j, source, rng), split=f"test_{source}"))
    return out


def resolve_voices(size: str, voices: tuple[str, ...] | None) -> tuple[str, ...]:
    """``voices``, or the size's default when it is None."""
    return tuple(voices) if voices is not None else DEFAULT_VOICES.get(size, ("espeak",))


def _pick_piper(jobs: list[_Job], share: float, rng: np.random.Generator) -> set[str]:
    """IDs of the speakers of one split voiced by Piper: ``share`` of them (at least one, and at
    least one left for espeak, when both voices speak), split over the sexes in proportion."""
    if share <= 0.0 or share >= 1.0:
        return {j.speaker.id for j in jobs} if share >= 1.0 else set()
    num = min(max(int(round(share * len(jobs))), 1), len(jobs) - 1)
    males = [j.speaker.id for j in jobs if j.speaker.id[0] == "M"]
    females = [j.speaker.id for j in jobs if j.speaker.id[0] == "F"]
    num_m = min(len(males), max(num - len(females), int(round(num * len(males) / len(jobs)))))
    return ({males[i] for i in rng.permutation(len(males))[:num_m]}
            | {females[i] for i in rng.permutation(len(females))[:num - num_m]})


def _with_source(job: _Job, source: str, rng: np.random.Generator) -> _Job:
    if source == "espeak":
        return job
    spk = dataclasses.replace(job.speaker, voice=None, source="piper",
                              piper=draw_piper_speaker(job.speaker.id[0], rng))
    return dataclasses.replace(job, speaker=spk)


def _plan_espeak(size: str, seed: int) -> list[_Job]:
    """The espeak-only plan (what every seed gave before Piper voices existed)."""
    if size not in SIZES:
        raise AsrError(f"unknown mini-TIMIT size '{size}'; valid sizes: {', '.join(SIZES)}")
    spec = SIZES[size]
    rng = np.random.default_rng([seed, zlib.crc32(size.encode())])
    regions = speaker_regions()
    dev_ids = _pick_balanced(dev_speakers(), spec.num_dev)
    test_ids = _pick_balanced(test_speakers(), spec.num_test)
    train_ids = make_train_ids(spec.num_train, rng, set(dev_speakers()) | set(test_speakers()))
    sentences = harvard_sentences()
    pools = sentence_pools(len(sentences))
    jobs = []
    for split, ids in (("train", train_ids), ("dev", dev_ids), ("test", test_ids)):
        pool = [int(i) for i in rng.permutation(pools[split])]
        for k, spk in enumerate(make_speakers(ids, regions, rng)):
            first = k * spec.sentences_per_speaker
            picks = sorted(pool[(first + j) % len(pool)] for j in range(spec.sentences_per_speaker))
            jobs.append(_Job(split, spk, tuple((i, sentences[i]) for i in picks), seed))
    return jobs


def _write_segments(path: Path, segs: list[PhoneSegment]) -> None:
    path.write_text("".join(f"{s.start} {s.end} {s.label}\n" for s in segs), encoding="ascii")


def _to_16k_with_padding(
    audio: np.ndarray, rate: int, rng: np.random.Generator
) -> tuple[np.ndarray, int, int]:
    """Resample espeak's int16 ``[n]`` to 16 kHz, pad silence both ends, add the noise floor.

    Returns:
        int16 audio ``[m]`` at 16 kHz, the number of samples padded before the speech, and
        the number of samples clipped to the int16 range.
    """
    g = math.gcd(SAMPLE_RATE, rate)  # 22050 -> 16000 Hz is up 320, down 441
    return _pad_and_noise(resample_poly(audio.astype(np.float64), SAMPLE_RATE // g, rate // g), rng)


def _pad_and_noise(speech: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    """Pad 16 kHz float speech with silence both ends and add the noise floor (see above)."""
    lead, trail = (int(rng.uniform(*_PAD_SECONDS) * SAMPLE_RATE) for _ in range(2))
    out = np.concatenate([np.zeros(lead), speech, np.zeros(trail)])
    out += rng.normal(0.0, _NOISE_STD, len(out))
    out = np.round(out)
    clipped = int(np.count_nonzero((out < -32768) | (out > 32767)))
    return np.clip(out, -32768, 32767).astype(np.int16), lead, clipped


def split_folder(split: str) -> str:
    """``TRAIN`` for train, ``TEST`` for dev and test (as LDC TIMIT), ``TEST_PIPER`` for ``test_piper``."""
    if split == "train":
        return "TRAIN"
    return "TEST" if split in ("dev", "test") else split.upper()


def _synthesise_speaker(job: _Job, out_dir: Path) -> dict:
    """Synthesise and write one speaker's utterances. Runs in a freshly forked process."""
    start = time.perf_counter()
    synth = _synthesise_piper_speaker if job.speaker.source == "piper" else _synthesise_espeak_speaker
    result = synth(job, out_dir)
    return {**result, "source": job.speaker.source, "synth_seconds": time.perf_counter() - start}


def _synthesise_espeak_speaker(job: _Job, out_dir: Path) -> dict:
    """Synthesise and write one espeak-ng speaker's utterances."""
    engine = get_espeak()
    voice = job.speaker.voice
    engine.set_voice(voice.name, voice.pitch, voice.pitch_range, voice.rate)
    phone_map = load_phone_map()

    def citation(word: str) -> list[str]:
        return [strip_stress(p) for p in engine.text_to_phonemes(word)]

    folder = out_dir / split_folder(job.split) / job.speaker.region / job.speaker.id
    folder.mkdir(parents=True, exist_ok=True)
    seconds, dropped, unaligned, clipped, halved, lexicon = 0.0, 0, 0, 0, 0, set()
    for index, text in job.sentences:
        rng = np.random.default_rng([job.seed, zlib.crc32(job.speaker.id.encode()), index])
        synth = engine.synthesize(text, seed=int(rng.integers(1, 2**31 - 1)))
        audio, lead, num_clipped = _to_16k_with_padding(synth.audio, synth.sample_rate, rng)
        clipped += num_clipped
        labelled = label_synthesis(
            synth, text, voice.name, phone_map, citation, SAMPLE_RATE, len(audio), lead
        )
        stem = str(folder / f"SX{index + 1}")
        sf.write(stem + ".WAV", audio, SAMPLE_RATE, format="NIST", subtype="PCM_16")
        _write_segments(Path(stem + ".PHN"), labelled.phones)
        _write_segments(Path(stem + ".WRD"), labelled.words)
        Path(stem + ".TXT").write_text(f"0 {len(audio)} {text}\n", encoding="ascii")
        for w in labelled.words:
            pron = [p.label for p in labelled.phones if p.start >= w.start and p.end <= w.end]
            lexicon.add((w.label, " ".join(pron)))
        seconds += len(audio) / SAMPLE_RATE
        dropped += labelled.num_dropped
        unaligned += labelled.num_unaligned_words
        halved += labelled.num_halved
    return {"split": job.split, "speaker": job.speaker.id, "utterances": len(job.sentences),
            "seconds": seconds, "dropped": dropped, "unaligned": unaligned, "clipped": clipped,
            "halved": halved,
            "lexicon": sorted(lexicon)}


_PIPER: list = []  # the process' Piper engine, made on first use
# Piper peak-normalises each utterance to full scale; resampling to 16 kHz then overshoots
# it. 0.8 of full scale leaves the headroom (no clipped samples on tiny or small).
_PIPER_VOLUME = 0.8


def _map_segments(segs: list[PhoneSegment], ratio: float, lead: int, total: int | None) -> list[PhoneSegment]:
    """Segments in synthesis samples -> output samples (``* ratio + lead``); with ``total``, the
    first starts at 0 and the last ends at ``total`` (they take the padding), and segments
    that round to nothing are dropped."""
    out = []
    for k, seg in enumerate(segs):
        start, end = int(round(seg.start * ratio)) + lead, int(round(seg.end * ratio)) + lead
        if total is not None:
            start = 0 if k == 0 else start
            end = total if k == len(segs) - 1 else end
        if end > start:
            out.append(PhoneSegment(start, end, seg.label))
    if total is not None:  # keep the labels contiguous over dropped ones
        out = [PhoneSegment(out[k - 1].end if k else 0, seg.end, seg.label) for k, seg in enumerate(out)]
    return out


def _synthesise_piper_speaker(job: _Job, out_dir: Path) -> dict:
    """Synthesise and write one Piper pseudo-speaker's utterances (:mod:`asr.data.voice_transform`)."""
    from asr.data.piper_labels import label_piper, text_words
    from asr.data.piper_voice import PiperSynth

    if not _PIPER:
        _PIPER.append(PiperSynth(num_threads=1))
    engine, spk = _PIPER[0], job.speaker.piper
    folder = out_dir / split_folder(job.split) / job.speaker.region / job.speaker.id
    folder.mkdir(parents=True, exist_ok=True)
    seconds, dropped, clipped, halved, lexicon = 0.0, 0, 0, 0, set()
    for index, text in job.sentences:
        rng = np.random.default_rng([job.seed, zlib.crc32(job.speaker.id.encode()), index])
        synth = engine.synthesize(text, seed=int(rng.integers(1, 2**31 - 1)),
                                  length_scale=spk.synthesis_length_scale(), noise_scale=spk.noise_scale,
                                  noise_w_scale=spk.noise_w_scale, volume=_PIPER_VOLUME)
        words = text_words(text)
        labelled = label_piper(synth.audio, synth.sample_rate, synth.symbols, synth.samples, words)
        speech, ratio = warp_to_16k(synth.audio, synth.sample_rate, spk.warp)
        audio, lead, num_clipped = _pad_and_noise(speech, rng)
        clipped += num_clipped
        phones = _map_segments(labelled.phones, ratio, lead, len(audio))
        dropped += labelled.num_dropped + len(labelled.phones) - len(phones)
        word_segs = _map_segments(labelled.words, ratio, lead, None)
        stem = str(folder / f"SX{index + 1}")
        sf.write(stem + ".WAV", audio, SAMPLE_RATE, format="NIST", subtype="PCM_16")
        _write_segments(Path(stem + ".PHN"), phones)
        _write_segments(Path(stem + ".WRD"), word_segs)
        Path(stem + ".TXT").write_text(f"0 {len(audio)} {text}\n", encoding="ascii")
        lexicon |= {(w, " ".join(pron)) for w, pron in labelled.pronunciations}
        seconds += len(audio) / SAMPLE_RATE
        halved += labelled.num_halved
    return {"split": job.split, "speaker": job.speaker.id, "source": "piper", "utterances": len(job.sentences),
            "seconds": seconds, "dropped": dropped, "unaligned": 0, "clipped": clipped, "halved": halved,
            "lexicon": sorted(lexicon)}


def _run_forked(task: tuple[_Job, str]) -> dict:
    """Run :func:`_synthesise_speaker` in a child forked for this job; return its result."""
    job, out_dir = task
    result_path = Path(out_dir) / f".result-{job.speaker.id}.json"
    pid = os.fork()
    if pid == 0:  # child: never returns
        code = 0
        try:
            result = _synthesise_speaker(job, Path(out_dir))
        except AsrError as err:
            result, code = {"error": str(err)}, 1
        except BaseException:  # report anything, with its traceback, to the parent
            result, code = {"error": traceback.format_exc()}, 1
        try:
            result_path.write_text(json.dumps(result))
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if not result_path.is_file():
        raise AsrError(f"mini-TIMIT synthesis of speaker {job.speaker.id} died (wait status {status})")
    result = json.loads(result_path.read_text())
    result_path.unlink()
    if "error" in result:
        raise AsrError(f"mini-TIMIT speaker {job.speaker.id}: {result['error']}")
    return result


def _run_in_workers(tasks: list[tuple[_Job, str]], num_workers: int) -> list[dict]:
    """Run the jobs in ``num_workers`` fresh interpreters (round-robin); results in job order."""
    package_parent = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])))
    shares = [tasks[i::num_workers] for i in range(num_workers)]
    out_dir = Path(tasks[0][1])
    procs = []
    for w, share in enumerate(shares):
        if not share:
            continue
        jobs, results_file = out_dir / f".jobs-{w}.pkl", out_dir / f".results-{w}.pkl"
        jobs.write_bytes(pickle.dumps(share))
        cmd = [sys.executable, "-m", "asr.data.mini_timit_worker", str(jobs), str(results_file)]
        procs.append((subprocess.Popen(cmd, env=env), jobs, results_file))
    outputs = []
    for proc, jobs, results_file in procs:
        if proc.wait() != 0 or not results_file.is_file():
            raise AsrError(f"mini-TIMIT synthesis worker died (exit status {proc.returncode})")
        out = pickle.loads(results_file.read_bytes())
        jobs.unlink()
        results_file.unlink()
        if isinstance(out, dict):
            raise AsrError(out["error"])
        outputs.append(out)
    results: list[dict] = [{}] * len(tasks)
    for w, out in enumerate(outputs):
        for k, result in enumerate(out):
            results[w + k * num_workers] = result
    return results


def _pid_alive(pid: str) -> bool:
    """Whether process ``pid`` (a string from a folder name) still runs."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _read_marker(out_dir: Path) -> dict | None:
    try:
        return json.loads((out_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None


def synthesize_mini_timit(out_dir: Path, size: str = "small", seed: int = 0, num_workers: int = 2,
                          voices: tuple[str, ...] | None = None, piper_share: float = 0.5,
                          test_sources: tuple[str, ...] = ()) -> dict:
    """Synthesise mini-TIMIT under ``out_dir`` (see the module docstring), or reuse it.

    The corpus is built in a temporary sibling directory and renamed into place, so
    ``out_dir`` is either absent or complete. An existing corpus with the same size, seed
    and format version is reused as it is.

    Args:
        out_dir: corpus root to create; may exist only if empty or a complete mini-TIMIT.
        size: ``tiny`` (tests), ``small`` (about 1 h of training speech) or ``full`` (TIMIT-sized).
        seed: the same seed gives byte-identical files.
        num_workers: processes synthesising in parallel (at least 1).
        voices, piper_share, test_sources: who speaks (see :func:`plan_corpus`; voices None:
            the size's default, both voices for small and full, espeak for tiny).

    Returns:
        Summary: ``size``, ``seed``, ``splits`` (per split ``speakers``, ``utterances``,
        ``seconds`` of audio), ``seconds_taken`` (wall time), ``dropped_zero_length_phones``,
        ``words_without_phones`` (words with no ``.WRD`` line), ``clipped_samples``,
        ``stops_without_burst`` (voiced stops split at half their span, see
        :mod:`asr.data.espeak_labels`),
        ``reused`` (True when an existing corpus was kept).

    Raises:
        AsrError: unknown size; ``out_dir`` holds something else; espeak-ng not found or
            failing; an espeak phoneme missing from the mapping.
    """
    out_dir = Path(out_dir)
    voices, test_sources = resolve_voices(size, voices), tuple(test_sources)
    plan = plan_corpus(size, seed, voices, piper_share, test_sources)  # validates before touching the disk
    wanted = {"size": size, "seed": seed, "format_version": FORMAT_VERSION, "voices": list(voices),
              "piper_share": piper_share if len(voices) > 1 else None, "test_sources": list(test_sources)}
    marker = _read_marker(out_dir)
    if marker is not None:
        have = {k: marker.get(k) for k in wanted}
        if have == wanted:
            return dict(marker["summary"], reused=True, seconds_taken=0.0)
        raise AsrError(
            f"{out_dir}: holds mini-TIMIT " + " ".join(f"{k}={v}" for k, v in have.items())
            + "; remove it or choose another out directory"
        )
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise AsrError(f"{out_dir}: exists and is not an empty directory or a mini-TIMIT corpus")
    start = time.perf_counter()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    # Temp folders of runs killed mid-synthesis (their process is gone) would stay forever.
    for leftover in out_dir.parent.glob(f".{out_dir.name}.tmp-*"):
        if leftover == tmp or not _pid_alive(leftover.name.rsplit("-", 1)[-1]):
            shutil.rmtree(leftover, ignore_errors=True)
    tmp.mkdir()
    try:
        tasks = [(job, str(tmp)) for job in plan]
        results = _run_in_workers(tasks, max(1, num_workers))
        summary = _summarise(size, seed, results)
        _write_lexicon(tmp / "lexicon.txt", results)
        _write_speaker_table(tmp / "speakers.tsv", plan)
        # The marker holds no timing, so the same seed gives the same bytes in every file.
        # Timings vary run to run: kept out of the corpus files.
        stored = dict(summary, sources={k: {f: v for f, v in e.items() if f != "synth_seconds"}
                                        for k, e in summary["sources"].items()})
        (tmp / MARKER).write_text(json.dumps({**wanted, "summary": stored}, indent=1))
        if out_dir.exists():
            out_dir.rmdir()  # empty, checked above
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "mini-TIMIT: dropped %d zero-length espeak phones; %d words got no phones (no .WRD line); "
        "%d samples clipped; %d voiced stops with no burst found (span halved)",
        summary["dropped_zero_length_phones"], summary["words_without_phones"],
        summary["clipped_samples"], summary["stops_without_burst"],
    )
    return dict(summary, reused=False, seconds_taken=time.perf_counter() - start)


def _summarise(size: str, seed: int, results: list[dict]) -> dict:
    splits: dict[str, dict] = {}
    for r in results:
        entry = splits.setdefault(r["split"], {"speakers": 0, "utterances": 0, "seconds": 0.0})
        entry["speakers"] += 1
        entry["utterances"] += r["utterances"]
        entry["seconds"] = round(entry["seconds"] + r["seconds"], 3)
    sources: dict[str, dict] = {}
    for r in results:
        entry = sources.setdefault(r["source"], {"speakers": 0, "audio_seconds": 0.0, "synth_seconds": 0.0})
        entry["speakers"] += 1
        entry["audio_seconds"] = round(entry["audio_seconds"] + r["seconds"], 3)
        entry["synth_seconds"] += r["synth_seconds"]
    for entry in sources.values():
        entry["synth_seconds"] = round(entry["synth_seconds"], 3)
    return {"size": size, "seed": seed, "splits": splits, "sources": sources,
            "dropped_zero_length_phones": sum(r["dropped"] for r in results),
            "words_without_phones": sum(r["unaligned"] for r in results),
            "clipped_samples": sum(r["clipped"] for r in results),
            "stops_without_burst": sum(r["halved"] for r in results)}


def _write_lexicon(path: Path, results: list[dict]) -> None:
    """``word phone phone ...`` per line, each distinct pronunciation once, sorted."""
    entries = sorted({(w, p) for r in results for w, p in r["lexicon"]})
    path.write_text("".join(f"{w} {p}\n" for w, p in entries), encoding="ascii")


def _write_speaker_table(path: Path, plan: list[_Job]) -> None:
    """Which synthesiser and settings speak as which speaker (for listening and debugging)."""
    lines = ["\t".join(["speaker", "split", "region", "source", "settings"])]
    for j in plan:
        settings = " ".join(f"{k}={v}" for k, v in j.speaker.settings().items())
        lines.append("\t".join([j.speaker.id, j.split, j.speaker.region, j.speaker.source, settings]))
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
