"""A GMM-HMM acoustic model: transition model, (phone, state, context) -> pdf map, GMMs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from asr.errors import AsrError
from asr.hmm.gmm import DiagGmmSet
from asr.hmm.topology import TransitionModel


class PdfMap(Protocol):
    """Gives the pdf of every state of an utterance's chain."""

    num_pdfs: int

    def chain_pdfs(self, tm: TransitionModel, phone_ids: np.ndarray) -> np.ndarray:
        """[S] pdf id of each state of the chain of ``phone_ids``."""
        ...

    def phone_pdfs(self, tm: TransitionModel, phone: int) -> np.ndarray:
        """Sorted pdf ids that the states of ``phone`` use, in any context."""
        ...

    def state_dict(self) -> dict: ...


class MonophonePdfMap:
    """One pdf per (phone, state): the pdf id is the HMM-state id."""

    kind = "mono"

    def __init__(self, num_pdfs: int) -> None:
        self.num_pdfs = num_pdfs

    def chain_pdfs(self, tm: TransitionModel, phone_ids: np.ndarray) -> np.ndarray:
        return tm.chain(phone_ids)

    def phone_pdfs(self, tm: TransitionModel, phone: int) -> np.ndarray:
        return tm.state_offset[phone] + np.arange(tm.num_states[phone])

    def state_dict(self) -> dict:
        return {"kind": self.kind, "num_pdfs": self.num_pdfs}

    @classmethod
    def from_state_dict(cls, d: dict) -> "MonophonePdfMap":
        return cls(int(d["num_pdfs"]))


@dataclass
class UtteranceChain:
    """The linear state chain of one transcript.

    Attributes:
        hmm_states: [S] HMM-state id of each chain state.
        pdfs: [S] pdf id of each chain state.
        phone_index: [S] index into the transcript of the phone owning each chain state.
    """

    hmm_states: np.ndarray
    pdfs: np.ndarray
    phone_index: np.ndarray


@dataclass
class GmmHmm:
    """Transition model + pdf map + one diagonal GMM per pdf."""

    tm: TransitionModel
    pdf_map: PdfMap
    gmm: DiagGmmSet
    # Chains depend only on the topology and the pdf map, which a stage never changes.
    chain_cache: dict[bytes, UtteranceChain] = field(default_factory=dict, repr=False)

    def chain(self, phone_ids: np.ndarray) -> UtteranceChain:
        """The chain of a transcript (cached; treat the arrays as read-only)."""
        key = phone_ids.tobytes()
        hit = self.chain_cache.get(key)
        if hit is None:
            hmm = self.tm.chain(phone_ids)
            sizes = np.asarray(self.tm.num_states)[phone_ids]
            hit = UtteranceChain(hmm, self.pdf_map.chain_pdfs(self.tm, phone_ids),
                                 np.repeat(np.arange(len(phone_ids)), sizes))
            self.chain_cache[key] = hit
        return hit

    def save(self, path: str | os.PathLike) -> None:
        """Write the model to ``path`` atomically (a torch pickle of plain dicts)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"tm": self.tm.state_dict(), "pdf_map": self.pdf_map.state_dict(),
                    "gmm": self.gmm.state_dict()}, tmp)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "GmmHmm":
        try:
            d = torch.load(path, weights_only=True)  # no code runs from the file
        except Exception as e:  # noqa: BLE001 - torch raises many types (a refused pickle among them)
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise AsrError(f"{path}: cannot read GMM-HMM model ({type(e).__name__}: {first})") from None
        if not isinstance(d, dict) or not all(k in d for k in ("tm", "pdf_map", "gmm")):
            raise AsrError(f"{path}: not a GMM-HMM model of asr (no tm / pdf_map / gmm)")
        kind = d["pdf_map"]["kind"]
        if kind == "mono":
            pdf_map: PdfMap = MonophonePdfMap.from_state_dict(d["pdf_map"])
        elif kind == "tree":
            from asr.hmm.tree import TreePdfMap

            pdf_map = TreePdfMap.from_state_dict(d["pdf_map"])
        else:
            raise AsrError(f"{path}: unknown pdf map kind {kind!r}")
        return cls(TransitionModel.from_state_dict(d["tm"]), pdf_map, DiagGmmSet.from_state_dict(d["gmm"]))
