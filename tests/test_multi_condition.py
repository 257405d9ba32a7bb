"""Multi-condition training on tiny mini-TIMIT: contaminated copies of the training set join the
clean one under its alignments, with their own per-speaker fMLLR, and babble voices that the
test sets never use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest

BIN = Path(sys.executable).parent


def _voices(data_dir: Path) -> set[str]:
    info = json.loads((data_dir / "contamination.json").read_text())["utterances"]
    return {b.split("_")[0] for u in info.values() for b in u["babble"]}


@pytest.mark.slow
def test_copies_train_with_the_clean_alignments_and_their_own_fmllr(mini_timit_root: Path, tmp_path: Path) -> None:
    exp = tmp_path / "mc"
    cmd = [str(BIN / "asr-train"), "recipe=timit_ligru", f"data.root={mini_timit_root}", f"exp_dir={exp}",
           "task/gmm=mini_timit_tiny", "model.num_layers=1", "model.hidden_size=16", "optim.epochs=1",
           "train.progress=false", "num_workers=1", "data.test_sets=[test,test_babble_snr10]",
           "data.multi_condition=[babble_snr5,reverb_t60_400]", "task.gmm_decode_stages=[tri3]",
           "decode.acoustic_scales=[0.3]", "decode.prior_scales=[1.0]", "decode.phone_penalties=[0.0]",
           "decode.word_penalties=[0.0]", "decode.num_workers=1", "decode.progress=false"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    data = exp / "data"
    clean = kaldiio.load_scp(str(exp / "gmm" / "tri3" / "fmllr_feats.scp"))
    utts = sorted(clean)
    for copy in ("train_babble_snr5", "train_reverb_t60_400"):
        feats = kaldiio.load_scp(str(exp / "gmm" / f"fmllr_{copy}" / "fmllr_feats.scp"))
        assert sorted(feats) == utts  # every copy utterance kept: contamination keeps the frame count
        assert all(feats[u].shape == clean[u].shape for u in utts)
        assert not np.allclose(feats[utts[0]], clean[utts[0]])  # other audio, other transforms
        trans = kaldiio.load_scp(str(exp / "gmm" / f"fmllr_{copy}" / "trans.scp"))
        assert set(trans) == set(kaldiio.load_scp(str(exp / "gmm" / "tri3" / "trans.scp")))  # per speaker
    # Babble of the copies and of the test set: disjoint voices, never the target's own speaker.
    train_voices, test_voices = _voices(data / "train_babble_snr5"), _voices(data / "test_babble_snr10")
    assert train_voices and test_voices and not train_voices & test_voices
    for utt, u in json.loads((data / "train_babble_snr5" / "contamination.json").read_text())["utterances"].items():
        assert utt.split("_")[0] not in {b.split("_")[0] for b in u["babble"]}
    # The network saw the clean set and both copies: three times the clean frames.
    history = [json.loads(line) for line in (exp / "history.jsonl").read_text().splitlines() if line.strip()]
    assert history[0]["train_frames"] == 3 * sum(len(x) for x in clean.values())
    res = json.loads((exp / "results.json").read_text())
    assert set(res["test_sets"]) == {"test", "test_babble_snr10"} and list(res["gmm"]) == ["tri3"]
    ckpt_meta = __import__("torch").load(exp / "best.pt", map_location="cpu", weights_only=False)
    assert ckpt_meta["train_copies"] == ["train_babble_snr5", "train_reverb_t60_400"]
