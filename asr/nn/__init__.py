"""Recurrent acoustic-model layers: RNN, LSTM, GRU, Light GRU (fused), SLi-GRU, MGU."""

from asr.nn.build import CELLS, build_rnn
from asr.nn.masked_batchnorm import MaskedBatchNorm1d
from asr.nn.mlp import MLP, splice_frames
from asr.nn.spec import ModelSpec, build_encoder, count_parameters

__all__ = ["CELLS", "build_rnn", "MaskedBatchNorm1d"]
__all__ += ["MLP", "splice_frames", "ModelSpec", "build_encoder", "count_parameters"]
