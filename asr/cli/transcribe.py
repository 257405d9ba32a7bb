"""asr-transcribe: print the transcript of new audio with a trained checkpoint."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from asr.cli.common import CONFIG_DIR, not_built_yet, report_user_errors


@hydra.main(version_base=None, config_path=CONFIG_DIR, config_name="transcribe")
@report_user_errors
def main(cfg: DictConfig) -> None:
    not_built_yet("asr-transcribe", "transcription lands with the decoding issue")


if __name__ == "__main__":
    main()
