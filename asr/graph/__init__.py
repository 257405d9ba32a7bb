"""Decoding graphs and the one search: lang folder, phone and word n-gram LMs (G with kaldilm),
the HCLG of a pdf-based model, and the beam search over [T, N] log-likelihood matrices.

Imports nothing from ``asr.hmm``, ``asr.decode``, ``asr.train`` or ``asr.recipe``.
"""
