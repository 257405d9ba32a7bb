"""asr-decode: re-decode and score a trained checkpoint."""

from __future__ import annotations

from omegaconf import DictConfig

from asr.cli.common import hydra_app, not_built_yet, report_user_errors


@hydra_app("decode")
@report_user_errors
def main(cfg: DictConfig) -> None:
    not_built_yet("asr-decode", "decoding lands with the decoding issue")


if __name__ == "__main__":
    main()
