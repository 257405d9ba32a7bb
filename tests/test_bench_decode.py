"""scripts/bench_decode.py: one clear line for a missing run, and the JSON of a tiny CTC run
trained and decoded here from mini-TIMIT tiny (slow)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "bench_decode.py"
BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _run(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=False, capture_output=True, text=True, timeout=timeout, env=ENV)


def _positive(x: float) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


def test_missing_checkpoint_is_one_line_saying_how_to_make_one(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "best.pt"
    r = _run([sys.executable, str(SCRIPT), "--kinds", "ctc", "--checkpoint-ctc", str(missing)])
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert str(missing) in lines[0] and "asr-train recipe=timit_ligru_ctc" in lines[0] and "--kinds" in lines[0]
    assert r.stdout == ""


@pytest.mark.slow
def test_ctc_run_rtfs(mini_timit_root: Path, tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    r = _run([str(BIN / "asr-train"), "recipe=timit_ligru_ctc", f"data.root={mini_timit_root}", f"exp_dir={exp}",
              "model.num_layers=1", "model.hidden_size=16", "optim.epochs=1", "train.progress=false",
              "num_workers=1", "decode.num_workers=1", "decode.progress=false", "decode.acoustic_scales=[1.0]",
              "decode.blank_penalties=[0.0]", "decode.phone_penalties=[0.0]", "decode.word_penalties=[0.0]"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (exp / "results.json").is_file()

    r = _run([sys.executable, str(SCRIPT), "--kinds", "ctc", "--checkpoint-ctc", str(exp / "best.pt"),
              "--max-utts", "5", "--batch-size", "2"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])

    assert set(res["rtf_decode"]) == {"ctc"} and set(res["rtf_total"]) == {"ctc"}
    assert _positive(res["rtf_decode"]["ctc"]) and _positive(res["rtf_total"]["ctc"])
    assert res["pass"]["rtf_decode"]["ctc"] in (True, False) and res["pass"]["all"] in (True, False)
    assert res["targets"] == {"rtf_decode": {"ctc": 0.01}, "rtf_total": {"ctc": 0.05}}
    b = res["breakdown"]["ctc"]
    assert _positive(b["features"]) and _positive(b["forward"])
    assert set(b["search"]) == {"words", "phones"} and all(_positive(v) for v in b["search"].values())
    assert b["search"]["words"] == res["rtf_decode"]["ctc"]
    assert math.isclose(b["total"], b["features"] + b["forward"] + b["search"]["words"])
    assert b["total"] == res["rtf_total"]["ctc"]
    assert b["utterances"] == res["utterances"] == 5 and _positive(res["audio_seconds"])
    assert b["points"]["words"] == {"blank_penalty": 0.0, "acoustic_scale": 1.0, "insertion_penalty": 0.0}
    assert all(v is None or 0.0 <= v for v in b["error_rate"].values())
    assert res["level"] == "words" and res["batch_size"] == 2 and res["set"] == "test"
    assert res["device"] == "cpu" and res["threads"] == 1 and res["settings"]["kinds"] == ["ctc"]
    assert _positive(res["wall_seconds"])
