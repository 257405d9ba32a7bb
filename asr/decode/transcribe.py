"""Transcribing new audio with a trained checkpoint (``asr-transcribe``).

Each file is one utterance. Its front end repeats the training run's:

* fbank / MFCC models: the recorded extraction options, then CMVN with the statistics of
  the file's speaker (each file is its own speaker unless ``utt2spk`` says otherwise),
  deltas and splicing as recorded;
* fMLLR models: the GMM front end (13 MFCCs, CMVN), tri3's LDA+MLLT, a tri2 first pass
  and a per-speaker transform (:func:`asr.decode.fmllr_adapt.adapt_fmllr`, which falls
  back to a diagonal, offset-only or no transform when a speaker has few frames), then the
  network's CMVN, deltas and splicing of the adapted frames.

Files longer than ``max_segment_seconds`` (default 30 s) are cut into segments at pauses
(:mod:`asr.features.segment`: the quietest 0.3 s of each window, energy-based) after feature
extraction (chunked, so a 30-minute file stays well under 2 GB): each segment is an
utterance of the file's speaker (CMVN and fMLLR statistics still cover the whole file), the
network and the search see each segment alone, and the words are joined in order. Short
files are decoded whole, as before.

The search uses the values the run tuned on its dev set (``results.json`` beside the
checkpoint); without them, defaults are used and said so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchaudio.functional as AF

from asr.data.kaldi_dir import audio_info, load_audio
from asr.decode.grid import GridPoint, decode_grid
from asr.decode.network import Network, greedy_tokens, load_network, log_posteriors
from asr.errors import AsrError
from asr.features.cmvn import cmvn_stats
from asr.features.config import FeatureConfig
from asr.features.extract import compute_features
from asr.features.segment import segment_samples
from asr.features.store import transform_features
from asr.graph.bpe import pieces_to_words
from asr.graph.ngram_lm import read_symbols_by_id
from asr.graph.search import SearchOptions

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".sph", ".ogg", ".aiff", ".aif")
# Used when the run recorded no tuned values (results.json missing).
DEFAULT_POINTS = {"hybrid": GridPoint(1.0, 0.3, 0.0), "ctc": GridPoint(0.0, 1.0, 0.0)}
# Segment frames sent through the network and the search at once (10 minutes at 10 ms):
# bounds the posteriors held (a hybrid's 2,000 pdfs x 30 min would be 1.4 GB).
GROUP_FRAMES = 60000


def list_audio(path: str | os.PathLike) -> list[Path]:
    """An audio file, or the audio files under a folder (recursively, sorted)."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise AsrError(f"audio={p}: no such file or folder")
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise AsrError(f"audio={p}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in it")
    return files


@dataclass
class Transcript:
    """One file's result: ``words`` and ``phones`` (None when that level was not decoded)."""

    path: Path
    words: list[str] | None
    phones: list[str] | None


