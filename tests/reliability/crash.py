"""Crash consistency: run a stage in a child, SIGKILL it at a seeded point, compare outputs.

    python tests/reliability/crash.py SPEC.json     # the child (one stage run)

A spec (JSON) names the ``stage`` (a key of :data:`STAGES`), its ``args`` and an optional
``kill``: ``{"target": "module:attr", "n": N}`` wraps that function (in the child only) so
that its N-th call kills the child's whole process group with SIGKILL (workers included),
as a power cut or an OOM kill would. The parent (:func:`run_child`) then reruns the stage
normally in the same folder, and :func:`compare_trees` compares the result with an
uninterrupted run in another folder: the same files, byte for byte (paths of the folder
itself replaced), except JSON / JSON-lines fields that record time (:data:`TIMING`) and
checkpoints, compared as loaded tensors and values.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
# Fields that record when or how long, or a stage's random build id (and so the upstream ids and
# fingerprint built from them): they may differ between runs.
TIMING = {"seconds", "finished", "id", "seconds_taken", "synth_seconds", "train_seconds", "load_average",
          "dev_seconds", "decode_seconds", "elapsed", "time", "wall_seconds", "threads", "inputs", "fingerprint",
          "frames_per_second"}


# ---------------------------------------------------------------------------- the child


def _kill_on_call(target: str, n: int) -> None:
    """Wrap ``module:attr`` (``attr`` may be ``Class.method``) so its ``n``-th call SIGKILLs the group."""
    mod_name, attr = target.split(":")
    owner: Any = importlib.import_module(mod_name)
    *path, name = attr.split(".")
    for p in path:
        owner = getattr(owner, p)
    real = getattr(owner, name)
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == n:
            os.killpg(os.getpgid(0), signal.SIGKILL)
        return real(*args, **kwargs)

    setattr(owner, name, wrapper)


def _features(data_dir: str, out: str) -> None:
    from asr.features.store import compute_feature_store
    from asr.recipe.features import gmm_feature_config

    compute_feature_store(Path(data_dir), Path(out), gmm_feature_config(seed=0), num_workers=1, progress=False)


def gmm_config(stages: list[str]) -> Any:
    """Tiny GMM-HMM sizes (as tests/test_hmm_pipeline.py, fewer iterations)."""
    from asr.hmm.gmm_update import GmmUpdateOptions
    from asr.hmm.pipeline import GmmPipelineConfig
    from asr.hmm.trainer import GmmTrainOptions
    from asr.hmm.tree import TreeOptions

    tri = dict(num_iters=4, realign_iters=(2,), max_iter_inc=3, total_gauss=200)
    tree = TreeOptions(max_leaves=120, min_count=20)
    return GmmPipelineConfig(
        stages=tuple(stages),
        mono=GmmTrainOptions(num_iters=6, realign_iters=(2, 4), max_iter_inc=4, total_gauss=200,
                             update=GmmUpdateOptions(min_gaussian_occupancy=3)),
        tri1=GmmTrainOptions(**tri), tri2=GmmTrainOptions(**tri), tri3=GmmTrainOptions(**tri),
        tri1_tree=tree, tri2_tree=tree, tri3_tree=tree, mllt_iters=(1,), fmllr_iters=(1, 3))


def _gmm(train_dir: str, feats: str, out: str, stages: list[str]) -> None:
    import torch

    from asr.features.store import compute_feature_store
    from asr.hmm.pipeline import train_gmm_pipeline
    from asr.recipe.features import gmm_feature_config

    torch.manual_seed(0)
    store = compute_feature_store(Path(train_dir), Path(feats), gmm_feature_config(seed=0), num_workers=1,
                                  progress=False)  # built by the test: reused
    train_gmm_pipeline(Path(train_dir), store, Path(out), gmm_config(stages))


def _train(data: str, exp: str, epochs: int) -> None:
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    import train_job

    from asr.nn.spec import ModelSpec
    from asr.train.loop import TrainerConfig, run_training
    from asr.train.optim import OptimConfig
    from asr.train.tasks import HybridTask

    store, train, dev = train_job.datasets(Path(data), Path(exp).parent / f"store_{Path(exp).name}")
    spec = ModelSpec(cell="ligru", num_layers=2, hidden_size=12, bidirectional=True, dropout=0.1,
                     cell_options={"recurrent_dropout": 0.1})
    torch.manual_seed(0)
    run_training(spec, store.dim, HybridTask([0, 1, 1], ["a", "b"], 0.5),
                 OptimConfig(lr=0.004, epochs=epochs, batch_size=6), train, dev, Path(exp), {"recipe": "crash"},
                 TrainerConfig(progress=False, seed=7))


def _synthesis(out: str) -> None:
    from asr.data.mini_timit import synthesize_mini_timit

    synthesize_mini_timit(Path(out), size="tiny", seed=0, num_workers=1)


def _decode(graph: str, post: str, out: str) -> None:
    """Search every utterance of ``post`` (an npz of [T, pdfs] log posteriors) and write the
    hypotheses stage-style: ``hyps.json`` in a temp folder renamed into place (asr.stage)."""
    import numpy as np

    from asr.decode.grid import GridPoint, decode_grid
    from asr.graph.search import SearchOptions
    from asr.stage import run_stage

    posts = dict(np.load(post))

    def build(tmp: Path) -> dict:
        res = decode_grid(Path(graph), posts, None, [GridPoint(0.0, 1.0, 0.0)], SearchOptions(beam=10.0), 1)
        (tmp / "hyps.json").write_text(json.dumps({u: list(map(int, h)) for u, h in sorted(res.hyps[0].items())}))
        return {"failed": res.failed[0]}

    run_stage(Path(out), {"graph": graph}, build, name="decode", cacheable=False)


STAGES: dict[str, Callable[..., None]] = {"features": _features, "gmm": _gmm, "train": _train,
                                          "synthesis": _synthesis, "decode": _decode}


def child_main(spec_path: str) -> None:
    import torch

    torch.set_num_threads(1)
    spec = json.loads(Path(spec_path).read_text())
    if spec.get("kill"):
        _kill_on_call(spec["kill"]["target"], int(spec["kill"]["n"]))
    STAGES[spec["stage"]](**spec["args"])


# ---------------------------------------------------------------------------- the parent


def run_child(stage: str, args: dict, work: Path, kill: dict | None = None, delay: float | None = None,
              timeout: float = 600) -> int:
    """Run ``stage`` in a child (its own process group); returns its exit status (-9: killed).

    ``kill``: the child kills itself at that call (see the module docstring); ``delay``: the
    parent kills the child's group after that many seconds (if it is still running)."""
    work.mkdir(parents=True, exist_ok=True)
    spec = work / f"spec-{stage}.json"
    spec.write_text(json.dumps({"stage": stage, "args": args, "kill": kill}))
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    return run_group([sys.executable, __file__, str(spec)], work, env, delay, timeout,
                     expect_killed=kill is not None or delay is not None)


