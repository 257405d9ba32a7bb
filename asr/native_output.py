"""Send what native (C/C++) libraries print to the log instead of the terminal.

Some of the native libraries we call write straight to the process's file descriptors 1
and 2, bypassing Python: kaldilm's ``arpa2fst``, for instance, prints a source-path line
and ``[I] Reading \\data\\ section.`` for every section of every ARPA file it reads.
:func:`native_output_to_log` points fds 1 and 2 at a temporary file for the duration of a
``with`` block, then replays each captured line as one log record.

Example::

    with native_output_to_log():          # records go to the "asr.native" logger
        kaldilm.arpa2fst(...)
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["native_output_to_log"]

_FDS = (1, 2)
# Held for the whole of an outermost block; re-entrant so that a nested block in the same
# thread is detected (``_depth``) instead of deadlocking.
_lock = threading.RLock()
_depth = 0
_libc: ctypes.CDLL | None = None
_libc_loaded = False

# Line prefixes (Kaldi / kaldilm style) that raise a record's level above ``level``.
_ESCALATE = (
    (("[E]", "[F]", "ERROR (", "ASSERTION_FAILED ("), logging.ERROR),
    (("[W]", "WARNING ("), logging.WARNING),
)


def _flush_c_stdio() -> None:
    """``fflush(NULL)``: empty every C stdio buffer (and so C++ iostreams synced with it)."""
    global _libc, _libc_loaded
    if not _libc_loaded:
        _libc_loaded = True
        try:
            _libc = ctypes.CDLL(None)
        except (OSError, TypeError):  # no process-wide C library handle (e.g. Windows)
            _libc = None
    if _libc is not None:
        _libc.fflush(None)


def _flush_all() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):  # closed or broken stream: nothing to flush
                pass
    _flush_c_stdio()


def _record_level(line: str, level: int) -> int:
    for prefixes, floor in _ESCALATE:
        if line.startswith(prefixes):
            return max(level, floor)
    return level


@contextmanager
def native_output_to_log(logger_name: str = "asr.native", level: int = logging.INFO) -> Iterator[None]:
    """Capture everything written to fds 1 and 2 in the block and log it, line by line.

    On entry Python's ``sys.stdout`` / ``sys.stderr`` and the C stdio buffers are flushed
    (so earlier output still reaches the terminal), and fds 1 and 2 are ``dup2``-ed onto
    one temporary file. On exit -- also when the block raises -- the buffers are flushed
    again, the original fds are restored, and every non-empty captured line (decoded as
    UTF-8, undecodable bytes replaced, trailing whitespace stripped) is emitted, in order,
    as one record on ``logging.getLogger(logger_name)`` at ``level``; lines that look like
    Kaldi warnings (``[W]``, ``WARNING (``) are logged at least at WARNING and errors
    (``[E]``, ``[F]``, ``ERROR (``) at least at ERROR. Python ``print`` output in the
    block is captured the same way.

    Threads and nesting: file descriptors belong to the whole process, so while a block
    is active *any* thread's output to fds 1/2 is captured. Do not use it concurrently
    from several threads: a module lock serialises blocks (a second thread waits until
    the first block ends). A block nested in an active one of the same thread does
    nothing by itself: its output goes to the outer block and is logged, with the outer
    block's logger and level, when that one ends.

    A native library that aborts the process inside the block takes the captured text
    with it: validate inputs before calling such code.

    Args:
        logger_name: the logger that receives the lines.
        level: the logging level of the records (e.g. ``logging.INFO``).
    """
    global _depth
    with _lock:
        if _depth:
            _depth += 1
            try:
                yield
            finally:
                _depth -= 1
            return
        _depth = 1
        text = ""
        try:
            with tempfile.TemporaryFile(mode="w+b", prefix="asr-native-") as tmp:
                _flush_all()
                saved: dict[int, int] = {}
                try:
                    for fd in _FDS:
                        try:
                            saved[fd] = os.dup(fd)
                        except OSError:  # fd not open: leave it alone
                            continue
                        os.dup2(tmp.fileno(), fd)
                    yield
                finally:
                    _flush_all()
                    for fd, copy in saved.items():
                        os.dup2(copy, fd)
                        os.close(copy)
                    tmp.seek(0)
                    text = tmp.read().decode("utf-8", errors="replace")
        finally:
            _depth = 0
            _emit(text, logger_name, level)  # also when the block raised: it may say why


def _emit(text: str, logger_name: str, level: int) -> None:
    logger = logging.getLogger(logger_name)
    for line in text.splitlines():
        line = line.rstrip()
        if line:
            logger.log(_record_level(line, level), "%s", line)
