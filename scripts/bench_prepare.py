"""Benchmark mini-TIMIT synthesis speed: seconds of audio written per wall-clock second.

    python scripts/bench_prepare.py                       # size small, 2 workers, seed 0
    python scripts/bench_prepare.py --size tiny --workers 1
    python scripts/bench_prepare.py --out DIR             # keep the corpus (DIR must not exist)

Synthesises the whole corpus from scratch (espeak-ng and/or Piper, resampling to 16 kHz,
labels, NIST SPHERE files, lexicon) into a fresh directory, so no earlier corpus is reused.
``x_realtime_per_worker`` gives each synthesiser's speed: its audio seconds over the wall
time its speakers took in their worker.
``audio_seconds_per_second`` is total audio seconds (all splits, padding included) over
the wall time of :func:`synthesize_mini_timit`; ``per_worker`` divides it by the workers.
Prints one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asr.data.mini_timit import SIZES, resolve_voices, synthesize_mini_timit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=list(SIZES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="corpus directory (default: a temp dir)")
    parser.add_argument("--voices", default=None, help="default: the size's (small: espeak,piper; tiny: espeak); espeak, piper or espeak,piper")
    parser.add_argument("--piper-share", type=float, default=0.5)
    parser.add_argument("--device", default="cpu", choices=["cpu"], help="synthesis runs on the CPU")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out if args.out is not None else Path(tmp) / "mini_timit"
        summary = synthesize_mini_timit(out, size=args.size, seed=args.seed, num_workers=args.workers,
                                        voices=resolve_voices(args.size, args.voices and tuple(args.voices.split(","))),
                                        piper_share=args.piper_share)
    if summary["reused"]:
        sys.exit(f"{out}: an existing corpus was reused; give a fresh --out to measure synthesis")
    audio = sum(s["seconds"] for s in summary["splits"].values())
    wall = summary["seconds_taken"]
    print(json.dumps({
        "audio_seconds_per_second": round(audio / wall, 1),
        "per_worker": round(audio / wall / args.workers, 1),
        "seconds": round(wall, 2),
        "audio_seconds": round(audio, 1),
        "splits": summary["splits"],
        # Per synthesiser: audio seconds made per second of one worker's synthesis time.
        "x_realtime_per_worker": {k: round(e["audio_seconds"] / e["synth_seconds"], 1)
                                  for k, e in summary["sources"].items()},
        "sources": summary["sources"],
        "voices": ",".join(resolve_voices(args.size, args.voices and tuple(args.voices.split(",")))),
        "size": args.size,
        "seed": args.seed,
        "workers": args.workers,
        "device": "cpu",
        "threads": args.workers,
        "cpu_count": os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
    }))


if __name__ == "__main__":
    main()
