"""The one reuse rule of every stage: build in a temp folder, write ``done.json`` last, rename.

A stage is a folder of plain files (a data dir, a feature store, a GMM stage, a graph, a
decode). :func:`run_stage` reuses it when its ``done.json`` records the same fingerprint,
and otherwise rebuilds it:

1. ``build(tmp)`` writes the outputs into ``.<name>.tmp-<pid>`` beside the folder;
2. Kaldi ``*.scp`` files in it that name the temp folder are pointed at the final one;
3. ``done.json`` is written last, then the folder is renamed into place (an older copy
   is moved aside first), so a crash never leaves a half-written stage that looks done.

The fingerprint covers the stage's ``key`` (every option that changes its output, as
plain JSON values), a per-stage code ``version`` (bumped whenever the stage's code
changes its output, so fixes reach existing experiment folders), and the build ids of
the upstream stages it reads. Each build gets a fresh id, so rebuilding a stage (for
example after its folder was deleted) rebuilds everything downstream of it as well, and
nothing upstream.

``done.json``::

    {"stage": "gmm/tri1", "version": 1, "fingerprint": "...", "id": "...",
     "inputs": {"/exp/gmm/mono": "<id>"}, "key": {...}, "summary": {...},
     "seconds": 12.3, "finished": "2026-12-01T10:00:00"}
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asr.errors import AsrError

log = logging.getLogger(__name__)

DONE = "done.json"


@dataclass(frozen=True)
class StageResult:
    """A finished stage.

    Attributes:
        path: its folder.
        id: the build id recorded in ``done.json`` (downstream fingerprints use it).
        summary: what ``build`` returned (counts, figures), as recorded.
        reused: True when the folder was up to date and nothing was built.
    """

    path: Path
    id: str
    summary: dict
    reused: bool


def fingerprint(*parts: Any) -> str:
    """SHA-256 (hex, 20 characters) of JSON-encoded values (sorted keys; others via ``str``)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:20]


