"""Acceptance test of a non-editable install: a wheel of the project, installed into a fresh
virtual environment, runs its commands from outside the repository (configs included).

No network: the wheel is built with --no-build-isolation from a copy of the sources, and
installed with --no-deps --no-index. The dependencies (torch, hydra, ...) come from the
test-running interpreter's site-packages, appended to the new environment's sys.path by a
``.pth`` line: a folder added that way is not scanned for ``.pth`` files itself, so the
editable-install hook of the development environment does not load there (checked below).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _check(cmd: list, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)
    assert res.returncode == 0, f"{cmd}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build the wheel, install it into a fresh venv; returns wheel, venv, python, bin, work."""
    tmp = tmp_path_factory.mktemp("wheel")
    # A copy of the sources, so that the build neither writes into the repository nor
    # packs stale files of a build/ folder there.
    src = tmp / "src"
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.egg-info", "build")
    for name in ("asr", "configs"):
        shutil.copytree(REPO / name, src / name, ignore=junk)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    dist = tmp / "dist"
    _check([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
            "-w", dist, src])
    (wheel,) = dist.glob("asr-*.whl")

    venv = tmp / "venv"
    _check([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    _check([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index",
            wheel])
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_check([python, "-c", purelib]).stdout.strip())
    dev_paths = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "dev_dependencies.pth").write_text("".join(f"{p}\n" for p in dev_paths))
    work = tmp / "work"
    work.mkdir()
    return {"wheel": wheel, "venv": venv, "python": python, "bin": venv / "bin", "work": work}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_wheel_holds_every_module_and_config(installed: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    assert "asr/configs/train.yaml" in names and "asr/configs/recipe/timit_ligru.yaml" in names
    expected = {f"asr/{p.relative_to(REPO / 'asr')}" for p in (REPO / "asr").rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".so")}
    expected |= {f"asr/configs/{p.relative_to(REPO / 'configs')}" for p in (REPO / "configs").rglob("*")
                 if p.is_file() and p.suffix in (".yaml", ".py") and "__pycache__" not in p.parts}
    missing = sorted(expected - names)
    assert not missing, f"not in the wheel (list their packages in pyproject.toml): {missing}"


def test_installed_package_is_the_wheel_not_the_checkout(installed: dict[str, Path]) -> None:
    code = ("import sys, asr, asr.cli.common as c; print(asr.__file__); print(c.CONFIG_DIR); "
            "print(any('editable' in m for m in sys.modules))")
    out = _check([installed["python"], "-c", code], cwd=installed["work"], env=_env()).stdout.split("\n")
    venv = str(installed["venv"].resolve())
    assert out[0].startswith(venv), out
    assert out[1].startswith(venv) and out[1].endswith("asr/configs"), out
    assert out[2] == "False", "the development venv's editable-install hook leaked in"


def test_installed_commands_run_outside_the_repository(installed: dict[str, Path]) -> None:
    work, bin_ = installed["work"], installed["bin"]
    res = _check([bin_ / "asr-train", "--help"], cwd=work, env=_env())
    assert "timit_ligru" in res.stdout
    res = _check([bin_ / "asr-train", "recipe=timit_ligru", "--cfg", "job"], cwd=work, env=_env())
    assert "cell: ligru" in res.stdout and "recipe_name: timit_ligru" in res.stdout
    out = work / "mini"
    _check([bin_ / "asr-prepare", "corpus=mini_timit", "corpus.size=tiny", f"out={out}"],
           cwd=work, env=_env())
    assert (out / "data" / "train" / "wav.scp").is_file()
    assert list(work.iterdir()) == [out]


def test_checkout_run_as_module_falls_back_to_its_configs(installed: dict[str, Path]) -> None:
    """``python -m asr.cli.train`` from the repository root, where the checkout's ``asr/``
    shadows the installed wheel and no editable install maps ``asr.configs``."""
    code = "import asr, asr.cli.common as c; print(asr.__file__); print(c.CONFIG_DIR)"
    out = _check([installed["python"], "-c", code], cwd=REPO, env=_env()).stdout.split("\n")
    assert out[0] == str(REPO / "asr" / "__init__.py") and out[1] == str(REPO / "configs"), out
    res = _check([installed["python"], "-m", "asr.cli.train", "recipe=timit_mgu", "--cfg", "job"],
                 cwd=REPO, env=_env())
    assert "cell: mgu" in res.stdout
