"""What every CLI shares: where the configs live, the Hydra app, and how user errors are reported."""

from __future__ import annotations

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
    """``hydra.main`` on ``CONFIG_DIR/<config_name>.yaml``, with the config schemas registered first."""
    import hydra

    from asr.recipe.schema import register

    register()
    return hydra.main(version_base=None, config_path=CONFIG_DIR, config_name=config_name)


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


def report_user_errors(fn: F) -> F:
    """Turn an :class:`AsrError` into one ``error: ...`` line on stderr and exit status 1."""

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

    return wrapper  # type: ignore[return-value]
