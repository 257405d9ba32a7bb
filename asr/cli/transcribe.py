"""asr-transcribe: print the transcript of new audio with a trained checkpoint."""

from __future__ import annotations

from omegaconf import DictConfig

from asr.cli.common import hydra_app, not_built_yet, report_user_errors


@hydra_app("transcribe")
@report_user_errors
def main(cfg: DictConfig) -> None:
    not_built_yet("asr-transcribe", "transcription lands with the decoding issue")


if __name__ == "__main__":
    main()
