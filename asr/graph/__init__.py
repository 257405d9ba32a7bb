"""Decoding graphs with kaldifst/kaldilm: phone bigram LM (G) and the HCLG for GMM/hybrid decoding."""
