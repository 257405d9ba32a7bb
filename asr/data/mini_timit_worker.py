"""Worker process of mini-TIMIT synthesis: ``python -m asr.data.mini_timit_worker JOBS RESULTS``.

Reads a pickled list of jobs from the file JOBS, synthesises each speaker in a child forked
fresh for it, and pickles the list of results (or ``{"error": message}``) to RESULTS.
A fresh interpreter, rather than a fork of the caller, guarantees that no espeak-ng state
of the caller leaks into the audio; unlike multiprocessing's spawn it never re-imports
the caller's main module.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

from asr.errors import AsrError


def main() -> None:
    from asr.data.mini_timit import _run_forked

    jobs, results = Path(sys.argv[1]), Path(sys.argv[2])
    tasks = pickle.loads(jobs.read_bytes())
    try:
        out: object = [_run_forked(task) for task in tasks]
    except AsrError as err:
        out = {"error": str(err)}
    results.write_bytes(pickle.dumps(out))


if __name__ == "__main__":
    main()
