"""native_output_to_log: fd-level output of native code goes to the log, not the terminal."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from asr.native_output import native_output_to_log

REPO = Path(__file__).resolve().parents[1]


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)


def test_fd_and_c_output_is_logged_not_printed(tmp_path: Path) -> None:
    proc = _run("""
        import ctypes, logging, os, sys
        from asr.native_output import native_output_to_log
        handler = logging.FileHandler("log.txt")
        handler.setFormatter(logging.Formatter("%(name)s|%(levelname)s|%(message)s"))
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.DEBUG)
        libc = ctypes.CDLL(None)
        print("before-block", flush=True)
        with native_output_to_log("my.native", logging.DEBUG):
            os.write(1, b"fd1-text\\n")
            os.write(2, b"fd2-text\\n\\n   \\n")
            libc.puts(b"c-puts-text")           # buffered by C stdio: flushed on exit
            print("python-print-text")
            os.write(2, b"[W] kaldi-warning-text\\n")
        print("after-block", flush=True)
        try:
            with native_output_to_log():
                os.write(1, b"raised-text\\n")
                raise KeyError("boom")
        except KeyError:
            pass
        os.write(1, b"restored-stdout\\n")
        os.write(2, b"restored-stderr\\n")
        """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    for text in ("fd1-text", "fd2-text", "c-puts-text", "python-print-text", "kaldi-warning", "raised-text"):
        assert text not in proc.stdout and text not in proc.stderr, text
    assert proc.stdout.split() == ["before-block", "after-block", "restored-stdout"]
    assert proc.stderr.split() == ["restored-stderr"]
    records = (tmp_path / "log.txt").read_text().splitlines()
    assert records == [
        "my.native|DEBUG|fd1-text",
        "my.native|DEBUG|fd2-text",
        "my.native|DEBUG|c-puts-text",
        "my.native|DEBUG|python-print-text",
        "my.native|WARNING|[W] kaldi-warning-text",
        "asr.native|INFO|raised-text",
    ]


def test_records_in_process_and_nesting(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="asr.native")
    with native_output_to_log():
        os.write(1, b"outer\n")
        with native_output_to_log("ignored.inner"):
            os.write(2, b"inner\n")
        os.write(1, b"outer again\n")
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("asr.native", "outer"), ("asr.native", "inner"), ("asr.native", "outer again")]


def test_make_g_fst_prints_nothing(tmp_path: Path) -> None:
    proc = _run("""
        import logging
        from asr.graph.phone_lm import estimate_bigram, make_g_fst, write_arpa
        from asr.graph.ngram_lm import estimate_ngram, make_word_g_fst, word_symbol_table
        from pathlib import Path
        handler = logging.FileHandler("log.txt")
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
        phones = ["a", "b", "c"]
        write_arpa(estimate_bigram([["a", "b"], ["c", "a"]], phones), "lm.arpa")
        g = make_g_fst("lm.arpa", phones, "lang")
        assert g.num_states > 0
        from asr.graph.ngram_lm import write_arpa as write_word_arpa
        write_word_arpa(estimate_ngram([["x", "y", "x"]], ["x", "y"], 3), "w.arpa")
        Path("words.txt").write_text(word_symbol_table(["x", "y"]))
        make_word_g_fst("w.arpa", "words.txt", "G.fst")
        """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    log = (tmp_path / "log.txt").read_text()
    assert "Reading \\data\\ section." in log and "Reading \\3-grams: section." in log


def test_threads_are_serialised_and_fds_restored(tmp_path: Path) -> None:
    proc = _run("""
        import logging, os, threading, time
        from asr.native_output import native_output_to_log
        logging.basicConfig(filename="log.txt", level=logging.INFO, format="%(message)s")
        def work(i):
            for j in range(20):
                with native_output_to_log():
                    os.write(1, f"t{i}-{j}\\n".encode())
                    time.sleep(0.001)
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        os.write(1, b"restored\\n")
        """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "restored\n" and proc.stderr == ""
    records = (tmp_path / "log.txt").read_text().split()
    assert sorted(records) == sorted(f"t{i}-{j}" for i in range(4) for j in range(20))
