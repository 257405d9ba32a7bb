"""How far asr-transcribe's transcripts of a set's files are from the run's asr-decode hypotheses.

The files of ``<exp_dir>/data/<set>/wav.scp`` are transcribed as ``asr-transcribe`` does
(:class:`asr.decode.transcribe.Transcriber`): each file its own speaker, or with
``--per-speaker`` the set's ``utt2spk`` (as the recipe normalises and adapts them). Their
words are compared with ``<exp_dir>/decode/<set>/words/hyp.txt`` and with the truth. Prints
one JSON object::

    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/transcribe_agreement.py /tmp/demo_mix/timit_ligru --set test
    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/transcribe_agreement.py EXP --set dev --fmllr-min-frames 300 60 10
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from asr.data.kaldi_dir import read_data_dir
from asr.decode.scoring import score
from asr.decode.transcribe import Transcriber
from asr.train.checkpoint import load_checkpoint


def _table(path: Path) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in path.read_text().splitlines() if line.strip()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("exp_dir", type=Path, help="a decoded run (best.pt, data/, decode/)")
    p.add_argument("--set", default="test")
    p.add_argument("--per-speaker", action="store_true", help="the set's utt2spk (default: each file alone)")
    p.add_argument("--fmllr-min-frames", type=float, nargs=3, default=(100.0, 60.0, 10.0),
                   metavar=("FULL", "DIAG", "OFFSET"))
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    exp = args.exp_dir
    d = read_data_dir(exp / "data" / args.set)
    files = {u: Path(d.wav[u]) for u in d.utts}
    t0 = time.time()
    t = Transcriber(exp / "best.pt", load_checkpoint(exp / "best.pt"), exp, 1,
                    fmllr_min_counts=tuple(args.fmllr_min_frames))
    utt2spk = {str(files[u]): d.utt2spk[u] for u in files} if args.per_speaker else None
    by_path = {str(r.path): r.words or [] for r in t.transcribe(list(files.values()), utt2spk)}
    hyp = {u: by_path[str(f)] for u, f in files.items() if str(f) in by_path}
    truth = {u: d.text[u].split() for u in files}
    out = {"exp_dir": str(exp), "set": args.set, "speakers": "utt2spk" if args.per_speaker else "each file",
           "fmllr_min_frames": list(args.fmllr_min_frames), "files": len(files), "transcribed": len(hyp),
           "wer_vs_truth": round(score(truth, hyp).counts.rate(), 2), "seconds": round(time.time() - t0, 1)}
    decoded = exp / "decode" / args.set / "words" / "hyp.txt"
    if decoded.is_file():
        ref = _table(decoded)
        out.update(identical_to_asr_decode=sum(hyp.get(u) == ref[u] for u in ref), asr_decode_utts=len(ref),
                   wer_vs_asr_decode=round(score(ref, hyp).counts.rate(), 2),
                   asr_decode_wer_vs_truth=round(score(truth, ref).counts.rate(), 2))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
