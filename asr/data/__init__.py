"""Corpora, data directories, mini-TIMIT synthesis, contamination, phone sets."""
