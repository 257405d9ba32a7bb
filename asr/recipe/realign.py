"""Hybrid targets from a trained hybrid network: ``task.targets=<exp_dir or checkpoint>``.

pytorch-kaldi's TIMIT recipes train on the alignments of Kaldi's DNN (``dnn4_pretrain-dbn_dnn_ali``),
not tri3's. The same here: the earlier run's ``best.pt`` scores every frame (log posterior minus
log prior, the scaled likelihood of hybrid decoding), and a Viterbi pass through each
transcript's HMM chain (the GMM stage's transition model and tree, so the pdfs are the same)
gives new frame targets. Each set is a stage ``exp_dir/realign/<set>/`` (``ali.scp``,
``phone_ali.scp``, ``pdf_counts.txt``), rebuilt when the checkpoint or the features change.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch

from asr.data.kaldi_dir import read_data_dir
from asr.errors import AsrError
from asr.features.store import FeatureStore
from asr.hmm.alignment_io import write_alignments
from asr.hmm.model import GmmHmm
from asr.hmm.trainer import align_set
from asr.hmm.training_set import TrainingSet
from asr.nn.acoustic import AcousticModel
from asr.recipe.settings import RecipeSettings
from asr.stage import StageResult, run_stage
from asr.train.checkpoint import load_checkpoint

log = logging.getLogger(__name__)

REALIGN_VERSION = 1
ACOUSTIC_SCALE = 1.0  # as the GMM aligner: emissions unscaled against the transition model


def source_checkpoint(targets: str) -> Path:
    """``task.targets`` as a checkpoint path: an exp dir means its ``best.pt``."""
    path = Path(targets)
    path = path / "best.pt" if path.is_dir() else path
    if not path.is_file():
        raise AsrError(f"task.targets: {path} is not a checkpoint (give a hybrid run's exp_dir or its best.pt)")
    return path


def realign_set(s: RecipeSettings, name: str, data_dir: Path, store: FeatureStore, source: Path) -> StageResult:
    """Align set ``name`` with the hybrid network of checkpoint ``source``."""
    state = load_checkpoint(source)
    if state["task"]["name"] != "hybrid" or "alignments" not in state:
        raise AsrError(f"task.targets: {source} is not a hybrid model (its task is {state['task']['name']!r})")
    # The same front end: the same options (a wrapped scp's own path aside: fMLLR frames live in each run's gmm/).
    same = {k: v for k, v in dataclasses.asdict(store.cfg).items() if k != "scp"}
    theirs = {k: v for k, v in state["features"]["options"].items() if k != "scp"}
    if theirs != same or state["features"]["kind"] != s.features_kind:
        raise AsrError(f"task.targets: {source} was trained on other features ({state['features']['kind']}) "
                       f"than this run's ({s.features_kind}); realign with a model of the same front end")
    gmm_stage = Path(state["alignments"]["dir"])
    st = source.stat()
    key = {"checkpoint": str(source.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
           "epoch": int(state["epoch"]), "acoustic_scale": ACOUSTIC_SCALE, "gmm_stage": str(gmm_stage)}

    def build(tmp: Path) -> dict:
        model = GmmHmm.load(gmm_stage / "final.mdl")
        if model.pdf_map.num_pdfs != state["heads"]["pdf"]:
            raise AsrError(f"{source}: {state['heads']['pdf']} pdfs, but {gmm_stage} has {model.pdf_map.num_pdfs}")
        net = AcousticModel.from_description(state)
        net.load_state_dict(state["model"])
        net.eval()
        priors = state["priors"].float()
        d = read_data_dir(data_dir)
        data = TrainingSet.build({u: store.load(u) for u in d.utts if u in store}, d.phones, model.tm, d.utt2spk)

        @torch.no_grad()
        def scorer(i: int) -> torch.Tensor:
            x = torch.from_numpy(np.ascontiguousarray(data.utt_feats(i)))[None]
            logits = net(x, torch.tensor([x.shape[1]]))["pdf"][0]
            return ACOUSTIC_SCALE * (logits.log_softmax(-1) - priors)

        result = align_set(model, data, batch_size=16, scorer=scorer)
        write_alignments(model, data, result.positions, tmp)
        return {"utterances": len(data.utts) - len(result.failed), "failed": len(result.failed),
                "frames": result.num_frames}

    return run_stage(s.exp_dir / "realign" / name, key, build, name=f"realign/{name}", version=REALIGN_VERSION,
                     inputs=[store.path])
