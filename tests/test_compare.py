"""asr-compare: the table's figures against the runs' results.json and history.jsonl, the
bootstrap intervals, a multirun folder, the PNG and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asr.decode.compare import bootstrap, find_runs, format_table, gmm_baselines, per_utt_counts
from asr.decode.scoring import write_scoring

BIN = Path(sys.executable).parent


def _run_dir(path: Path, cell: str, seconds: list[float], errs: list[float], hyp_of, device: str = "cpu",
             threads: int = 1, load: float = 0.5) -> dict:
    """An experiment folder as the recipe leaves it: history.jsonl, decode/<set>/ and results.json."""
    path.mkdir(parents=True)
    rows = [{"epoch": i + 1, "train_seconds": s, "dev_err": e, "device": device, "threads": threads,
             "load_average": load} for i, (s, e) in enumerate(zip(seconds, errs))]
    (path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    refs = {f"u{i}": ["aa", "b", "sil", "aa", "b"][: 2 + i % 4] for i in range(30)}
    words = {f"u{i}": ["the", "cat", "sat"][: 1 + i % 3] for i in range(30)}
    sets = {}
    for name in ("dev", "test"):
        per = write_scoring(path / "decode" / name, refs, {u: hyp_of(u, r) for u, r in refs.items()})
        wer = write_scoring(path / "decode" / name / "words", words, {u: hyp_of(u, w) for u, w in words.items()},
                            metric="wer")
        sets[name] = {"per": per["per"], "wer": wer["wer"], "n_utts": 30}
    res = {"recipe": f"timit_{cell}", "cell": cell, "params": 1000 * len(cell), "dev": sets["dev"],
           "test_sets": {"test": sets["test"]}}
    (path / "results.json").write_text(json.dumps(res))
    return res


def _perfect(u: str, toks: list[str]) -> list[str]:
    return list(toks)


def _sloppy(u: str, toks: list[str]) -> list[str]:
    return toks[1:] if int(u[1:]) % 3 == 0 else list(toks)  # a deletion in every third utterance


def test_table_figures_come_from_the_runs(tmp_path: Path) -> None:
    a = _run_dir(tmp_path / "sweep" / "0", "ligru", [10.0, 12.0, 14.0], [30.0, 25.0, 26.0], _sloppy)
    b = _run_dir(tmp_path / "sweep" / "1", "gru", [30.0, 30.0], [28.0, 27.0], _perfect, threads=2, load=5.0)
    (tmp_path / "sweep" / "multirun.yaml").write_text("hydra: {}\n")
    (tmp_path / "sweep" / "0" / "decode" / "results.json").write_text("{}")  # the decode stage's own: not a run
    runs = find_runs([tmp_path / "sweep"])  # a multirun folder: every run below it
    assert [r.name for r in runs] == ["0", "1"]
    table = format_table(runs)
    lines = table.splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    assert head[:5] == ["run", "recipe", "cell", "params", "s/epoch"]
    assert {"dev per", "dev wer", "test per", "test wer"} <= set(head)
    row0 = dict(zip(head, (c.strip() for c in lines[2].strip("|").split("|"))))
    row1 = dict(zip(head, (c.strip() for c in lines[3].strip("|").split("|"))))
    assert row0["cell"] == "ligru" and row0["params"] == "5,000" and row0["best epoch"] == "2"
    assert row0["s/epoch"] == f"12.0 +- {np.std([10, 12, 14]):.1f}" and row0["x first"] == "1.00"
    assert row1["x first"] == "2.50"
    assert row0["test per"].startswith(f"{a['test_sets']['test']['per']:.2f} [")
    assert row1["test wer"].startswith(f"{b['test_sets']['test']['wer']:.2f} [")
    assert "loaded" in row1["timing notes"] and "other device/threads" in row1["timing notes"]
    assert row0["timing notes"] == "-"
    # The interval brackets the value and comes from the per-utterance counts.
    lo, hi = (float(x) for x in row0["test per"].split("[")[1].rstrip("]").split(","))
    assert lo <= a["test_sets"]["test"]["per"] <= hi and hi > lo
    assert row1["test per"] == "0.00 [0.00, 0.00]"


def test_gmm_rows_come_once_from_the_shared_decode_folder(tmp_path: Path) -> None:
    refs = {f"u{i}": ["aa", "b", "sil"] for i in range(20)}
    cache = tmp_path / "sweep" / "cache" / "gmm+decode_tri3-abc"
    gmm = {}
    for name in ("dev", "test"):
        per = write_scoring(cache / name, refs, {u: _sloppy(u, r) for u, r in refs.items()})["per"]
        wer = write_scoring(cache / "words" / name, refs, {u: list(r) for u, r in refs.items()}, metric="wer")["wer"]
        gmm[name] = {"per": per, "wer": wer}
    for job in ("0", "1"):  # both jobs link the same GMM decode stage
        res = _run_dir(tmp_path / "sweep" / job, "ligru", [10.0], [30.0], _perfect)
        res["gmm"] = {"tri3": gmm}
        (tmp_path / "sweep" / job / "results.json").write_text(json.dumps(res))
        (tmp_path / "sweep" / job / "gmm").mkdir()
        (tmp_path / "sweep" / job / "gmm" / "decode_tri3").symlink_to(cache)
    runs = find_runs([tmp_path / "sweep"])
    base = gmm_baselines(runs)
    assert [b.name for b in base] == ["tri3"] and gmm_baselines(runs, ["mono"]) == []
    lines = format_table(runs + base).splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    row = dict(zip(head, (c.strip() for c in lines[4].strip("|").split("|"))))
    assert row["run"] == "tri3" and row["recipe"] == "GMM-HMM" and row["s/epoch"] == "-"
    assert row["test per"].startswith(f"{gmm['test']['per']:.2f} [") and row["timing notes"] == "-"
    assert row["test wer"] == "0.00 [0.00, 0.00]"


def test_bootstrap_interval_narrows_with_more_utterances() -> None:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 4, 20), np.full(20, 10)
    big = rng.integers(0, 4, 2000), np.full(2000, 10)
    ws = [bootstrap(0.0, e, r) for e, r in (small, big)]
    assert (ws[1].high - ws[1].low) < (ws[0].high - ws[0].low) / 5


def test_per_utt_counts_read_the_csid_lines(tmp_path: Path) -> None:
    write_scoring(tmp_path, {"a": ["aa", "b"], "b": ["sil"]}, {"a": ["aa"], "b": ["sil", "b"]})
    errors, refs = per_utt_counts(tmp_path / "per_utt.txt")
    assert errors.tolist() == [1, 1] and refs.tolist() == [2, 1]


def test_cli_prints_the_table_writes_the_png_and_names_a_bad_folder(tmp_path: Path) -> None:
    _run_dir(tmp_path / "a", "ligru", [10.0], [30.0], _perfect)
    _run_dir(tmp_path / "b", "lstm", [20.0], [31.0], _sloppy)
    png = tmp_path / "cmp.png"
    r = subprocess.run([str(BIN / "asr-compare"), str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(png)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("| run | recipe | cell | params | s/epoch |") and "| b | timit_lstm | lstm |" in r.stdout
    assert "GMM-HMM" not in r.stdout  # these runs decoded no GMM stage
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "empty").mkdir()
    r = subprocess.run([str(BIN / "asr-compare"), str(tmp_path / "empty")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "empty" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("missing", ["nope"])
def test_missing_folder_is_one_line(tmp_path: Path, missing: str) -> None:
    from asr.errors import AsrError

    with pytest.raises(AsrError, match="is not a folder"):
        find_runs([tmp_path / missing])
