"""``results.json`` and the one results table of a run (GMM stages and the network, every set)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _cell(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


PHONE_AND_WORD = (("per", "PER"), ("wer", "WER"))
WORDS_AND_GREEDY = (("wer", "WER"), ("greedy_wer", "greedy WER"))  # word-level CTC (BPE units)


def format_results_table(rows: Sequence[tuple[str, Mapping[str, Mapping[str, Any]]]], sets: Sequence[str],
                         metrics: Sequence[tuple[str, str]] = PHONE_AND_WORD) -> str:
    """A Markdown table: one row per model, the ``metrics`` (%) of every set.

    Args:
        rows: (model name, set -> {"per": ..., "wer": ...}); a missing set or value is "-".
        sets: the columns, in order.
        metrics: (results key, column label) pairs, per set.

    >>> print(format_results_table([("tri3", {"dev": {"per": 20.5, "wer": None}})], ["dev"]))
    | model | dev PER | dev WER |
    |---|---|---|
    | tri3 | 20.50 | - |
    """
    head = ["model", *[f"{s} {label}" for s in sets for _, label in metrics]]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, by_set in rows:
        cells = [name]
        for s in sets:
            r = by_set.get(s) or {}
            cells += [_cell(r.get(key)) for key, _ in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(path: str | os.PathLike, results: Mapping[str, Any]) -> Path:
    """Write ``results.json`` atomically (a reader never sees half a file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def history_summary(history: str | os.PathLike) -> dict[str, Any]:
    """``epochs`` and mean ``seconds_per_epoch`` (training passes only) of a ``history.jsonl``."""
    path = Path(history)
    if not path.is_file():
        return {"epochs": None, "seconds_per_epoch": None}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    secs = [r["train_seconds"] for r in rows if "train_seconds" in r]
    return {"epochs": len(rows), "seconds_per_epoch": round(sum(secs) / len(secs), 2) if secs else None}
