"""asr-prepare: synthesise mini-TIMIT and/or write Kaldi data dirs for a TIMIT-layout corpus."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from asr.cli.common import hydra_app, report_user_errors
from asr.errors import AsrError


@hydra_app("prepare")
@report_user_errors
def main(cfg: DictConfig) -> None:
    out = Path(cfg.out)
    corpus = cfg.corpus.name
    if corpus == "mini_timit":
        from asr.data.mini_timit import synthesize_mini_timit

        summary = synthesize_mini_timit(
            out, size=cfg.corpus.size, seed=int(cfg.corpus.seed), num_workers=int(cfg.num_workers),
            voices=None if cfg.corpus.voices is None else tuple(cfg.corpus.voices), piper_share=float(cfg.corpus.piper_share),
            test_sources=tuple(cfg.corpus.test_sources),
        )
        state = "reused" if summary.get("reused") else f"made in {summary['seconds_taken']:.1f} s"
        print(f"mini-TIMIT ({cfg.corpus.size}, seed {cfg.corpus.seed}) in {out}, {state}:")
        for split, info in summary["splits"].items():
            print(f"{split:>5}: {info['utterances']:5d} utts, {info['speakers']:3d} speakers, "
                  f"{info['seconds'] / 60:7.1f} min of speech")
        root = out
    elif corpus == "timit":
        root = Path(cfg.corpus.root)
    else:
        raise AsrError(f"corpus={corpus}: unknown corpus (choose mini_timit or timit)")
    from asr.data.timit import prepare_timit

    data_dir = out / "data"
    report = prepare_timit(root, data_dir, override="corpus.root")
    print(f"Kaldi data dirs in {data_dir}:")
    print(report.summary())


if __name__ == "__main__":
    main()
