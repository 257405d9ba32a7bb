"""Kaldi-compatible features: fbank/MFCC, CMVN, deltas, splicing, a Kaldi ark/scp store
and a length-bucketed training data loader."""

from asr.features.cmvn import apply_cmvn, cmvn_stats
from asr.features.config import FeatureConfig
from asr.features.deltas import add_deltas
from asr.features.kaldi_compat import fbank, mfcc
from asr.features.loader import Batch, BucketBatchSampler, FeatureDataset, build_data_loader, collate
from asr.features.splice import splice_frames
from asr.features.store import FeatureStore, compute_feature_store

__all__ = [
    "Batch", "BucketBatchSampler", "FeatureConfig", "FeatureDataset", "FeatureStore",
    "add_deltas", "apply_cmvn", "build_data_loader", "cmvn_stats", "collate",
    "compute_feature_store", "fbank", "mfcc", "splice_frames",
]
