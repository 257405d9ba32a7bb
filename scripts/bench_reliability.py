"""Run the bad-input catalogue (tests/reliability/cases.yaml) through the real commands and count.

    python scripts/bench_reliability.py                  # every case
    python scripts/bench_reliability.py --only transcribe_ --keep /tmp/rel   # a subset; keep the inputs

Each case builds its input (a small TIMIT- or LibriSpeech-layout corpus, a Kaldi feats.scp,
a folder of audio, a crafted checkpoint) with one bad item among good ones, runs its command
(asr-prepare, asr-train, asr-transcribe, asr-decode) and reads what came out, as
tests/reliability/test_catalogue.py does. Figures:

  - ``bad_inputs_tried``: cases run (a read-only or tmpfs case is not run where no private
    mount namespace can be made: listed in ``not_run``);
  - ``tracebacks``: "Traceback" occurrences in all their output (stdout and stderr);
  - ``data_lost``: good utterances (or audio files) of the inputs missing from the output of
    the stage that met the bad one (data dirs, feature stores, transcripts);
  - ``cases_failed``: cases whose exit status, message, skip count or output differs from the
    catalogue; ``known_defects``: the cases the catalogue marks as expected failures, and
    whether they still fail.

Crash consistency and long audio:

  - ``crash_points_tried``: seeded SIGKILL points of tests/reliability/test_crash.py (kills
    inside the stage functions, by stage in ``crash_points``, plus kills of the real
    ``asr-train``), run with pytest in a child;
  - ``resume_mismatches``: its tests that failed (a rerun after a kill that differs from an
    uninterrupted run, or a partial output visible as complete);
  - ``peak_rss_30min_bytes``: the peak resident memory of ``asr-transcribe`` of a 30-minute
    file (noise bursts and pauses, tests/reliability/long_audio.py) with the catalogue's
    tiny model, its wall time in ``long_audio``.

``--skip-crash`` / ``--skip-long`` leave those out (null, listed in ``not_measured``).
Logs go to stderr; one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "reliability"))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import catalogue  # noqa: E402
import long_audio  # noqa: E402


def run_crash_tests(work: Path) -> tuple[int, int, dict, float]:
    """Run test_crash.py in a child pytest: (kill points, failed tests, points by stage, seconds)."""
    import subprocess
    import xml.etree.ElementTree as ET

    points_file, junit = work / "crash_points.json", work / "crash_junit.xml"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CRASH_POINTS_FILE": str(points_file)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                    str(ROOT / "tests" / "reliability" / "test_crash.py")], cwd=ROOT, env=env,
                   stdout=sys.stderr, stderr=sys.stderr)
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    points = json.loads(points_file.read_text()) if points_file.is_file() else {}
    return sum(points.values()), failed, points, round(time.perf_counter() - start, 1)


def measure_long_audio(work: Path, checkpoint: Path, minutes: float = 30) -> dict:
    """asr-transcribe of a ``minutes``-long file: peak RSS (bytes), seconds, segments."""
    import re

    audio = work / f"long_{minutes:g}min.wav"
    long_audio.write_long_audio(audio, minutes * 60)
    run = long_audio.transcribe_peak_rss(checkpoint, audio, work)
    if run.rc != 0:
        raise RuntimeError(f"asr-transcribe of {audio} failed ({run.rc}):\n{run.stderr[-3000:]}")
    m = re.search(r"into (\d+) segments", run.stderr)
    return {"minutes": minutes, "peak_rss_bytes": run.peak_rss_bytes, "seconds": round(run.seconds, 1),
            "real_time_factor": round(minutes * 60 / run.seconds, 1), "segments": int(m.group(1)) if m else 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="run only the cases whose id contains this")
    parser.add_argument("--keep", type=Path, default=None, help="build the inputs here (default: a temp dir)")
    parser.add_argument("--device", default="cpu", choices=["cpu"], help="the commands run on the CPU")
    parser.add_argument("--skip-crash", action="store_true", help="do not run the crash-consistency tests")
    parser.add_argument("--skip-long", action="store_true", help="do not transcribe the 30-minute file")
    args = parser.parse_args()

    cases = [c for c in catalogue.load_cases() if args.only is None or args.only in c.id]
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_reliability_"))
    work.mkdir(parents=True, exist_ok=True)
    no_namespace = catalogue.unshare_works()
    start = time.perf_counter()
    checkpoint = None
    if any(c.needs_checkpoint for c in cases) or not args.skip_long:
        print("training the tiny model asr-transcribe cases use ...", file=sys.stderr)
        checkpoint = catalogue.build_good_checkpoint(work / "_model")
    tried, tracebacks, lost, failed, not_run, known = 0, 0, 0, [], [], {}
    kinds: Counter = Counter()
    for case in cases:
        if no_namespace is not None and ("readonly" in case.sandbox or "tmpfs" in case.sandbox):
            not_run.append(f"{case.id}: {no_namespace}")
            continue
        base = work / case.id
        base.mkdir()
        out = catalogue.run_case(case, base, checkpoint)
        problems = catalogue.check(case, out)
        tried += 1
        kinds[case.kind] += 1
        tracebacks += out.tracebacks
        lost += len(out.lost)
        if case.xfail:
            known[case.id] = {"defect": case.xfail, "still_fails": bool(problems)}
        elif problems:
            failed.append({"id": case.id, "problems": problems})
        status = "ok" if not problems else ("known defect" if case.xfail else "FAILED: " + "; ".join(problems))
        print(f"{case.id:45s} exit {out.rc:3d}  skipped {out.skipped}  {out.seconds:5.1f} s  {status}", file=sys.stderr)
    not_measured = []
    crash_points = resume_mismatches = None
    crash: dict = {}
    if args.skip_crash:
        not_measured += ["crash_points_tried", "resume_mismatches"]
    else:
        print("running tests/reliability/test_crash.py ...", file=sys.stderr)
        crash_points, resume_mismatches, by_stage, secs = run_crash_tests(work)
        crash = {"points_by_stage": by_stage, "seconds": secs}
    long: dict = {}
    if args.skip_long:
        not_measured.append("peak_rss_30min_bytes")
    else:
        print("asr-transcribe of a 30-minute file ...", file=sys.stderr)
        (work / "_long").mkdir(exist_ok=True)
        long = measure_long_audio(work / "_long", checkpoint)
    result = {
        "bad_inputs_tried": tried,
        "tracebacks": tracebacks,
        "data_lost": lost,
        "crash_points_tried": crash_points,
        "resume_mismatches": resume_mismatches,
        "peak_rss_30min_bytes": long.get("peak_rss_bytes"),
        "not_measured": not_measured,
        "crash": crash,
        "long_audio": long,
        "cases_passed": tried - len(failed) - len(known),
        "cases_failed": failed,
        "known_defects": known,
        "not_run": not_run,
        "by_kind": dict(sorted(kinds.items())),
        "seconds": round(time.perf_counter() - start, 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "device": "cpu",
        "cpu": platform.processor() or platform.machine(),
        "threads": int(os.environ["OMP_NUM_THREADS"]),
        "settings": {"catalogue": str(catalogue.CASES_FILE.relative_to(ROOT)), "only": args.only,
                     "transcribe_model": " ".join(catalogue.TRAIN_CKPT)},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
