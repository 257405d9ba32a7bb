"""asr-transcribe: print the transcript of new audio with a trained checkpoint."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from asr.cli.common import hydra_app, report_user_errors


@hydra_app("transcribe")
@report_user_errors
def main(cfg: DictConfig) -> None:
    from asr.data.kaldi_dir import read_table
    from asr.decode.transcribe import Transcriber, list_audio
    from asr.graph.search import SearchOptions
    from asr.recipe.redecode import experiment_of, read_checkpoint

    checkpoint = Path(cfg.checkpoint)
    t = Transcriber(checkpoint, read_checkpoint(checkpoint), experiment_of(checkpoint), cfg.num_workers,
                    SearchOptions(beam=cfg.beam, scale_beam=False), tuple(float(x) for x in cfg.fmllr_min_frames),
                    float(cfg.segment_seconds))
    utt2spk = read_table(Path(cfg.utt2spk)) if cfg.utt2spk else None
    for r in t.transcribe(list_audio(cfg.audio), utt2spk, phones=cfg.phones):
        line = f"{r.path}\t{' '.join(r.words) if r.words is not None else ''}"
        if cfg.phones:
            line += f"\t{' '.join(r.phones or [])}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
