"""Decoders and scoring (the search itself is :mod:`asr.graph.search`, which knows no model).

``scoring``: PER/WER and the ``decode/<set>/`` files (alignment by jiwer). ``tuning``: the
one dev-set sweep over decoding values. ``gmm_model``: the adapter to :mod:`asr.hmm`.
``gmm_decode``: GMM-HMM decoding, tuning and scoring of sets. ``fmllr_adapt``: test-time
fMLLR without transcripts (tri2 first pass, per-speaker transforms).
"""