def read_done(path: str | os.PathLike) -> dict | None:
    """The parsed ``done.json`` of a stage folder, or None when it has none (or it is unreadable)."""
    try:
        return json.loads((Path(path) / DONE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def stage_id(path: str | os.PathLike) -> str:
    """The build id of a finished stage.

    Raises:
        AsrError: the folder holds no finished stage.
    """
    done = read_done(path)
    if done is None or "id" not in done:
        raise AsrError(f"{path}: stage not finished (no {DONE}); run the stage that makes it first")
    return done["id"]


def _input_ids(inputs: Sequence[str | os.PathLike | StageResult]) -> dict[str, str]:
    out = {}
    for item in inputs:
        if isinstance(item, StageResult):
            out[str(item.path)] = item.id
        else:
            out[str(Path(item).absolute())] = stage_id(item)
    return out


def stage_fingerprint(key: Mapping[str, Any], version: int, input_ids: Mapping[str, str]) -> str:
    """The fingerprint :func:`run_stage` records: key, code version and upstream build ids
    (upstream stages count by their build ids only, not by where they lie)."""
    return fingerprint({"key": dict(key), "version": version, "inputs": sorted(input_ids.values())})


_CACHE: ContextVar[Path | None] = ContextVar("asr_stage_cache", default=None)


@contextmanager
def stage_cache(cache_dir: str | os.PathLike | None) -> Iterator[None]:
    """Within this block, cacheable stages live in ``cache_dir``, shared between experiments.

    A cacheable stage (every stage that does not depend on the network: data, features,
    lang, GMM stages) is built into ``cache_dir/<name>-<fingerprint>/``, and its folder in
    the experiment becomes a symbolic link to it. Experiments that differ only in later
    stages (the network) then reuse one copy instead of rebuilding it. None: no cache.
    """
    token = _CACHE.set(Path(cache_dir).absolute() if cache_dir is not None else None)
    try:
        yield
    finally:
        _CACHE.reset(token)


def run_stage(out_dir: str | os.PathLike, key: Mapping[str, Any], build: Callable[[Path], Mapping | None], *,
              name: str | None = None, version: int = 1,
              inputs: Sequence[str | os.PathLike | StageResult] = (),
              check: Callable[[Path], bool] | None = None, cacheable: bool = True) -> StageResult:
    """Reuse the stage in ``out_dir`` if its fingerprint matches, else build it afresh.

    Args:
        out_dir: the stage folder.
        key: every option and input description that changes the output (JSON values).
        build: writes the outputs into the (empty) folder it is given and returns a
            JSON-able summary (or None). Paths of its own files that it writes into
            ``*.scp`` and ``*.json`` files should name that folder: they are retargeted to
            the stage's final place afterwards.
        name: the stage's name in logs and ``done.json`` (default: the folder name).
        version: the stage's code version (bump it when its output changes).
        inputs: upstream stage folders (or their results) whose outputs ``build`` reads.
        check: also required for reuse: ``check(folder)`` is true (e.g. the audio files a
            ``wav.scp`` names still exist).
        cacheable: whether the stage may live in the :func:`stage_cache` folder.

    Returns:
        the stage's result (``path`` is ``out_dir``, a link into the cache when cached).
    """
    out = Path(out_dir).absolute()
    name = name or out.name
    ids = _input_ids(inputs)
    fp = stage_fingerprint(key, version, ids)
    cache = _CACHE.get() if cacheable else None
    home = cache / f"{name.replace('/', '+')}-{fp}" if cache is not None else out
    home.parent.mkdir(parents=True, exist_ok=True)
    # One process at a time per stage folder: two runs sharing a stage (a cache_dir, one
    # exp_dir) wait for each other, and the second then reuses what the first built.
    with _locked(home.parent / f".{home.name}.lock"):
        return _run_locked(out, home, name, fp, ids, key, build, version, check)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created for it, removed after). A process that
    waited on the removed file goes on once it is released: by then the stage is built, so
    it reuses it; should that build have failed, two waiters may both build, and each
    leaves the other's temp folder alone (:func:`_stale`)."""
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _stale(folder: Path) -> bool:
    """A ``.<stage>.tmp-<pid>`` / ``.old-<pid>`` folder whose process is gone."""
    try:
        pid = int(folder.name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _run_locked(out: Path, home: Path, name: str, fp: str, ids: dict[str, str], key: Mapping[str, Any],
                build: Callable[[Path], Mapping | None], version: int,
                check: Callable[[Path], bool] | None) -> StageResult:
    for place in dict.fromkeys([out, home]):
        done = read_done(place)
        if done is not None and done.get("fingerprint") == fp and (check is None or check(place)):
            if place != out:
                _link(out, home)
            log.info("%s: %s is up to date, reusing it", name, out)
            return StageResult(out, done["id"], done.get("summary") or {}, True)
    start = time.perf_counter()
    # Leftovers of an earlier run killed while building or replacing this stage (no live
    # process builds it: we hold its lock).
    for leftover in [*home.parent.glob(f".{home.name}.tmp-*"), *home.parent.glob(f".{home.name}.old-*")]:
        if _stale(leftover):
            _remove(leftover)
    tmp = home.parent / f".{home.name}.tmp-{os.getpid()}"
    try:
        tmp.mkdir()
    except OSError as e:
        raise AsrError(f"{name}: cannot create {tmp} ({e.strerror})") from None
    try:
        summary = dict(build(tmp) or {})
        _retarget(tmp, home)
        record = {"stage": name, "version": version, "fingerprint": fp, "id": uuid.uuid4().hex,
                  "inputs": ids, "key": dict(key), "summary": summary,
                  "seconds": round(time.perf_counter() - start, 3),
                  "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (tmp / DONE).write_text(json.dumps(record, indent=1, sort_keys=True, default=str) + "\n",
                                encoding="utf-8")
        replace_dir(tmp, home)
    except OSError as e:
        # A full or read-only disk, most often: one line naming the stage; nothing half-written is left.
        _remove(tmp)
        where = f"{e.filename}: " if e.filename else ""
        raise AsrError(f"{name}: building {home} failed: {where}{e.strerror or e}") from None
    except BaseException:
        _remove(tmp)
        raise
    if home != out:
        _link(out, home)
    log.info("%s: built %s in %.1f s", name, home, record["seconds"])
    return StageResult(out, record["id"], summary, False)


def _link(out: Path, target: Path) -> None:
    """Make ``out`` a symbolic link to ``target`` (replacing what is there)."""
    if out.is_symlink() and Path(os.readlink(out)) == target:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove(out)
    out.symlink_to(target, target_is_directory=True)


def _remove(path: Path) -> None:
    if path.is_symlink():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)


def _retarget(tmp: Path, final: Path) -> None:
    """Point paths under ``tmp`` named in ``*.scp`` and ``*.json`` files at ``final`` instead."""
    old, new = str(tmp), str(final)
    for path in [*tmp.rglob("*.scp"), *tmp.rglob("*.json")]:
        text = path.read_text(encoding="utf-8")
        if old in text:
            path.write_text(text.replace(old, new), encoding="utf-8")


def replace_dir(tmp: Path, final: Path) -> None:
    """Rename the finished folder ``tmp`` to ``final``, replacing an existing ``final``.

    The old folder is moved aside first, so ``final`` is never half-written.
    """
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        _remove(old)
        final.rename(old)
        tmp.rename(final)
        _remove(old)
    else:
        tmp.rename(final)
