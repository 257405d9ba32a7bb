"""The bad-input catalogue: build each case's input, run its real command, read what came out.

``cases.yaml`` is the data: one entry per bad input with

* ``id`` and ``kind`` (what sort of defect; the bench counts by it),
* ``generator`` and ``params``: the function of :data:`GENERATORS` that writes the input
  (a small TIMIT- or LibriSpeech-layout corpus, a Kaldi feature scp, a folder of audio, a
  crafted checkpoint) into a fresh folder, with one bad item among good ones,
* ``command``: the entry point and its arguments; ``$root``, ``$out``, ``$exp``, ``$audio``,
  ``$scp``, ``$ckpt``, ``$good_ckpt``, ``$ro`` and ``$small`` are the generator's paths,
* ``sandbox`` (optional): ``readonly`` (a read-only bind mount of ``$ro``, in a mount
  namespace), ``tmpfs`` (a size-limited tmpfs on ``$small``), ``fsize`` (RLIMIT_FSIZE in
  bytes: a file that grows past it fails with EFBIG, the way a full disk fails a write),
* ``expect``: ``exit`` (status), ``message`` (a fragment the console output must hold),
  ``skipped`` (the sum of the counts the stage summaries print, :data:`SKIP_COUNTS`),
  ``files`` (path -> a fragment it must hold), ``sorted`` (Kaldi tables that must be sorted).

Every case is also checked for no ``Traceback`` in its output and no lost data: each good
item of the input (utterance, audio file) is in the stage's output. A failing case
(``exit`` non-zero) must say why in exactly one ``error:`` line.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import string
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import soundfile as sf
import yaml

CASES_FILE = Path(__file__).with_name("cases.yaml")
BIN = Path(sys.executable).parent
SR = 16000
# The good sentence and its pronunciation (TIMIT-61 labels, as mini-TIMIT's lexicon.txt has them).
SENTENCE = "She had your dark suit."
LEXICON = {"she": "sh iy", "had": "hh ae dcl d", "your": "y uh r", "dark": "dcl d aa r kcl k",
           "suit": "s uw tcl t"}
PHONES = ("h#", "sh", "iy", "hh", "ae", "dcl", "d", "y", "uh", "r", "pau", "h#")

# What a stage summary prints for the utterances it left out; a case's ``skipped`` is the
# sum of every count these find in its console output.
SKIP_COUNTS = (
    re.compile(r"skipped utterances: (\d+)"),  # asr-prepare's summary, and asr-train's data stage
    re.compile(r"features: \d+ utterances \(\d+ frames\) in \S+, [\d.]+ s; (\d+) skipped"),
    re.compile(r"lang: (\d+) of \d+ train sentence\(s\) have words missing from the lexicon"),
    re.compile(r"(\d+) of \d+ audio file\(s\) could not be read"),
)


# ---------------------------------------------------------------------------- audio


def write_audio(path: Path, *, format: str = "NIST", subtype: str = "PCM_16", rate: int = SR,
                channels: int = 1, seconds: float = 0.5, signal: str = "noise", seed: int = 0,
                keep_bytes: int | None = None, sample_count: int | None = None) -> int:
    """Write one test recording and return its intended length in samples (per channel).

    Args:
        path: where (the name's extension does not matter; ``format`` decides).
        format, subtype: soundfile's (``NIST``/``WAV``/``FLAC``; ``PCM_16``, ``PCM_S8``,
            ``PCM_U8``, ``PCM_24``, ``FLOAT``, ...).
        rate: sample rate, Hz.
        channels: 1 or 2 (the second channel is the first at half amplitude).
        seconds: duration.
        signal: ``noise`` (Gaussian, std 0.1), ``silence`` (all zeros), ``nan`` / ``inf``
            (noise with one non-finite sample: needs a float subtype).
        seed: noise seed.
        keep_bytes: truncate the file to its first ``keep_bytes`` bytes (0: an empty file).
        sample_count: rewrite a NIST header's ``sample_count`` with this (a header that lies).
    """
    n = int(round(seconds * rate))
    x = np.zeros(n, np.float32) if signal == "silence" else \
        (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)
    if signal in ("nan", "inf"):
        x[n // 2] = np.nan if signal == "nan" else np.inf
    data = np.stack([x, 0.5 * x], axis=1) if channels == 2 else x
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, rate, format=format, subtype=subtype)
    if sample_count is not None:
        raw = path.read_bytes()
        head = raw[:1024].replace(f"sample_count -i {n}\n".encode(), f"sample_count -i {sample_count}\n".encode())
        head = head[:1024].ljust(1024, b"\0") if len(head) >= 1024 else head.ljust(1024, b"\0")
        path.write_bytes(head + raw[1024:])
    if keep_bytes is not None:
        path.write_bytes(path.read_bytes()[:keep_bytes])
    return n


# ---------------------------------------------------------------------------- generators


@dataclass
class Built:
    """A case's input: the paths its command names, and the good items its output must hold.

    Attributes:
        paths: placeholder name -> path (``root``, ``out``, ``exp``, ...).
        good_utts: split/set -> good utterance ids (a data dir or feature store must hold them).
        good_files: audio files asr-transcribe must print a line for.
        marker: a file that must not exist afterwards (a crafted pickle's side effect).
    """

    paths: dict[str, Path]
    good_utts: dict[str, list[str]] = field(default_factory=dict)
    good_files: list[Path] = field(default_factory=list)
    marker: Path | None = None


def _phn(n: int) -> list[tuple[int, int, str]]:
    """A .PHN covering ``n`` samples: the good sentence's phones in equal parts."""
    k = len(PHONES)
    edges = [round(i * n / k) for i in range(k + 1)]
    return [(edges[i], edges[i + 1], PHONES[i]) for i in range(k)]


def _write_timit_utt(spk_dir: Path, sent: str, *, audio: dict | None = None, txt: str | None = None,
                     txt_bytes: str | None = None, phn: list | None = None, omit: tuple[str, ...] = (),
                     seed: int = 0, suffix_case: str = "upper") -> None:
    ext = (lambda e: e.lower() if suffix_case == "lower" else e)
    name = sent.lower() if suffix_case == "lower" else sent
    spec = {"seed": seed, **(audio or {})}
    rate = spec.get("rate", SR)
    wav = spk_dir / f"{name}{ext('.WAV')}"
    if ".WAV" not in omit:
        n = write_audio(wav, **spec)
    else:
        spk_dir.mkdir(parents=True, exist_ok=True)
        n = int(round(spec.get("seconds", 0.5) * rate))
    if ".PHN" not in omit:
        rows = phn if phn is not None else _phn(n)
        (spk_dir / f"{name}{ext('.PHN')}").write_text("".join(f"{a} {b} {lab}\n" for a, b, lab in rows))
    if ".TXT" not in omit:
        path = spk_dir / f"{name}{ext('.TXT')}"
        if txt_bytes is not None:  # a transcript in another encoding: the string's code points as bytes
            path.write_bytes(f"0 {n} ".encode() + txt_bytes.encode("latin-1") + b"\n")
        else:
            path.write_text(f"0 {n} {SENTENCE if txt is None else txt}\n", encoding="utf-8")


def timit_speakers() -> tuple[str, str]:
    """A dev speaker and a core-test speaker (the standard lists)."""
    from asr.data.speakers import dev_speakers, test_speakers

    return dev_speakers()[0], test_speakers()[0]


def build_timit(base: Path, bad: dict | list[dict] | None = None, lexicon: bool = False,
                train_speakers: int = 2, sentences: int = 2, seconds: float = 0.5) -> Built:
    """A TIMIT-layout corpus under ``base/TIMIT``: ``train_speakers`` x ``sentences`` good
    training utterances, one dev and one core-test utterance, plus the ``bad`` items.

    Args:
        bad: one item or a list; each item: ``split`` (train/dev/test, default train),
            ``dr``, ``speaker``, ``sentence`` (default DR1/MBAD0/SX99), ``audio`` (the
            :func:`write_audio` options), ``txt`` (the sentence), ``txt_bytes`` (a sentence
            whose characters are written as Latin-1 bytes), ``phn`` (rows), ``omit``
            (``.WAV``/``.PHN``/``.TXT`` not written), ``suffix_case`` (``lower``: ``sx99.wav``).
        lexicon: write ``lexicon.txt`` (the good sentence's words) in the corpus root.
    """
    root = base / "TIMIT"
    dev, test = timit_speakers()
    good: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    names = ["MABC0", "FXYZ0", "MDEF0", "FGHI0"][:train_speakers]
    for i, spk in enumerate(names):
        for j in range(sentences):
            sent = f"SX{j + 1}" if j % 2 == 0 else f"SI{j + 1}"
            _write_timit_utt(root / "TRAIN" / "DR1" / spk, sent, audio={"seconds": seconds}, seed=10 * i + j)
            good["train"].append(f"{spk}_{sent}")
    _write_timit_utt(root / "TEST" / "DR2" / dev, "SX10", audio={"seconds": seconds}, seed=101)
    _write_timit_utt(root / "TEST" / "DR3" / test, "SX20", audio={"seconds": seconds}, seed=102)
    good["dev"].append(f"{dev}_SX10")
    good["test"].append(f"{test}_SX20")
    for k, item in enumerate([bad] if isinstance(bad, dict) else bad or []):
        item = dict(item)
        split = item.pop("split", "train")
        top = "TRAIN" if split == "train" else "TEST"
        spk = item.pop("speaker", {"train": "MBAD0", "dev": dev, "test": test}[split])
        dr = item.pop("dr", "DR1")
        sent = item.pop("sentence", "SX99")
        item["omit"] = tuple(item.get("omit", ()))
        _write_timit_utt(root / top / dr / spk, sent, seed=200 + k, **item)
    if lexicon:
        (root / "lexicon.txt").write_text("".join(f"{w} {p}\n" for w, p in LEXICON.items()))
    return Built({"root": root, "out": base / "out", "exp": base / "exp"}, good)


def build_timit_ro(base: Path, **kwargs: Any) -> Built:
    """:func:`build_timit`, plus an empty folder ``$ro`` (mounted read-only by the sandbox)
    and ``$small`` (a size-limited tmpfs); a failing write leaves no good data to check."""
    built = build_timit(base, **kwargs)
    for name in ("ro", "small"):
        (base / name).mkdir()
        built.paths[name] = base / name
    built.good_utts = {}
    return built


def build_kaldi_scp(base: Path, bad: str | None = None, dim: int = 13, frames: int = 40) -> Built:
    """A good TIMIT-layout corpus and a Kaldi ``feats.scp`` + ark per set under ``$scp/<set>/``
    (for ``features=kaldi_scp features.scp=$scp/{set}/feats.scp``), with one bad entry in train.

    Args:
        bad: ``nan`` / ``inf`` (a non-finite value in one matrix), ``missing`` (an utterance
            of the data dir absent from the scp), ``pipe`` (an entry that is a shell
            pipeline), ``unsorted`` (the scp's lines in reverse order), ``truncated_ark``
            (the ark cut inside the last matrix), ``empty`` (a 0-frame matrix).
    """
    import kaldiio

    built = build_timit(base)
    scp_root = base / "scp"
    rng = np.random.default_rng(0)
    for split, utts in built.good_utts.items():
        folder = scp_root / split
        folder.mkdir(parents=True)
        mats = {u: rng.standard_normal((frames, dim)).astype(np.float32) for u in utts}
        if split == "train" and bad is not None:
            victim = sorted(utts)[-1]  # the ark's last matrix
            if bad in ("nan", "inf"):
                mats[victim][frames // 2, 0] = np.nan if bad == "nan" else np.inf
            elif bad == "empty":
                mats[victim] = np.zeros((0, dim), np.float32)
            if bad != "unsorted":
                utts.remove(victim)  # not good any more
        with kaldiio.WriteHelper(f"ark,scp:{folder / 'feats.ark'},{folder / 'feats.scp'}") as w:
            for u in sorted(mats):
                if not (split == "train" and bad == "missing" and u not in utts):
                    w(u, mats[u])
        scp = folder / "feats.scp"
        lines = scp.read_text().splitlines()
        if split == "train" and bad == "unsorted":
            lines = lines[::-1]
        if split == "train" and bad == "pipe":
            victim_line = [x for x in lines if x.split()[0] not in utts][0]
            lines[lines.index(victim_line)] = f"{victim_line.split()[0]} copy-feats ark:{folder / 'feats.ark'} ark:- |"
        if split == "train" and bad == "truncated_ark":
            ark = folder / "feats.ark"
            ark.write_bytes(ark.read_bytes()[:-100])
        scp.write_text("\n".join(lines) + "\n")
    if bad == "pipe":
        built.good_utts = {}  # refused as a whole: nothing to check
    built.paths["scp"] = scp_root
    return built


def build_librispeech(base: Path, bad: str | None = None) -> Built:
    """A LibriSpeech-layout ``dev-clean`` with two chapters of good utterances and one bad item.

    Args:
        bad: ``duplicate`` (an id on two lines), ``text_only`` (a transcript line without
            its FLAC), ``audio_only`` (a FLAC no line names), ``empty_transcript``,
            ``zero_length`` / ``truncated`` (the FLAC), ``non_utf8`` (a Latin-1 line),
            ``non_ascii`` (UTF-8 words with accents), ``bad_id`` (an id of another chapter),
            ``unsorted`` (a chapter's transcript lines in reverse order).
    """
    root = base / "LibriSpeech"
    good: list[str] = []
    for spk, chap in (("19", "198"), ("26", "495")):
        folder = root / "dev-clean" / spk / chap
        lines = []
        for i in range(2):
            utt = f"{spk}-{chap}-{i:04d}"
            write_audio(folder / f"{utt}.flac", format="FLAC", subtype="PCM_16", seed=i + int(spk))
            lines.append(f"{utt} SHE HAD YOUR DARK SUIT")
            good.append(utt)
        (folder / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
    folder = root / "dev-clean" / "19" / "198"
    trans = folder / "19-198.trans.txt"
    utt = "19-198-0099"
    flac = folder / f"{utt}.flac"
    if bad in ("duplicate", "text_only", "empty_transcript", "zero_length", "truncated", "non_ascii", "non_utf8",
               "bad_id"):
        line = {"empty_transcript": utt, "non_ascii": f"{utt} CAFÉ NAÏVE",
                "bad_id": "26-495-0099 SHE HAD"}.get(bad, f"{utt} SHE HAD YOUR DARK SUIT")
        if bad == "non_utf8":
            with open(trans, "ab") as f:
                f.write(f"{utt} CAF\xc9 NA\xcfVE\n".encode("latin-1"))
        else:
            with open(trans, "a", encoding="utf-8") as f:
                f.write(line + "\n" + (line + "\n" if bad == "duplicate" else ""))
    if bad in ("duplicate", "audio_only", "empty_transcript", "non_ascii", "non_utf8", "bad_id"):
        write_audio(flac, format="FLAC", seed=99)
    if bad == "zero_length":
        flac.write_bytes(b"")
    if bad == "truncated":
        write_audio(flac, format="FLAC", seed=99)
        flac.write_bytes(flac.read_bytes()[:3000])
    if bad == "non_ascii":
        good.append(utt)  # a good utterance: its words are kept as written
    if bad == "unsorted":
        trans.write_text("\n".join(trans.read_text().splitlines()[::-1]) + "\n")
    return Built({"root": root, "out": base / "out"}, {"dev_clean": good})


def build_audio_folder(base: Path, audio: dict | None = None, name: str = "bad.wav", raw: str | None = None,
                       good: bool = True) -> Built:
    """A folder with one good 16 kHz WAV (unless ``good`` is false) and one bad file
    ``name``: written by :func:`write_audio` with ``audio``, or holding the text ``raw``."""
    folder = base / "audio"
    files = []
    if good:
        write_audio(folder / "good.wav", format="WAV", seconds=1.0, seed=7)
        files.append(folder / "good.wav")
    if raw is not None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(raw)
    elif audio is not None:
        write_audio(folder / name, **audio)
    return Built({"audio": folder, "one": folder / name}, good_files=files)


class _Exploit:
    """Pickles to a call of ``os.system``: whoever unpickles it with full pickle runs the command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return (os.system, (self.command,))


def build_crafted_checkpoint(base: Path, mode: str = "pickle") -> Built:
    """A ``.pt`` file whose pickle would create a marker file when loaded without
    ``weights_only`` (``mode=pickle``), or a torch file cut in half (``mode=truncated``);
    and a folder with one good WAV to transcribe with it."""
    import torch

    ckpt = base / "evil.pt"
    marker = base / "pwned"
    state = {"model": {}, "model_spec": {}, "task": "ctc", "payload": _Exploit(f"touch {marker}")}
    torch.save(state, ckpt)
    if mode == "truncated":
        torch.save({"model": {"w": torch.zeros(1000)}, "model_spec": {}}, ckpt)
        ckpt.write_bytes(ckpt.read_bytes()[:2000])
    built = build_audio_folder(base)
    built.paths["ckpt"] = ckpt
    built.good_files = []  # no model: nothing is transcribed
    built.marker = marker
    return built


GENERATORS: dict[str, Callable[..., Built]] = {
    "timit": build_timit, "timit_ro": build_timit_ro, "kaldi_scp": build_kaldi_scp,
    "librispeech": build_librispeech, "audio_folder": build_audio_folder,
    "crafted_checkpoint": build_crafted_checkpoint,
}


# ---------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One catalogue entry (see the module docstring)."""

    id: str
    kind: str
    generator: str
    params: dict
    command: list[str]
    exit: int
    message: str
    skipped: int
    sandbox: dict = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    sorted_files: list[str] = field(default_factory=list)
    xfail: str | None = None

    @property
    def needs_checkpoint(self) -> bool:
        return any("$good_ckpt" in a for a in self.command)


def load_cases(path: Path = CASES_FILE) -> list[Case]:
    """The catalogue, in file order (ids are unique)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    templates = raw.get("commands", {})
    cases = []
    for entry in raw["cases"]:
        command = entry["command"]
        if isinstance(command, str):  # a named command line plus the case's own arguments
            command = [*templates[command], *entry.get("args", [])]
        expect = entry["expect"]
        cases.append(Case(id=entry["id"], kind=entry["kind"], generator=entry["generator"],
                          params=entry.get("params") or {}, command=list(command), exit=int(expect["exit"]),
                          message=str(expect["message"]), skipped=int(expect.get("skipped", 0)),
                          sandbox=entry.get("sandbox") or {}, files=expect.get("files") or {},
                          sorted_files=expect.get("sorted") or [],
                          xfail=entry.get("xfail")))
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids in cases.yaml"
    return cases


@dataclass
class Outcome:
    """What one case's command did.

    Attributes:
        rc: exit status (negative: killed by that signal).
        output: stdout and stderr together.
        stdout: stdout alone (asr-transcribe's lines).
        skipped: the sum of the stage summaries' counts (:data:`SKIP_COUNTS`).
        lost: good items missing from the stage's output.
        tracebacks: "Traceback" occurrences in the output.
        error_lines: the ``error:`` lines on stderr.
        seconds: wall time of the command.
    """

    rc: int
    output: str
    stdout: str
    skipped: int
    lost: list[str]
    tracebacks: int
    error_lines: list[str]
    seconds: float
    marker_made: bool = False
    missing_fragments: list[str] = field(default_factory=list)


def unshare_works() -> str | None:
    """None when a mount namespace with its own mounts can be made here (``unshare -rm``),
    else why not."""
    try:
        r = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return f"unshare: {e}"
    return None if r.returncode == 0 else f"unshare -rm: {r.stderr.strip() or r.returncode}"


def _argv(case: Case, paths: dict[str, Path]) -> list[str]:
    subst = {k: str(v) for k, v in paths.items()}
    args = [string.Template(a).substitute(subst) for a in case.command]
    exe = BIN / args[0]
    args[0] = str(exe) if exe.exists() else args[0]
    sb = case.sandbox
    if "readonly" in sb:  # a read-only bind mount in a private mount namespace: root cannot write either
        target = string.Template(sb["readonly"]).substitute(subst)
        return ["unshare", "-rm", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', target, *args]
    if "tmpfs" in sb:  # a small file system that fills up
        target = string.Template(sb["tmpfs"]).substitute(subst)
        return ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size={sb["size"]} tmpfs "$0" && exec "$@"',
                target, *args]
    return args


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        # Ignored, SIGXFSZ no longer kills the process: the write fails with EFBIG instead.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def run_case(case: Case, base: Path, good_checkpoint: Path | None = None, timeout: int = 300) -> Outcome:
    """Build ``case``'s input under ``base`` (a fresh folder), run its command, read the outcome."""
    built = GENERATORS[case.generator](base, **case.params)
    paths = dict(built.paths)
    if good_checkpoint is not None:
        paths["good_ckpt"] = good_checkpoint
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["OMP_NUM_THREADS"] = "1"
    preexec = _limit_file_size(int(case.sandbox["fsize"])) if "fsize" in case.sandbox else None
    start = time.perf_counter()
    r = subprocess.run(_argv(case, paths), capture_output=True, text=True, timeout=timeout, env=env, cwd=base,
                       preexec_fn=preexec)
    seconds = time.perf_counter() - start
    output = r.stdout + r.stderr
    skipped = sum(int(n) for pattern in SKIP_COUNTS for n in pattern.findall(output))
    lost = _lost(case, built, r.stdout) if r.returncode == 0 else []
    missing = []
    for where, fragment in case.files.items():
        path = Path(string.Template(where).substitute({k: str(v) for k, v in paths.items()}))
        if not path.is_file() or fragment not in path.read_text(encoding="utf-8", errors="replace"):
            missing.append(f"{path}: {fragment!r}")
    for where in case.sorted_files:  # Kaldi tables are sorted by key, byte order (LC_ALL=C)
        path = Path(string.Template(where).substitute({k: str(v) for k, v in paths.items()}))
        keys = [line.split(maxsplit=1)[0].encode() for line in path.read_text().splitlines()] if path.is_file() else None
        if keys is None or keys != sorted(keys):
            missing.append(f"{path}: not sorted by key" if keys is not None else f"{path}: missing")
    return Outcome(rc=r.returncode, output=output, stdout=r.stdout, skipped=skipped, lost=lost,
                   tracebacks=output.count("Traceback"),
                   error_lines=[x for x in r.stderr.splitlines() if x.startswith("error:")], seconds=seconds,
                   marker_made=built.marker is not None and built.marker.exists(), missing_fragments=missing)


def _table_keys(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {line.split(maxsplit=1)[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def _lost(case: Case, built: Built, stdout: str) -> list[str]:
    """Good items of the input that the stage's output lacks: utterances of every data dir
    (and feature store, when asr-train extracted features) and files asr-transcribe printed."""
    lost = []
    program = Path(case.command[0]).name
    for split, utts in built.good_utts.items():
        places = []
        if program == "asr-prepare":
            places = [built.paths["out"] / "data" / split / "utt2spk"]
        elif program == "asr-train":
            places = [built.paths["exp"] / "data" / split / "utt2spk"]
            if (built.paths["exp"] / "features").is_dir():
                places.append(built.paths["exp"] / "features" / split / "utt2num_frames")
        for place in places:
            have = _table_keys(place)
            lost += [f"{place}: {u}" for u in utts if u not in have]
    printed = {line.split("\t", 1)[0] for line in stdout.splitlines() if "\t" in line}
    lost += [f"asr-transcribe: {f}" for f in built.good_files if str(f) not in printed]
    return lost


def check(case: Case, out: Outcome) -> list[str]:
    """Every way ``out`` differs from what ``case`` expects (empty: the case passes)."""
    problems = []
    if out.rc != case.exit:
        problems.append(f"exit status {out.rc}, expected {case.exit}")
    if case.message not in out.output:
        problems.append(f"message fragment {case.message!r} not in the output")
    if out.skipped != case.skipped:
        problems.append(f"stage summaries count {out.skipped} skipped, expected {case.skipped}")
    if out.tracebacks:
        problems.append(f"{out.tracebacks} traceback(s) in the output")
    if out.lost:
        problems.append(f"good data lost: {out.lost[:5]}")
    if case.exit != 0 and len(out.error_lines) != 1:
        problems.append(f"{len(out.error_lines)} 'error:' lines on stderr, expected exactly one")
    if out.missing_fragments:
        problems.append(f"output files lack: {out.missing_fragments}")
    if out.marker_made:
        problems.append("the crafted pickle ran code (its marker file exists)")
    return problems


# ---------------------------------------------------------------------------- the transcribe model


TRAIN_CKPT = ["asr-train", "recipe=timit_ligru_ctc", "model.num_layers=1", "model.hidden_size=16",
              "optim.epochs=1", "train.progress=false", "num_workers=1", "features.num_mel_bins=23",
              "data.test_sets=[test]", "decode.acoustic_scales=[1.0]", "decode.blank_penalties=[0.0]",
              "decode.phone_penalties=[0.0]", "decode.word_penalties=[0.0]", "decode.num_workers=1",
              "decode.progress=false", "train.device=cpu"]


def build_good_checkpoint(base: Path, timeout: int = 600) -> Path:
    """Train a tiny CTC model (1 x 16 LiGRU, one epoch, fbank) on a hand-made TIMIT-layout
    corpus and decode it once (asr-transcribe needs the run's graph); returns its best.pt."""
    built = build_timit(base, lexicon=True, train_speakers=4, sentences=2)
    exp = base / "exp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [str(BIN / TRAIN_CKPT[0]), *TRAIN_CKPT[1:], f"data.root={built.paths['root']}", f"exp_dir={exp}"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=base)
    if r.returncode != 0 or not (exp / "best.pt").is_file():
        raise RuntimeError(f"training the transcribe model failed ({r.returncode}):\n{r.stdout[-2000:]}{r.stderr[-3000:]}")
    return exp / "best.pt"
