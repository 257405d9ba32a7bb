"""The feature store of one data set: Kaldi ark/scp files plus per-speaker CMVN stats.

Layout of ``<exp>/features/<set>/``::

    feats.ark, feats.scp    raw features (float32 matrices), one per utterance
    cmvn.ark, cmvn.scp      per-speaker CMVN stats, Kaldi's [2, dim + 1] float64 layout
    utt2num_frames, utt2spk Kaldi tables
    config.json             options and extraction summary
    done.json               written last (:mod:`asr.stage`): fingerprint of options and inputs

Kaldi tools read these files directly (``copy-feats scp:feats.scp ...``). With
``kind=kaldi_scp`` the store wraps an existing Kaldi ``feats.scp`` instead: its
``feats.scp`` points into the user's ark files and nothing is recomputed.
CMVN, deltas and splicing are applied when reading (:meth:`FeatureStore.load`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Iterator, NamedTuple

import kaldiio
import numpy as np
import torch
from tqdm import tqdm

from asr.data.kaldi_dir import DataDir, read_data_dir, read_table, write_table
from asr.errors import AsrError
from asr.features.cmvn import apply_cmvn, cmvn_stats
from asr.features.config import TRANSFORM_FIELDS, FeatureConfig
from asr.features.deltas import add_deltas
from asr.features.extract import extract_utterance
from asr.features.splice import splice_frames
from asr.stage import read_done, run_stage

log = logging.getLogger(__name__)

STORE_VERSION = 2  # 2: completion marked by done.json (asr.stage)
_DATA_DIR_FILES = ("wav.scp", "segments", "utt2spk")
_MAX_LISTED = 10  # skipped utterances named one by one in the log


class _Result(NamedTuple):
    """One utterance's outcome; ``feats`` is None when it was skipped for ``error``."""

    utt: str
    feats: np.ndarray | None
    error: str | None = None
    resampled: bool = False
    seconds: float = 0.0
    location: str | None = None  # wrapped scp: where the features already are
    channels: int = 1  # of the audio file (channel 0 is used)


class FeatureStore:
    """Read access to a store written by :func:`compute_feature_store`.

    Args:
        path: the store directory.
        cfg: options whose transform fields (cmvn, deltas, splice_left/right) override
            the ones recorded in the store; extraction fields are ignored.

    Attributes:
        utts: sorted utterance ids with features.
        num_frames: utt -> frames.
        utt2spk: utt -> speaker.
        raw_dim: stored feature dim; ``dim`` is the dim after transforms.
        info: the parsed ``config.json`` (options, fingerprint, summary).
    """

    def __init__(self, path: str | os.PathLike, cfg: FeatureConfig | None = None) -> None:
        self.path = Path(path)
        meta = self.path / "config.json"
        if not meta.is_file():
            raise AsrError(f"{self.path}: not a feature store (no config.json); run feature extraction first")
        self.info = json.loads(meta.read_text())
        options = dict(self.info["options"])
        if cfg is not None:
            options.update({k: getattr(cfg, k) for k in TRANSFORM_FIELDS})
        self.cfg = FeatureConfig.from_dict(options)
        self.raw_dim = int(self.info["raw_dim"])
        self.num_frames = {k: int(v) for k, v in read_table(self.path / "utt2num_frames").items()}
        self.utt2spk = read_table(self.path / "utt2spk")
        self.utts = sorted(self.num_frames)
        self._feats = read_table(self.path / "feats.scp")  # utt -> "ark_path:offset"
        built_in = self.info.get("store_dir")
        if built_in and Path(built_in) != self.path.absolute() and not self.info.get("source_scp"):
            # The store was moved: its scp still names the arks at the old place.
            old, new = f"{built_in}{os.sep}", f"{self.path.absolute()}{os.sep}"
            self._feats = {u: new + v[len(old):] if v.startswith(old) else v for u, v in self._feats.items()}
        self._cmvn = dict(kaldiio.load_ark(str(self.path / "cmvn.ark")))

    @property
    def dim(self) -> int:
        """Feature dim after deltas and splicing."""
        c = self.cfg
        return self.raw_dim * (c.deltas + 1) * (c.splice_left + 1 + c.splice_right)

    def __len__(self) -> int:
        return len(self.utts)

    def __contains__(self, utt: str) -> bool:
        return utt in self.num_frames

    def raw(self, utt: str) -> np.ndarray:
        """Stored features of ``utt``: [frames, raw_dim] float32."""
        if utt not in self.num_frames:
            raise AsrError(f"{self.path}: no features for utterance '{utt}'")
        return np.asarray(kaldiio.load_mat(self._feats[utt]), dtype=np.float32)

    def cmvn_stats(self, speaker: str) -> np.ndarray:
        """Kaldi CMVN stats of ``speaker``: [2, raw_dim + 1] float64."""
        return self._cmvn[speaker]

    def load(self, utt: str) -> np.ndarray:
        """Features of ``utt`` with CMVN, deltas and splicing applied.

        Returns:
            [frames, dim] float32 (splicing returns a read-only strided view).
        """
        stats = self._cmvn[self.utt2spk[utt]] if self.cfg.cmvn != "none" else None
        return transform_features(self.raw(utt), self.cfg, stats)


