"""A small training run on synthetic features, run as a subprocess by tests/test_train_loop.py.

    python tests/train_job.py DATA_DIR EXP_DIR EPOCHS [--kill-in-epoch N] [--kill-in-save N]

DATA_DIR holds ``feats.ark``/``feats.scp`` and ``labels.json`` (see ``write_synthetic``).
``--kill-in-epoch N`` sends SIGKILL to this process in the middle of epoch N's training pass
(after epoch N-1's checkpoint exists); ``--kill-in-save N`` kills it half-way through writing
``checkpoints/epoch_NNN.pt``. Under ``torchrun`` every rank runs the same code.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import kaldiio
import numpy as np
import torch


def write_synthetic(out: Path, num_utts: int = 48, dim: int = 6, seed: int = 0) -> None:
    """Features [T, dim] of ``num_utts`` utterances and a learnable frame label (argmax of the first 3 dims)."""
    rng = np.random.default_rng(seed)
    mats, labels = {}, {}
    for i in range(num_utts):
        utt = f"spk{i % 4}_u{i:02d}"
        x = rng.normal(size=(int(rng.integers(20, 70)), dim)).astype(np.float32)
        mats[utt], labels[utt] = x, np.argmax(x[:, :3], axis=1).tolist()
    out.mkdir(parents=True, exist_ok=True)
    kaldiio.save_ark(str(out / "feats.ark"), mats, scp=str(out / "feats.scp"))
    (out / "labels.json").write_text(json.dumps(labels))


def datasets(data: Path, store_dir: Path):
    from asr.data.kaldi_dir import DataDir
    from asr.features import FeatureConfig, FeatureDataset, compute_feature_store

    labels = json.loads((data / "labels.json").read_text())
    d = DataDir()
    for utt in labels:
        d.wav[utt], d.utt2spk[utt] = "unused.wav", utt.split("_")[0]
    cfg = FeatureConfig(kind="kaldi_scp", scp=str(data / "feats.scp"), cmvn="none")
    store = compute_feature_store(d, store_dir, cfg, progress=False)
    utts = sorted(labels)
    return store, FeatureDataset(store, alignments=labels, utts=utts[8:]), FeatureDataset(store, alignments=labels,
                                                                                          utts=utts[:8])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("data", type=Path)
    p.add_argument("exp", type=Path)
    p.add_argument("epochs", type=int)
    p.add_argument("--kill-in-epoch", type=int, default=0)
    p.add_argument("--kill-in-save", type=int, default=0)
    p.add_argument("--cell", default="ligru")
    args = p.parse_args()
    torch.set_num_threads(1)
    from asr.nn.spec import ModelSpec
    from asr.train import checkpoint as ckpt
    from asr.train.loop import TrainerConfig, run_training
    from asr.train.optim import OptimConfig
    from asr.train.tasks import HybridTask

    rank = os.environ.get("RANK", "0")
    store, train, dev = datasets(args.data, args.exp.parent / f"store_{args.exp.name}_{rank}")
    if args.kill_in_epoch:
        done_before = ckpt.epoch_path(args.exp, args.kill_in_epoch - 1)
        calls = {"n": 0}
        original = type(train).__getitem__

        def getitem(self, index):  # the 13th item read once epoch N-1 is saved: mid-epoch N
            if args.kill_in_epoch == 1 or done_before.exists():
                calls["n"] += 1
                if calls["n"] == 13:
                    os.kill(os.getpid(), signal.SIGKILL)
            return original(self, index)

        type(train).__getitem__ = getitem
    if args.kill_in_save:
        target = ckpt.epoch_path(args.exp, args.kill_in_save).name
        real_save = torch.save

        def half_save(obj, f, *a, **k):
            name = getattr(f, "name", str(f))
            if target in str(name):
                import io

                buf = io.BytesIO()
                real_save(obj, buf, *a, **k)
                f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return real_save(obj, f, *a, **k)

        torch.save = half_save
    spec = ModelSpec(cell=args.cell, num_layers=2, hidden_size=12, bidirectional=True, dropout=0.1,
                     cell_options={"recurrent_dropout": 0.1} if args.cell == "ligru" else {})
    task = HybridTask([0, 1, 1], ["a", "b"], 0.5)
    optim = OptimConfig(lr=0.004, epochs=args.epochs, batch_size=6)
    r = run_training(spec, store.dim, task, optim, train, dev, args.exp, {"recipe": "train_job"},
                     TrainerConfig(progress=False, seed=7))
    print(json.dumps({"best": r.best, "best_dev_err": r.best_dev_err}))


if __name__ == "__main__":
    sys.exit(main())
