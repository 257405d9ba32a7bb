"""The architecture holds: layers (import-linter contracts in pyproject.toml), no import cycle in hmm/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    res = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


def _cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """Import cycles among the modules of ``package`` (imports inside functions count too)."""
    modules = sorted(m for m in graph.modules if m.startswith(package + "."))
    edges = {m: sorted(d for d in graph.find_modules_directly_imported_by(m) if d in modules) for m in modules}
    found, state = [], {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for d in edges[m]:
            if state.get(d) == "open":
                found.append(path[path.index(d):] + [d])
            elif d not in state:
                visit(d, path + [d])
        state[m] = "done"

    for m in modules:
        if m not in state:
            visit(m, [m])
    return found


def test_no_import_cycle_in_hmm_or_graph() -> None:
    graph = grimp.build_graph("asr")
    for package in ("asr.hmm", "asr.graph", "asr.decode", "asr.recipe", "asr.features", "asr.data"):
        assert _cycles(graph, package) == [], package


def test_graph_imports_no_model_or_decoder() -> None:
    graph = grimp.build_graph("asr")
    for upper in ("asr.decode", "asr.hmm", "asr.train", "asr.recipe"):
        chains = graph.find_shortest_chains(importer="asr.graph", imported=upper)
        assert not chains, (upper, chains)
