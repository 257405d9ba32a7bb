"""What every CLI shares: where the configs live and how user errors are reported."""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Callable, TypeVar

from omegaconf.errors import MissingMandatoryValue

from asr.errors import AsrError

# configs/ sits at the repository top level, beside the package (editable install).
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")

F = TypeVar("F", bound=Callable)


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
            print(f"error: missing required value '{key}': set it on the command line, e.g. {key}=...", file=sys.stderr)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def not_built_yet(command: str, issue: str) -> None:
    """Exit 2 with a one-line notice for a command whose stage has not landed."""
    print(f"{command}: not built yet ({issue})", file=sys.stderr)
    sys.exit(2)
