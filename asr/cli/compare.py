"""asr-compare: per-epoch time and PER/WER of several experiment dirs, as a table and a plot."""

from __future__ import annotations

import argparse

from asr.cli.common import not_built_yet


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="asr-compare",
        description="Put per-epoch training time and PER/WER of several experiment dirs side by side.",
    )
    parser.add_argument("exp_dirs", nargs="+", metavar="DIR", help="experiment dirs (with history.jsonl, results.json)")
    parser.add_argument("--out", metavar="FILE", help="PNG plot to write")
    parser.parse_args(argv)
    not_built_yet("asr-compare", "comparison lands with the training issue")


if __name__ == "__main__":
    main()