def transform_features(raw: np.ndarray, cfg: FeatureConfig, stats: np.ndarray | None) -> np.ndarray:
    """CMVN (with the speaker's stats), deltas, splicing and subsampling of ``cfg`` applied to
    [frames, raw_dim] frames; returns [ceil(frames / subsample), dim] float32 (splicing alone
    returns a read-only strided view; frame ``i`` of the result is spliced frame ``i * subsample``).

    ``stats`` ([2, raw_dim + 1] Kaldi CMVN stats) are needed unless ``cfg.cmvn`` is ``none``.
    """
    feats = raw
    if cfg.cmvn != "none":
        feats = apply_cmvn(feats, stats, norm_vars=cfg.cmvn == "speaker_meanvar")
    feats = add_deltas(feats, order=cfg.deltas)
    feats = splice_frames(feats, cfg.splice_left, cfg.splice_right)
    # A copy when subsampled: a strided view of the spliced view would reach torch read-only.
    return np.ascontiguousarray(feats[:: cfg.subsample]) if cfg.subsample > 1 else feats


def transformed_frames(num_frames: int, cfg: FeatureConfig) -> int:
    """Frames :func:`transform_features` returns for ``num_frames`` stored frames."""
    return -(-num_frames // cfg.subsample)


def compute_feature_store(
    data_dir: str | os.PathLike | DataDir,
    out_dir: str | os.PathLike,
    cfg: FeatureConfig,
    num_workers: int = 2,
    progress: bool = True,
    inputs: Sequence[str | os.PathLike] = (),
    allow_pipes: bool = False,
) -> FeatureStore:
    """Extract (or wrap) the features of a data set into ``out_dir``, unless up to date.

    A stage of :mod:`asr.stage`: the store is reused when its ``done.json`` records the
    same extraction options, utterances (ids, speakers, audio paths, segments), sizes and
    modification times of the input files (audio, data-dir tables, or the wrapped scp and
    its arks) and upstream build ids (the data dir's, when it is a stage, and ``inputs``).
    Otherwise it is rebuilt in a temp dir beside ``out_dir`` and renamed into place, so a
    crash never leaves a half-written store.

    Args:
        data_dir: Kaldi data dir (path or :class:`DataDir`).
        out_dir: the store directory, conventionally ``<exp>/features/<set>``.
        cfg: options; only extraction fields matter here (transforms apply on reading).
        num_workers: extraction processes (1 extracts in this process).
        progress: show a progress bar.
        inputs: more upstream stage folders the store depends on (e.g. the fMLLR stage
            whose ``feats.scp`` a ``kaldi_scp`` store wraps).
        allow_pipes: a data dir (given as a path) may have ``wav.scp`` entries that are
            shell pipelines, run to read the audio (``data.allow_pipes``); else refused.

    Returns:
        The store, with the transforms of ``cfg``.

    Raises:
        AsrError: no utterance could be processed, or the wrapped scp is unusable.
            Single bad utterances are skipped, logged and counted in ``config.json``.
    """
    out_dir = Path(out_dir).absolute()
    d = data_dir if isinstance(data_dir, DataDir) else read_data_dir(data_dir, allow_pipes=allow_pipes)
    if cfg.kind == "kaldi_scp":
        scp = Path(str(cfg.scp).replace("{set}", out_dir.name)).resolve()
        files = _scp_inputs(scp)
    else:
        scp = None
        files = sorted({d.audio_path(u) for u in d.utts})
    upstream = list(inputs)
    if not isinstance(data_dir, DataDir):
        # Resolved: a data dir reached through a stage-cache link counts where it lies.
        files += [str(Path(data_dir).resolve() / n) for n in _DATA_DIR_FILES if (Path(data_dir) / n).is_file()]
        if read_done(data_dir) is not None:
            upstream.append(data_dir)
    key = {"options": cfg.extraction_options(), "utterances": _fingerprint(d, scp),
           "files": file_stats_fingerprint(files)}

    def build(tmp: Path) -> dict:
        start = time.perf_counter()
        if scp is None:
            results = _extract_all(d, cfg, num_workers, progress)
        else:
            results = _read_wrapped(d, scp, progress)
        try:
            summary = _write_store(tmp, d, results)
        finally:
            results.close()  # a failed write: the progress bar ends its line (and workers stop) before the error
        summary["wall_seconds"] = round(time.perf_counter() - start, 3)
        meta = {"version": STORE_VERSION, "options": asdict(cfg), "source_scp": str(scp) if scp else None,
                "store_dir": str(tmp), **summary}
        (tmp / "config.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        _log_summary(out_dir, summary)
        return {k: v for k, v in summary.items() if k != "skipped"}

    run_stage(out_dir, key, build, name=f"{out_dir.parent.name}/{out_dir.name}", version=STORE_VERSION,
              inputs=upstream)
    return FeatureStore(out_dir, cfg)


def _extract_all(d: DataDir, cfg: FeatureConfig, num_workers: int, progress: bool) -> Iterator[_Result]:
    """Yield each utterance's result, in sorted utterance order."""
    utts = d.utts
    with tqdm(total=len(utts), desc="features", unit="utt", disable=not progress) as bar:
        if num_workers <= 1:
            _WORKER["d"], _WORKER["cfg"] = d, cfg  # in this process: leave its thread count alone
            for utt in utts:
                yield _extract_one(utt)
                bar.update()
        else:
            # fork starts in milliseconds (spawn re-imports torch: seconds per worker); workers
            # run single-threaded, as torch's own DataLoader workers do after a fork.
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            ctx = multiprocessing.get_context(method)
            with ctx.Pool(num_workers, initializer=_init_worker, initargs=(d, cfg)) as pool:
                for result in pool.imap(_extract_one, utts, chunksize=8):
                    yield result
                    bar.update()


_WORKER: dict = {}


def _init_worker(d: DataDir, cfg: FeatureConfig) -> None:
    torch.set_num_threads(1)  # one core per worker; workers give the parallelism
    _WORKER["d"], _WORKER["cfg"] = d, cfg


def _extract_one(utt: str) -> _Result:
    try:
        x = extract_utterance(_WORKER["d"], utt, _WORKER["cfg"])
    except AsrError as e:
        return _Result(utt, None, str(e))
    return _Result(utt, x.feats, None, x.resampled, x.seconds, channels=x.channels)


def _read_wrapped(d: DataDir, scp: Path, progress: bool) -> Iterator[_Result]:
    """Yield the wrapped scp's features (with their locations), in sorted utterance order."""
    table = _read_scp(scp)
    with tqdm(d.utts, desc="features (scp)", unit="utt", disable=not progress) as utts:
        for utt in utts:
            if utt not in table:
                yield _Result(utt, None, f"utterance '{utt}': not in {scp}")
                continue
            try:
                feats = np.asarray(kaldiio.load_mat(table[utt]), dtype=np.float32)
            except Exception as e:  # kaldiio raises many types for bad arks
                yield _Result(utt, None, f"utterance '{utt}': cannot read its features via {scp} ({e})")
                continue
            if feats.ndim != 2 or feats.shape[0] == 0 or not np.all(np.isfinite(feats)):
                yield _Result(utt, None, f"utterance '{utt}': features in {scp} are empty, not a matrix, or not finite")
                continue
            yield _Result(utt, feats, location=table[utt])


def _read_scp(scp: Path) -> dict[str, str]:
    """utt -> rxspecifier with the ark path made absolute.

    Kaldi scps usually hold paths relative to the recipe dir (``fmllr/raw.1.ark:14``):
    they are looked up from the working dir, then from each parent of the scp's dir.
    """
    if not scp.is_file():
        raise AsrError(f"features.scp: {scp} not found")
    table: dict[str, str] = {}
    bases = [Path.cwd(), scp.parent, *scp.parent.parents]
    with open(scp, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split(None, 1)
            if not parts:
                continue
            if len(parts) != 2:
                raise AsrError(f"{scp}:{lineno}: expected 'utt ark_path:offset'")
            utt, spec = parts[0], parts[1].strip()
            if spec.endswith("|"):
                raise AsrError(f"{scp}:{lineno}: '{utt}' is a shell pipeline ('cmd |'); piped feature entries "
                               "are not run, give ark files (copy-feats ... ark,scp:feats.ark,feats.scp)")
            path, sep, offset = spec.rpartition(":")
            if not sep or not offset.isdigit():
                path, sep, offset = spec, "", ""
            table[utt] = str(_resolve(path, bases, scp, lineno)) + sep + offset
    return table


def _resolve(path: str, bases: list[Path], scp: Path, lineno: int) -> Path:
    if os.path.isabs(path):
        candidates = [Path(path)]
    else:
        candidates = [base / path for base in bases]
    for c in candidates:
        if c.is_file():
            return c.absolute()
    raise AsrError(f"{scp}:{lineno}: ark file '{path}' not found (looked from the working dir and the scp's parents)")


def _write_store(tmp: Path, d: DataDir, results: Iterator[_Result]) -> dict:
    """Write arks/scps/tables for ``results`` into ``tmp``; scp entries name ``tmp``, which
    :func:`asr.stage.run_stage` retargets to the store's final place."""
    final_ark = tmp / "feats.ark"
    wrapped = False
    frames: dict[str, int] = {}
    speaker_stats: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    num_resampled, num_multichannel, audio_seconds, raw_dim = 0, 0, 0.0, None
    with open(tmp / "feats.ark", "wb") as ark, open(tmp / "feats.scp", "w") as scp:
        for utt, feats, error, resampled, seconds, location, channels in results:
            if feats is None:
                skipped[utt] = error
                if len(skipped) <= _MAX_LISTED:
                    log.warning("features: skipping %s", error)
                continue
            if raw_dim is None:
                raw_dim = feats.shape[1]
            elif feats.shape[1] != raw_dim:
                skipped[utt] = f"utterance '{utt}': feature dim {feats.shape[1]}, others have {raw_dim}"
                continue
            if location is not None:  # wrapped scp: point at the user's ark, copy nothing
                wrapped = True
                scp.write(f"{utt} {location}\n")
            else:
                scp.write(f"{utt} {final_ark}:{ark.tell() + len(utt.encode()) + 1}\n")
                kaldiio.save_ark(ark, {utt: feats})
            frames[utt] = feats.shape[0]
            spk = d.utt2spk[utt]
            stats = cmvn_stats(feats)
            speaker_stats[spk] = speaker_stats[spk] + stats if spk in speaker_stats else stats
            num_resampled += bool(resampled)
            num_multichannel += channels > 1
            audio_seconds += seconds
    if wrapped:
        (tmp / "feats.ark").unlink()
    if not frames:
        first = next(iter(skipped.values()), "the data dir has no utterances")
        raise AsrError(f"features: no utterance could be processed ({first})")
    with open(tmp / "cmvn.ark", "wb") as ark, open(tmp / "cmvn.scp", "w") as scp:
        for spk in sorted(speaker_stats):
            scp.write(f"{spk} {tmp / 'cmvn.ark'}:{ark.tell() + len(spk.encode()) + 1}\n")
            kaldiio.save_ark(ark, {spk: speaker_stats[spk]})
    write_table(tmp / "utt2num_frames", frames)
    write_table(tmp / "utt2spk", {u: d.utt2spk[u] for u in frames})
    return {
        "raw_dim": raw_dim, "num_utts": len(frames), "num_frames": sum(frames.values()),
        "num_skipped": len(skipped), "skipped": skipped, "num_resampled": num_resampled,
        "num_multichannel": num_multichannel,
        "audio_seconds": round(audio_seconds, 3), "num_speakers": len(speaker_stats),
    }


def _log_summary(out_dir: Path, s: dict) -> None:
    log.info(
        "features: %d utterances (%d frames) in %s, %.1f s; %d skipped, %d resampled",
        s["num_utts"], s["num_frames"], out_dir, s["wall_seconds"], s["num_skipped"], s["num_resampled"],
    )
    if s["num_skipped"] > _MAX_LISTED:
        log.warning("features: %d utterances skipped in all (see %s)", s["num_skipped"], out_dir / "config.json")
    if s["num_resampled"]:
        log.warning(
            "features: resampled %d utterances whose sample rate differs from features.sample_rate",
            s["num_resampled"],
        )
    if s["num_multichannel"]:
        log.warning("features: %d utterances of multi-channel audio: channel 0 used (as Kaldi does)",
                    s["num_multichannel"])


def _fingerprint(d: DataDir, scp: Path | None) -> str:
    """Hash of the utterances, speakers and sources the store is made from."""
    h = hashlib.sha256(str(scp).encode())
    for utt in d.utts:
        seg = d.segments.get(utt)
        region = f"{seg.start} {seg.end}" if seg else ""
        h.update(f"{utt} {d.utt2spk[utt]} {d.audio_path(utt)} {region}\n".encode())
    return h.hexdigest()


def file_stats_fingerprint(paths: list[str]) -> str:
    """Hash of the size and modification time of each file (a vanished file counts too)."""
    h = hashlib.sha256()
    for path in paths:
        try:
            st = os.stat(path)
            h.update(f"{path} {st.st_size} {st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{path} missing\n".encode())
    return h.hexdigest()


def _scp_inputs(scp: Path) -> list[str]:
    """The scp file and the ark files its entries point into."""
    arks = {spec.rpartition(":")[0] or spec for spec in _read_scp(scp).values()}
    return sorted(arks | {str(scp)})
