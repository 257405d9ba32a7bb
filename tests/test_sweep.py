"""A two-job Hydra sweep on tiny mini-TIMIT, the pipeline of ``make demo`` at test size: one
folder per job, the GMM stages built once in the sweep's cache, a clean and a contaminated test
set, the tri3 baseline, and asr-compare on the sweep folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_a_sweep_over_cells_gives_one_folder_per_job_sharing_the_gmm_stages(mini_timit_root: Path,
                                                                            tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    cmd = [str(BIN / "asr-train"), "-m", "recipe=timit_ligru", "model=gru,ligru", "preset=cpu",
           f"data.root={mini_timit_root}",
           f"hydra.sweep.dir={sweep}", "task/gmm=mini_timit_tiny", "model.num_layers=1", "model.hidden_size=16",
           "optim.epochs=1", "train.progress=false", "num_workers=1", "data.test_sets=[test,test_babble_snr10]",
           "task.gmm_decode_stages=[tri3]", "decode.acoustic_scales=[0.3]", "decode.prior_scales=[1.0]",
           "decode.phone_penalties=[0.0]", "decode.word_penalties=[0.0]", "decode.num_workers=1",
           "decode.progress=false"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    cells = {}
    for job in ("0", "1"):
        res = json.loads((sweep / job / "results.json").read_text())
        cells[job] = res["cell"]
        assert res["test_sets"]["test"]["per"] is not None and (sweep / job / "history.jsonl").is_file()
        assert (sweep / job / "train.log").is_file()
    assert sorted(cells.values()) == ["gru", "ligru"]  # each job brings its own cell preset
    tri3 = [p for p in (sweep / "cache").iterdir() if p.name.startswith("gmm+tri3-")]
    assert len(tri3) == 1  # the GMM stage was built once, for both jobs
    assert (sweep / "0" / "gmm" / "tri3").resolve() == (sweep / "1" / "gmm" / "tri3").resolve() == tri3[0].resolve()
    r = subprocess.run([str(BIN / "asr-compare"), str(sweep), "--out", str(tmp_path / "cmp.png")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("| ") and not line.startswith("| run |")]
    assert [row.split("|")[1].strip() for row in rows] == ["0", "1", "tri3"] and (tmp_path / "cmp.png").is_file()
    assert "test_babble_snr10 per" in r.stdout
    assert not [p for p in (sweep / "cache").iterdir() if p.name.startswith("gmm+decode_tri2-")]  # tri3 only