def run_group(argv: list[str], cwd: Path, env: dict, delay: float | None, timeout: float,
              expect_killed: bool) -> int:
    """Run ``argv`` in a new session; SIGKILL its process group after ``delay`` s (None: never)."""
    log = cwd / "child.log"
    with open(log, "w") as f:
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
        try:
            p.wait(timeout=delay if delay is not None else timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    rc = p.returncode
    if rc != 0 and not (expect_killed and rc == -9):
        raise AssertionError(f"{argv[1:]} failed ({rc}):\n{log.read_text()[-3000:]}")
    return rc


def _normal(value: Any, a: str, b: str) -> Any:
    """A JSON value with timing fields dropped and folder ``a`` written as ``b``."""
    if isinstance(value, dict):
        return {k: _normal(v, a, b) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [_normal(v, a, b) for v in value]
    if isinstance(value, str):
        return value.replace(a, b)
    return value


def _same_loaded(x: Any, y: Any) -> bool:
    import torch

    if isinstance(x, torch.Tensor):
        return isinstance(y, torch.Tensor) and x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y)
    if isinstance(x, dict):
        keys = set(x) - TIMING - {"versions"}
        return isinstance(y, dict) and keys == set(y) - TIMING - {"versions"} and \
            all(_same_loaded(x[k], y[k]) for k in keys)
    if isinstance(x, (list, tuple)):
        return isinstance(y, (list, tuple)) and len(x) == len(y) and all(map(_same_loaded, x, y))
    return x == y


def compare_trees(a: Path, b: Path, skip: tuple[str, ...] = ("tb",)) -> list[str]:
    """Differences between folder ``a`` (killed and rerun) and ``b`` (uninterrupted): missing or
    extra files, and files whose content differs (see the module docstring); [] when equal."""
    import torch

    a, b = a.resolve(), b.resolve()
    files = lambda root: {p.relative_to(root).as_posix() for p in root.rglob("*")  # noqa: E731
                          if p.is_file() and not any(part in skip for part in p.relative_to(root).parts)}
    fa, fb = files(a), files(b)
    problems = [f"only in the killed run: {x}" for x in sorted(fa - fb)] + \
        [f"only in the uninterrupted run: {x}" for x in sorted(fb - fa)]
    for rel in sorted(fa & fb):
        pa, pb = a / rel, b / rel
        if rel.endswith(".pt"):
            same = _same_loaded(torch.load(pa, weights_only=True), torch.load(pb, weights_only=True))
        elif rel.endswith(".json"):
            same = _normal(json.loads(pa.read_text()), str(a), str(b)) == _normal(json.loads(pb.read_text()), "", "")
        elif rel.endswith(".jsonl"):
            la = [_normal(json.loads(x), str(a), str(b)) for x in pa.read_text().splitlines()]
            same = la == [_normal(json.loads(x), "", "") for x in pb.read_text().splitlines()]
        else:
            same = pa.read_bytes().replace(str(a).encode(), str(b).encode()) == pb.read_bytes()
        if not same:
            problems.append(f"differs: {rel}")
    return problems


def unfinished_stages(root: Path, marker: str = "done.json") -> list[str]:
    """Folders directly under ``root`` (not hidden temp ones) that lack their completion marker."""
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and not (p / marker).is_file())


if __name__ == "__main__":
    child_main(sys.argv[1])
