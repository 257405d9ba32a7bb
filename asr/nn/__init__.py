"""Recurrent acoustic-model layers: RNN, LSTM, GRU, Light GRU (fused), SLi-GRU, MGU."""

from asr.nn.build import CELLS, build_rnn
from asr.nn.masked_batchnorm import MaskedBatchNorm1d

__all__ = ["CELLS", "build_rnn", "MaskedBatchNorm1d"]
