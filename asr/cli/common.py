"""What every CLI shares: where the configs live, the Hydra app, and how user errors are reported."""

from __future__ import annotations

import errno
import functools
import logging
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Callable, TypeVar

from omegaconf.errors import MissingMandatoryValue

from asr.errors import AsrError

F = TypeVar("F", bound=Callable)


def find_config_dir() -> str:
    """Where the Hydra configs are.

    ``configs/`` sits at the repository top level and is installed as the package
    ``asr.configs`` (a wheel holds it under ``asr/configs/``; an editable install maps the
    package to the repository's folder). Running ``python -m asr.cli...`` from a checkout
    that is not installed, the repository's ``asr/`` shadows any install and
    ``asr.configs`` may not import: then the ``configs/`` folder beside the package is used.
    """
    try:
        root = resources.files("asr.configs")
    except ModuleNotFoundError:
        return str(Path(__file__).resolve().parents[2] / "configs")
    # A package in a folder is a Path; anything else (a zip) is read through Hydra's importlib source.
    return str(root) if isinstance(root, Path) else "pkg://asr.configs"


CONFIG_DIR = find_config_dir()


def hydra_app(config_name: str) -> Callable[[F], F]:
    """``hydra.main`` on ``CONFIG_DIR/<config_name>.yaml``, with the config schemas registered first.

    Every command's config names :class:`OutputDirCheck` under ``hydra.callbacks``: it makes
    the output folder before Hydra does, so that a read-only or full file system gets one
    ``error:`` line instead of Hydra's traceback. Logging errors (a log file on a full disk)
    no longer print tracebacks either: the console keeps every line.
    """
    import hydra

    from asr.recipe.schema import register

    register()
    hydra_main = hydra.main(version_base=None, config_path=CONFIG_DIR, config_name=config_name)

    def decorate(fn: F) -> F:
        run = hydra_main(fn)

        @functools.wraps(fn)
        def entry(*args, **kwargs):
            logging.raiseExceptions = False
            return run(*args, **kwargs)

        return entry  # type: ignore[return-value]

    return decorate


def _make_output_dir(path: str, key: str) -> None:
    """Create ``path`` (Hydra's output folder) or stop with one line saying why it cannot be."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK):  # access() sees a read-only mount, whoever we are
            code = errno.EROFS if os.statvfs(path).f_flag & os.ST_RDONLY else errno.EACCES
            raise OSError(code, os.strerror(code), path)
    except OSError as e:
        print(f"error: {os_error_line(e)} (the output folder, {key})", file=sys.stderr)
        # SystemExit, not an exception: Hydra turns a callback's exceptions into warnings.
        sys.exit(1)


def _callback_base() -> type:
    from hydra.experimental.callback import Callback

    return Callback


class OutputDirCheck(_callback_base()):  # type: ignore[misc]
    """Hydra callback: the run's (or sweep's) output folder can be made and written to."""

    def on_run_start(self, config, **kwargs) -> None:  # noqa: ANN001 - Hydra's signature
        _make_output_dir(str(config.hydra.run.dir), "hydra.run.dir")

    def on_multirun_start(self, config, **kwargs) -> None:  # noqa: ANN001
        _make_output_dir(str(config.hydra.sweep.dir), "hydra.sweep.dir")


class RankFilter(logging.Filter):
    """Adds ``record.rank``: this process's rank under ``torchrun`` (``RANK``), 0 alone.
    The log format of ``configs/hydra/job_logging/asr.yaml`` names it with file:line."""

    def __init__(self) -> None:
        super().__init__()
        self.rank = os.environ.get("RANK", "0")

    def filter(self, record: logging.LogRecord) -> bool:
        record.rank = self.rank
        return True


# What a missing value is, where it helps to say more than its name.
_HINTS = {"data.root": " (the folder holding TIMIT's TRAIN/ and TEST/; no corpus at hand? make the "
                       "synthetic one with: asr-prepare corpus=mini_timit out=DIR)"}


def os_error_line(e: OSError) -> str:
    """One line for a failed system call: the file(s) named and the system's reason
    (``/exp/features: Read-only file system``, ``No space left on device``)."""
    reason = e.strerror or str(e)
    names = [str(n) for n in (e.filename, e.filename2) if n is not None]
    return f"{' -> '.join(names)}: {reason}" if names else reason


def report_user_errors(fn: F) -> F:
    """Turn an :class:`AsrError` into one ``error: ...`` line on stderr and exit status 1;
    so too an ``OSError`` (a read-only or full file system, a missing permission): the
    environment's fault, said in one line, not a bug's traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AsrError as e:
            logging.getLogger("asr").debug("user error", exc_info=True)
            print(f"error: {e}", file=sys.stderr)
            sys.exit(1)
        except MissingMandatoryValue as e:
            key = e.full_key or "?"
            hint = _HINTS.get(key, "")
            print(f"error: missing required value '{key}': set it on the command line, e.g. {key}=...{hint}",
                  file=sys.stderr)
            sys.exit(1)
        except OSError as e:
            logging.getLogger("asr").debug("system error", exc_info=True)
            print(f"error: {os_error_line(e)}", file=sys.stderr)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
