"""asr: a Kaldi-free toolkit for hybrid DNN-HMM and CTC speech recognition."""

__version__ = "0.1.0"