class Transcriber:
    """A checkpoint with its run's graphs and tuned decoding values.

    Args:
        checkpoint: ``best.pt`` or ``checkpoints/epoch_NNN.pt`` of a finished run.
        ckpt: the loaded checkpoint.
        exp_dir: the run's experiment folder (graphs, ``results.json``).
        num_workers: search worker processes.
        search: beam and max_active.
        fmllr_min_counts: fMLLR models: the (speech-weighted) frames a speaker needs for a
            full, a diagonal and an offset-only transform (fewer: none). The default full
            threshold, 100, was chosen on small's dev set transcribed file by file (WER 33.9 %
            against 37.6 % with the recipe's 300, which gives most single files a diagonal one).
        max_segment_seconds: files longer than this are cut at pauses into segments of at
            most this length, decoded one by one (default 30 s; 0 or less: never cut).
    """

    def __init__(self, checkpoint: Path, ckpt: Mapping[str, Any], exp_dir: Path, num_workers: int = 1,
                 search: SearchOptions | None = None,
                 fmllr_min_counts: tuple[float, float, float] = (100.0, 60.0, 10.0),
                 max_segment_seconds: float = 30.0) -> None:
        self.net: Network = load_network(ckpt, str(checkpoint))
        self.exp_dir = exp_dir
        self.num_workers = num_workers
        self.search = search or SearchOptions(beam=13.0, scale_beam=False)
        self.feats = ckpt["features"]
        lang = Path(ckpt["lang"]["path"])
        if self.net.kind == "hybrid":
            stage = ckpt["alignments"]["stage"]
            gmm_dir = exp_dir / "gmm"  # (with a cache_dir, its stage folders are links into the cache)
            self.graphs = {"phones": gmm_dir / f"graph_{stage}" / "HCLG.fst",
                           "words": gmm_dir / f"graph_words_{stage}" / "HCLG.fst"}
            self.phones = list(self.net.task.phones)
        else:
            self.graphs = {"phones": exp_dir / "graph_ctc" / "phones.fst", "words": exp_dir / "graph_ctc" / "words.fst"}
            self.phones = list(self.net.task.tokens[1:])
        # BPE units: words only, from the word graph (T o L o G), else the greedy pieces.
        self.bpe = self.net.task.units == "bpe"
        if not self.bpe and not self.graphs["phones"].is_file():
            raise AsrError(f"{self.graphs['phones']}: the run's decoding graph is missing; run asr-decode "
                           f"checkpoint={checkpoint} once to build it")
        self.words = read_symbols_by_id(lang / "words.txt") \
            if self.graphs["words"].is_file() and (lang / "words.txt").is_file() else None
        if self.bpe and self.words is None:
            log.warning("%s is missing: words from the greedy BPE pieces, without the word n-gram",
                        self.graphs["words"])
        self.points = self._tuned_points()
        self.fmllr_min_counts = fmllr_min_counts
        self.max_segment_seconds = max_segment_seconds
        self._fmllr = None

    def _tuned_points(self) -> dict[str, GridPoint]:
        import json

        path = self.exp_dir / "results.json"
        kind = self.net.kind
        bias = "prior_scale" if kind == "hybrid" else "blank_penalty"
        if not path.is_file():
            log.warning("%s is missing: decoding with default values (%s), not the ones tuned on dev",
                        path, DEFAULT_POINTS[kind])
            return {"phones": DEFAULT_POINTS[kind], "words": DEFAULT_POINTS[kind]}
        dec = json.loads(path.read_text()).get("decoding", {})
        out = {}
        for level in ("phones", "words"):
            v = dec.get(level)
            out[level] = GridPoint(v[bias], v["acoustic_scale"], v["insertion_penalty"]) if v else DEFAULT_POINTS[kind]
        return out

    # ------------------------------------------------------------------ front end
    def read(self, path: Path) -> np.ndarray:
        """Samples at the model's rate, mono (notes on resampling and mixing)."""
        cfg = self._extraction_config()
        channels = audio_info(path).channels  # unreadable, or a header that disagrees with the file's size
        samples, rate = load_audio(path, mix=True)
        if channels > 1:
            log.info("%s: %d channels mixed to mono", path, channels)
        if not np.all(np.isfinite(samples)):
            raise AsrError(f"{path}: audio contains NaN or Inf samples")
        if rate != cfg.sample_rate:
            log.info("%s: resampled from %d Hz to %d Hz", path, rate, cfg.sample_rate)
            samples = AF.resample(torch.from_numpy(samples), rate, cfg.sample_rate).numpy()
        if len(samples) < cfg.sample_rate * cfg.frame_length / 1000:
            raise AsrError(f"{path}: shorter than one {cfg.frame_length:g} ms frame")
        return samples

    def _extraction_config(self) -> FeatureConfig:
        opts = self.feats["gmm_front_end"] if self.feats["kind"] == "fmllr" else self.feats["options"]
        return FeatureConfig.from_dict(dict(opts))

    def features(self, samples: Mapping[str, np.ndarray], utt2spk: Mapping[str, str]) -> dict[str, np.ndarray]:
        """utt -> [T, F] network input frames of a batch of files (speakers as ``utt2spk``)."""
        ext = self._extraction_config()
        return self.front_end({u: compute_features(x, ext, utt=u).numpy() for u, x in samples.items()}, utt2spk)

    def front_end(self, raw: Mapping[str, np.ndarray], utt2spk: Mapping[str, str]) -> dict[str, np.ndarray]:
        """utt -> [T, F] network input frames from the extracted ones (CMVN per speaker; fMLLR)."""
        net_cfg = FeatureConfig.from_dict(dict(self.feats["options"]))
        ext = self._extraction_config()
        if self.feats["kind"] == "fmllr":
            raw = self._fmllr_frames(_cmvn(raw, utt2spk, ext), utt2spk)
            return _cmvn(raw, utt2spk, net_cfg)
        return _cmvn(raw, utt2spk, net_cfg)

    def _fmllr_frames(self, static: dict[str, np.ndarray], utt2spk: Mapping[str, str]) -> dict[str, np.ndarray]:
        import kaldifst

        from asr.decode.fmllr_adapt import adapt_fmllr
        from asr.hmm.model import GmmHmm
        from asr.hmm.stage_transform import load_stage_transform

        if self._fmllr is None:
            gmm = Path(self.feats["gmm_dir"])
            read = lambda p: kaldifst.StdVectorFst.read(str(p))  # noqa: E731
            for need in (gmm / "tri3" / "final.mdl", gmm / "graph_tri3" / "HCLG.fst", gmm / "graph_tri2" / "HCLG.fst"):
                if not need.is_file():
                    raise AsrError(f"{need}: the fMLLR front end needs it (the run's GMM stages); it is missing")
            self._fmllr = (load_stage_transform(gmm / "tri3"), GmmHmm.load(gmm / "tri3" / "final.mdl"),
                           read(gmm / "graph_tri3" / "HCLG.fst"), GmmHmm.load(gmm / "tri2" / "final.mdl"),
                           read(gmm / "graph_tri2" / "HCLG.fst"))
        transform, tri3, g3, tri2, g2 = self._fmllr
        kinds: dict[str, str] = {}
        full, diag, offset = self.fmllr_min_counts
        adapted = adapt_fmllr(tri3, transform.apply_all(static), utt2spk, g3, SearchOptions(),
                              first_pass=(tri2, g2), kinds=kinds, min_count_full=full, min_count_diag=diag,
                              min_count_offset=offset)
        for spk, kind in sorted(kinds.items()):
            if kind != "full":
                log.info("speaker %s: too few frames for a full fMLLR transform; %s used", spk,
                         "none" if kind == "none" else f"a {kind} one")
        return adapted

    # ------------------------------------------------------------------ decoding
    def transcribe(self, files: Sequence[Path], utt2spk: Mapping[str, str] | None = None,
                   phones: bool = False) -> list[Transcript]:
        """Transcripts of ``files`` (unreadable ones are named in a warning and left out).

        Raises:
            AsrError: no file could be read.

        Args:
            files: audio files; the utterance id of a file is its path.
            utt2spk: file path (as given) -> speaker; default: each file its own speaker.
            phones: also decode phones.
        """
        ext = self._extraction_config()
        shift = int(ext.sample_rate * ext.frame_shift * 0.001)
        max_frames = int(self.max_segment_seconds * 1000 / ext.frame_shift) if self.max_segment_seconds > 0 else 0
        raw: dict[str, np.ndarray] = {}  # segment id -> [frames, dim] extracted features
        segments: dict[str, list[str]] = {}  # file -> its segment ids, in order
        for f in files:
            u = str(f)
            try:
                samples = self.read(f)
            except AsrError as e:
                log.warning("skipped: %s", e)
                continue
            feats = compute_features(samples, ext, utt=u).numpy()  # chunked: long files stay small
            if max_frames and len(feats) > max_frames:
                ranges = _clip(segment_samples(samples, shift, max_frames), len(feats))
                ids = [f"{u}#{k:04d}" for k in range(len(ranges))]
                raw.update((i, feats[s:e]) for i, (s, e) in zip(ids, ranges))
                log.info("%s: %.1f s cut at pauses into %d segments of at most %g s", f, len(samples) / ext.sample_rate,
                         len(ids), self.max_segment_seconds)
            else:
                ids = [u]
                raw[u] = feats
            segments[u] = ids
            del samples
        if len(segments) < len(files):
            log.warning("%d of %d audio file(s) could not be read and were skipped", len(files) - len(segments),
                        len(files))
        if not segments:  # nothing to print: a clean failure, not an empty success
            raise AsrError(f"no audio file could be read ({len(files)} tried; each is named above)")
        spk = {i: (utt2spk or {}).get(u, u) for u, ids in segments.items() for i in ids}
        feats = self.front_end(raw, spk)
        del raw
        if self.bpe:
            if phones:
                log.warning("a CTC model over BPE units has no phones to print; words only")
            levels = ["words"]
        else:
            levels = (["phones"] if phones or self.words is None else []) + (["words"] if self.words else [])
        hyps: dict[str, dict[str, list[str]]] = {level: {} for level in levels}
        failed = dict.fromkeys(levels, 0)
        order = [i for ids in segments.values() for i in ids]
        for group in _groups(order, {i: len(feats[i]) for i in order}, GROUP_FRAMES):
            post = dict(log_posteriors(self.net, ((i, feats[i]) for i in group)))
            if self.bpe and self.words is None:
                for i, lp in post.items():
                    hyps["words"][i] = pieces_to_words(greedy_tokens(lp, self.net.task.tokens))
                levels_searched: list[str] = []
            else:
                levels_searched = levels
            for level in levels_searched:
                res = decode_grid(self.graphs[level], post, self.net.bias, [self.points[level]], self.search,
                                  self.num_workers)
                sym = (lambda i: self.phones[i - 1]) if level == "phones" else (lambda i: self.words[i])
                hyps[level].update((i, [sym(x) for x in labels]) for i, labels in res.hyps[0].items())
                failed[level] += res.failed[0]
            del post
        for level in levels:
            if failed[level]:
                log.warning("%d file(s) or segment(s) gave no %s path (empty transcript)", failed[level], level)

        def joined(level: str, u: str) -> list[str] | None:
            if level not in hyps:
                return None
            if len(segments[u]) == 1:  # a file decoded whole: as before (None when it gave no path)
                return hyps[level].get(u)
            return [w for i in segments[u] for w in hyps[level].get(i, [])]

        return [Transcript(Path(u), joined("words", u), joined("phones", u)) for u in segments]


