"""Decoding and scoring.

``scoring``: PER/WER and the ``decode/<set>/`` files. ``phone_lm``: bigram phone LM,
ARPA and G. ``graph``: the decoding graph of a GMM-HMM (or any pdf-based model) with a
phone bigram. ``gmm_model``: the adapter to :mod:`asr.hmm`. ``gmm_decode``: beam search
with kaldi-decoder. ``gmm_stage``: features and fMLLR adaptation per pipeline stage,
acoustic-scale tuning. ``gmm_recipe``: all of it for the stages of a GMM pipeline.
"""
