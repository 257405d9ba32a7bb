"""asr-prepare: synthesise a corpus (mini-TIMIT, mini-LibriSpeech) and/or write its Kaldi data dirs."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from asr.cli.common import hydra_app, report_user_errors
from asr.errors import AsrError

CORPORA = ("mini_timit", "timit", "mini_librispeech", "librispeech")


def _voices(cfg: DictConfig) -> tuple[str, ...] | None:
    return None if cfg.corpus.voices is None else tuple(cfg.corpus.voices)


@hydra_app("prepare")
@report_user_errors
def main(cfg: DictConfig) -> None:
    out = Path(cfg.out)
    corpus = cfg.corpus.name
    if corpus not in CORPORA:
        raise AsrError(f"corpus={corpus}: unknown corpus (choose {', '.join(CORPORA)})")
    if corpus in ("mini_librispeech", "librispeech"):
        _prepare_librispeech(cfg, out)
        return
    if corpus == "mini_timit":
        from asr.data.mini_timit import synthesize_mini_timit

        summary = synthesize_mini_timit(
            out, size=cfg.corpus.size, seed=int(cfg.corpus.seed), num_workers=int(cfg.num_workers),
            voices=_voices(cfg), piper_share=float(cfg.corpus.piper_share),
            test_sources=tuple(cfg.corpus.test_sources),
        )
        _print_synthesis("mini-TIMIT", cfg, out, summary, summary["splits"], width=5)
        root = out
    else:
        root = Path(cfg.corpus.root)
    from asr.data.timit import prepare_timit

    data_dir = out / "data"
    report = prepare_timit(root, data_dir, override="corpus.root")
    print(f"Kaldi data dirs in {data_dir}:")
    print(report.summary())


def _print_synthesis(corpus: str, cfg: DictConfig, out: Path, summary: dict, parts: dict, width: int) -> None:
    """The synthesis summary: made or reused, then utterances, speakers and minutes per part."""
    state = "reused" if summary.get("reused") else f"made in {summary['seconds_taken']:.1f} s"
    print(f"{corpus} ({cfg.corpus.size}, seed {cfg.corpus.seed}) in {out}, {state}:")
    for part, info in parts.items():
        print(f"{part:>{width}}: {info['utterances']:5d} utts, {info['speakers']:3d} speakers, "
              f"{info['seconds'] / 60:7.1f} min of speech")


def _prepare_librispeech(cfg: DictConfig, out: Path) -> None:
    """mini-LibriSpeech (synthesised under ``out``) or LibriSpeech (``corpus.root``) -> ``out/data/<subset>``."""
    from asr.data.librispeech import prepare_librispeech

    subsets = None
    if cfg.corpus.name == "mini_librispeech":
        from asr.data.mini_librispeech import synthesize_mini_librispeech

        summary = synthesize_mini_librispeech(out, size=cfg.corpus.size, seed=int(cfg.corpus.seed),
                                              num_workers=int(cfg.num_workers), voices=_voices(cfg))
        _print_synthesis("mini-LibriSpeech", cfg, out, summary, summary["subsets"], width=15)
        root = out
        lexicon = out / "lexicon.txt"  # its own pronunciations: text.phn for the hybrid recipes
    else:
        root = Path(cfg.corpus.root)
        subsets = None if cfg.corpus.subsets is None else [str(s) for s in cfg.corpus.subsets]
        lexicon = Path(cfg.corpus.lexicon) if cfg.corpus.get("lexicon") is not None else None
    data_dir = out / "data"
    report = prepare_librispeech(root, data_dir, subsets=subsets, override="corpus.root", lexicon=lexicon)
    print(f"Kaldi data dirs in {data_dir}:")
    print(report.summary())


if __name__ == "__main__":
    main()
