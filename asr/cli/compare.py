"""asr-compare: per-epoch time and PER/WER of several experiment dirs, as a table and a plot."""

from __future__ import annotations

import argparse
import sys

from asr.errors import AsrError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="asr-compare",
        description="Put per-epoch training time and PER/WER of several experiment dirs side by side "
                    "(a Markdown table on stdout, a PNG plot). A folder without a run of its own, "
                    "such as a Hydra multirun folder, stands for every run below it.",
    )
    parser.add_argument("exp_dirs", nargs="+", metavar="DIR", help="experiment dirs (with history.jsonl, results.json)")
    parser.add_argument("--out", metavar="FILE", default="compare.png", help="PNG plot to write (default: %(default)s)")
    parser.add_argument("--gmm", metavar="STAGES", default="all",
                        help="GMM-HMM baseline rows: comma-separated stages (tri3), 'all' (default) or 'none'")
    args = parser.parse_args(argv)
    from asr.decode.compare import find_runs, format_table, gmm_baselines, plot_runs

    try:
        runs = find_runs(args.exp_dirs)
        if args.gmm != "none":
            runs += gmm_baselines(runs, None if args.gmm == "all" else args.gmm.split(","))
        print(format_table(runs))
        path = plot_runs(runs, args.out)
    except AsrError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"\nplot: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
