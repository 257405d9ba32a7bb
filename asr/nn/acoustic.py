"""The acoustic model: optional MLP front end, encoder (recurrent stack or spliced MLP),
optional MLP, and one linear output head per target (pdfs, monophones, CTC tokens)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from asr.errors import AsrError
from asr.nn.mlp import MLP
from asr.nn.spec import ModelSpec, build_encoder


def _mlp_stack(input_size: int, widths: list[int], dropout: float) -> tuple[nn.ModuleList, int]:
    layers = nn.ModuleList()
    for width in widths:
        layers.append(MLP(input_size, width, 1, dropout))
        input_size = width
    return layers, input_size


class AcousticModel(nn.Module):
    """Frames in, per-head logits out.

    Args:
        spec: the model spec (``front_mlp``, the encoder, ``head_mlp``).
        input_size: F, features per input frame.
        heads: head name -> output classes, e.g. ``{"pdf": 1936, "phone": 48}`` (hybrid)
            or ``{"ctc": 49}`` (CTC, blank first). Order is kept.

    ``forward(x [B, T, F], lengths [B]) -> {head: [B, T, classes]}``, logits (no softmax);
    padded frames are zero before the heads, so they never influence valid frames.
    """

    def __init__(self, spec: ModelSpec, input_size: int, heads: Mapping[str, int]) -> None:
        super().__init__()
        if not heads:
            raise AsrError("an acoustic model needs at least one output head")
        self.spec = spec
        self.input_size = int(input_size)
        self.head_sizes = {name: int(n) for name, n in heads.items()}
        self.front, size = _mlp_stack(self.input_size, spec.front_mlp, spec.dropout)
        self.encoder = build_encoder(spec, size)
        self.post, size = _mlp_stack(self.encoder.output_size, spec.head_mlp, spec.dropout)
        self.heads = nn.ModuleDict({name: nn.Linear(size, n) for name, n in self.head_sizes.items()})

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        h = x
        for layer in self.front:
            h = layer(h, lengths)
        h = self.encoder(h, lengths)
        for layer in self.post:
            h = layer(h, lengths)
        return {name: head(h) for name, head in self.heads.items()}

    def describe(self) -> dict:
        """What rebuilds this model (plain types): ``AcousticModel.from_description``."""
        return {"model_spec": self.spec.to_dict(), "input_size": self.input_size, "heads": dict(self.head_sizes)}

    @classmethod
    def from_description(cls, d: Mapping) -> AcousticModel:
        """Rebuild (untrained) from :meth:`describe`'s dict, e.g. a checkpoint's."""
        return cls(ModelSpec.from_dict(dict(d["model_spec"])), int(d["input_size"]), dict(d["heads"]))