def _clip(ranges: list[tuple[int, int]], num_frames: int) -> list[tuple[int, int]]:
    """Frame ranges of the energy blocks clipped to the ``num_frames`` feature frames
    (a few fewer: the window's edges); empty ones dropped, the last ending at ``num_frames``."""
    out = [(s, min(e, num_frames)) for s, e in ranges if s < num_frames]
    out[-1] = (out[-1][0], num_frames)
    return out


def _groups(ids: Sequence[str], frames: Mapping[str, int], limit: int) -> list[list[str]]:
    """``ids`` in order, in runs of at most ``limit`` frames (a longer utterance alone)."""
    out: list[list[str]] = []
    total = 0
    for i in ids:
        if not out or total + frames[i] > limit:
            out.append([])
            total = 0
        out[-1].append(i)
        total += frames[i]
    return out


def _cmvn(raw: Mapping[str, np.ndarray], utt2spk: Mapping[str, str], cfg: FeatureConfig) -> dict[str, np.ndarray]:
    """CMVN with per-speaker statistics of these files, then deltas and splicing of ``cfg``."""
    stats: dict[str, np.ndarray] = {}
    for u, x in raw.items():
        s = cmvn_stats(x)
        stats[utt2spk[u]] = stats[utt2spk[u]] + s if utt2spk[u] in stats else s
    return {u: np.ascontiguousarray(transform_features(x, cfg, stats[utt2spk[u]])) for u, x in raw.items()}
