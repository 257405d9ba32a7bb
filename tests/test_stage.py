"""The reuse rule of asr.stage: reuse on the same fingerprint, atomic rebuilds, scp retargeting."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from asr.errors import AsrError
from asr.stage import DONE, read_done, run_stage, stage_id


def _writer(calls: list, text: str = "x"):
    def build(tmp: Path) -> dict:
        calls.append(tmp)
        (tmp / "out.txt").write_text(text)
        (tmp / "feats.scp").write_text(f"u1 {tmp / 'feats.ark'}:5\nu2 /elsewhere/feats.ark:9\n")
        return {"n": len(calls)}
    return build


def test_reused_only_while_key_version_and_inputs_match(tmp_path: Path) -> None:
    calls: list = []
    up = run_stage(tmp_path / "up", {"a": 1}, _writer(calls))
    assert not up.reused and (tmp_path / "up" / "out.txt").read_text() == "x"
    down = run_stage(tmp_path / "down", {"b": 1}, _writer(calls), inputs=[tmp_path / "up"])
    assert len(calls) == 2
    assert run_stage(tmp_path / "up", {"a": 1}, _writer(calls)).reused
    assert run_stage(tmp_path / "down", {"b": 1}, _writer(calls), inputs=[up]).id == down.id
    assert len(calls) == 2
    # A changed key or code version rebuilds; so does a rebuilt input (a new build id).
    assert not run_stage(tmp_path / "down", {"b": 2}, _writer(calls), inputs=[up]).reused
    assert not run_stage(tmp_path / "down", {"b": 2}, _writer(calls), inputs=[up], version=2).reused
    up2 = run_stage(tmp_path / "up", {"a": 2}, _writer(calls))
    assert up2.id != up.id and stage_id(tmp_path / "up") == up2.id
    assert not run_stage(tmp_path / "down", {"b": 2}, _writer(calls), inputs=[tmp_path / "up"], version=2).reused
    info = read_done(tmp_path / "down")
    assert info["inputs"] == {str(tmp_path / "up"): up2.id} and info["key"] == {"b": 2}
    assert info["summary"] == {"n": len(calls)}


def test_scp_entries_name_the_final_folder_and_no_temp_is_left(tmp_path: Path) -> None:
    run_stage(tmp_path / "s", {}, _writer([]))
    assert (tmp_path / "s" / "feats.scp").read_text() == (
        f"u1 {tmp_path / 's' / 'feats.ark'}:5\nu2 /elsewhere/feats.ark:9\n")
    assert _names(tmp_path) == ["s"]


def test_a_failed_build_keeps_the_old_stage_and_cleans_up(tmp_path: Path) -> None:
    run_stage(tmp_path / "s", {"k": 1}, _writer([], "old"))

    def broken(tmp: Path) -> dict:
        (tmp / "out.txt").write_text("half")
        raise AsrError("boom")

    with pytest.raises(AsrError, match="boom"):
        run_stage(tmp_path / "s", {"k": 2}, broken)
    assert (tmp_path / "s" / "out.txt").read_text() == "old"
    assert json.loads((tmp_path / "s" / DONE).read_text())["key"] == {"k": 1}
    assert _names(tmp_path) == ["s"]
    # Leftovers of a run killed mid-build are removed by the next build of that stage.
    (tmp_path / ".s.tmp-4194999").mkdir()  # no such process (above Linux's pid_max)
    (tmp_path / ".s.old-4194999").mkdir()
    run_stage(tmp_path / "s", {"k": 3}, _writer([]))
    assert _names(tmp_path) == ["s"]


def _names(folder: Path) -> list[str]:
    """The folder's entries (no lock file is left behind either)."""
    return sorted(p.name for p in folder.iterdir())


def _build_slowly(out: str, marks: str) -> None:
    def build(tmp: Path) -> dict:
        with open(marks, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.0)
        (tmp / "out.txt").write_text("x")
        return {}

    run_stage(out, {"k": 1}, build)


def test_two_processes_building_one_stage_wait_for_each_other(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_build_slowly, args=(str(tmp_path / "s"), str(tmp_path / "marks")))
             for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [proc.exitcode for proc in procs] == [0, 0]
    assert len((tmp_path / "marks").read_text().split()) == 1  # built once; the other reused it
    assert (tmp_path / "s" / "out.txt").read_text() == "x"


def test_unfinished_input_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "up").mkdir()
    with pytest.raises(AsrError, match="up: stage not finished"):
        run_stage(tmp_path / "down", {}, _writer([]), inputs=[tmp_path / "up"])


def test_cached_stages_are_shared_through_links_and_checked(tmp_path: Path) -> None:
    from asr.stage import stage_cache

    calls: list = []
    cache = tmp_path / "cache"
    with stage_cache(cache):
        a = run_stage(tmp_path / "a" / "s", {"k": 1}, _writer(calls), name="grp/s")
        b = run_stage(tmp_path / "b" / "s", {"k": 1}, _writer(calls), name="grp/s")
        private = run_stage(tmp_path / "b" / "p", {"k": 1}, _writer(calls), cacheable=False)
    assert len(calls) == 2 and b.reused and a.id == b.id and not private.reused
    homes = _names(cache)
    assert len(homes) == 1 and homes[0].startswith("grp+s-")
    for exp in ("a", "b"):
        link = tmp_path / exp / "s"
        assert link.is_symlink() and link.resolve() == cache / homes[0]
        # Paths inside name the cache folder, wherever the build ran.
        assert (link / "feats.scp").read_text().startswith(f"u1 {cache / homes[0] / 'feats.ark'}:5")
    assert not (tmp_path / "b" / "p").is_symlink()
    # A failing reuse check rebuilds in place.
    with stage_cache(cache):
        again = run_stage(tmp_path / "b" / "s", {"k": 1}, _writer(calls), name="grp/s", check=lambda p: False)
    assert not again.reused and len(calls) == 3
