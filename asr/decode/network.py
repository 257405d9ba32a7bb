"""A trained network as score matrices for the search: checkpoint -> model -> log-posteriors.

The one search (:mod:`asr.graph.search`) reads a [T, N] matrix per utterance. A network
gives log-posteriors; decoding turns them into search scores with one bias vector:

* hybrid: ``log p(pdf | x) - prior_scale * log p(pdf)`` (scaled likelihoods, as Kaldi's
  ``nnet-forward --class-frame-counts`` / pytorch-kaldi's ``forward_with_priors``);
* CTC: ``log p(token | x)`` with ``blank_penalty`` subtracted from the blank's column,
  so a larger penalty makes blank frames dearer and emits more tokens.

Both are ``logpost - scale * bias`` (:func:`scores`): ``bias`` is the log-prior vector or
the blank's indicator, ``scale`` the prior scale or the blank penalty.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from asr.decode.grid import scores  # noqa: F401 - the search scores of a network, see above
from asr.errors import AsrError
from asr.nn.acoustic import AcousticModel
from asr.train.tasks import CtcTask, HybridTask, task_from_description

log = logging.getLogger(__name__)


@dataclass
class Network:
    """A checkpoint's model, in eval mode, with what decoding needs from the checkpoint.

    Attributes:
        model: the acoustic model.
        task: its task (hybrid: pdfs; CTC: tokens, blank first).
        head: the head decoded (``pdf`` or ``ctc``).
        bias: [C] the vector :func:`scores` scales: log-priors (hybrid) or the blank's
            indicator (CTC).
        checkpoint: the checkpoint's other entries (features, lang, alignments, ...).
    """

    model: AcousticModel
    task: HybridTask | CtcTask
    head: str
    bias: np.ndarray
    checkpoint: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.task.name

    @property
    def num_classes(self) -> int:
        return len(self.bias)


def load_network(ckpt: Mapping[str, Any], where: str = "checkpoint") -> Network:
    """Rebuild the network of a loaded checkpoint (:func:`asr.train.checkpoint.load_checkpoint`).

    Raises:
        AsrError: missing entries (naming them and ``where``), or a hybrid checkpoint
            without priors, or priors that do not match the pdf head.
    """
    missing = [k for k in ("model", "model_spec", "input_size", "heads", "task") if k not in ckpt]
    if missing:
        raise AsrError(f"{where}: not a trained asr model (no {', '.join(missing)})")
    task = task_from_description(ckpt["task"])
    model = AcousticModel.from_description(ckpt)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise AsrError(f"{where}: its weights do not fit its model description ({first})") from None
    model.eval()
    if isinstance(task, HybridTask):
        priors = ckpt.get("priors")
        if priors is None:
            raise AsrError(f"{where}: a hybrid model without pdf priors; it cannot be decoded")
        bias = np.asarray(torch.as_tensor(priors, dtype=torch.float32).numpy())
        head = "pdf"
        if len(bias) != task.num_pdfs:
            raise AsrError(f"{where}: {len(bias)} priors for {task.num_pdfs} pdfs")
    else:
        bias = np.zeros(len(task.tokens), dtype=np.float32)
        bias[0] = 1.0  # the blank
        head = "ctc"
    return Network(model, task, head, bias, dict(ckpt))


def log_posteriors(net: Network, feats: Iterable[tuple[str, np.ndarray]], batch_size: int = 8,
                   device: str = "cpu") -> Iterator[tuple[str, np.ndarray]]:
    """The network's log-posteriors of utterances, computed in batches.

    Args:
        net: the network.
        feats: (utt, [T, F] features as the network was trained on) pairs.
        batch_size: utterances per forward pass (padded; padding never changes valid frames).
        device: torch device.

    Yields:
        (utt, [T, C] float32 natural-log posteriors), in the order given.

    Raises:
        AsrError: features of the wrong width, naming the utterance.
    """
    model = net.model.to(device)
    want = model.input_size
    chunk: list[tuple[str, np.ndarray]] = []

    def run(items: list[tuple[str, np.ndarray]]) -> Iterator[tuple[str, np.ndarray]]:
        lengths = torch.tensor([len(x) for _, x in items], dtype=torch.int64)
        x = torch.zeros(len(items), int(lengths.max()), want)
        for i, (_, f) in enumerate(items):
            x[i, : len(f)] = torch.from_numpy(np.asarray(f, dtype=np.float32))
        with torch.inference_mode():
            out = model(x.to(device), lengths.to(device))[net.head].float().log_softmax(-1).cpu().numpy()
        for i, (utt, f) in enumerate(items):
            yield utt, out[i, : len(f)]

    for utt, f in feats:
        if f.ndim != 2 or f.shape[1] != want:
            raise AsrError(f"utterance '{utt}': features of shape {tuple(f.shape)}, the network expects "
                           f"[frames, {want}]")
        if len(f) == 0:
            raise AsrError(f"utterance '{utt}': no frames")
        chunk.append((utt, f))
        if len(chunk) == batch_size:
            yield from run(chunk)
            chunk = []
    if chunk:
        yield from run(chunk)


def greedy_tokens(log_post: np.ndarray, tokens: list[str]) -> list[str]:
    """Best-path CTC of one [T, C] matrix: the frame-wise best tokens, repeats merged,
    blanks (token 0) removed."""
    best = log_post.argmax(-1)
    keep = np.concatenate([[True], best[1:] != best[:-1]]) & (best != 0)
    return [tokens[i] for i in best[keep]]
