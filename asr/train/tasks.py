"""Training objectives: hybrid DNN-HMM (frame cross-entropy on pdfs, plus a monophone head) and CTC.

A task names the model's output heads, turns a batch's outputs into a loss to minimise and
into summable statistics (so batches, epochs and DDP ranks add up exactly), and describes
itself as plain types for the checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torchaudio.functional import edit_distance

from asr.data.phones import to_39
from asr.errors import AsrError
from asr.features.loader import IGNORE_INDEX, Batch
from asr.graph.bpe import pieces_to_words


@dataclass
class StepResult:
    """One batch's objective and statistics.

    Attributes:
        loss: the scalar to minimise (sum over valid frames / valid frames).
        stats: sums over the batch (``frames``, ``loss``, ``errors``, ``err_total``, ...),
            floats, to be added over batches and ranks.
    """

    loss: torch.Tensor
    stats: dict[str, float]


def error_rate(stats: Mapping[str, float]) -> float:
    """``errors / err_total`` in percent (frame error for hybrid, greedy PER for CTC)."""
    return 100.0 * stats["errors"] / max(stats["err_total"], 1.0)


@dataclass
class HybridTask:
    """Frame cross-entropy on tied-state (pdf) targets, plus pytorch-kaldi's monophone head.

    Attributes:
        pdf_to_phone: [num_pdfs] the phone index (0-based, into ``phones``) of each pdf;
            the monophone target of a frame is the phone of its pdf target.
        phones: the phone names of the monophone head.
        mono_weight: weight of the monophone head's cross-entropy in the loss (0: no head).

    The loss of a batch is the sum of the frames' cross-entropies over its valid frames
    divided by their number, so padded frames count for nothing and a batch's loss is the
    frame-weighted mean of its utterances' losses.
    """

    pdf_to_phone: list[int]
    phones: list[str]
    mono_weight: float = 1.0
    name: str = "hybrid"
    units: ClassVar[str] = "phones"  # as CtcTask's: what the network's targets are made of

    def __post_init__(self) -> None:
        self.pdf_to_phone = [int(p) for p in self.pdf_to_phone]
        if not self.pdf_to_phone or min(self.pdf_to_phone) < 0 or max(self.pdf_to_phone) >= len(self.phones):
            raise AsrError("hybrid task: every pdf needs a phone among the task's phones")
        if self.mono_weight < 0:
            raise AsrError(f"task.mono_weight must be >= 0, got {self.mono_weight}")
        self._lookup = torch.tensor(self.pdf_to_phone, dtype=torch.int64)

    @property
    def num_pdfs(self) -> int:
        return len(self.pdf_to_phone)

    def heads(self) -> dict[str, int]:
        out = {"pdf": self.num_pdfs}
        if self.mono_weight > 0:
            out["phone"] = len(self.phones)
        return out

    def compute(self, outputs: Mapping[str, torch.Tensor], batch: Batch, score: bool = True) -> StepResult:
        """Loss and statistics of one batch; ``batch.targets`` [B, T] pdfs, -100 at padding.
        The frame error is always counted (``score`` is for CTC's costlier greedy PER)."""
        targets = batch.targets
        valid = targets != IGNORE_INDEX
        frames = int(valid.sum())
        pdf_logits = outputs["pdf"].float()
        pdf_sum = F.cross_entropy(pdf_logits.transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="sum")
        denom = max(frames, 1)
        loss = pdf_sum / denom
        with torch.no_grad():
            errors = int(((pdf_logits.argmax(-1) != targets) & valid).sum())
        stats = {"frames": float(frames), "utts": float(targets.shape[0]), "loss": float(pdf_sum.detach()),
                 "errors": float(errors), "err_total": float(frames)}
        if "phone" in outputs:
            lookup = self._lookup.to(targets.device)
            mono = torch.where(valid, lookup[targets.clamp(min=0)], torch.full_like(targets, IGNORE_INDEX))
            mono_sum = F.cross_entropy(outputs["phone"].float().transpose(1, 2), mono,
                                       ignore_index=IGNORE_INDEX, reduction="sum")
            loss = loss + self.mono_weight * mono_sum / denom
            stats["loss_mono"] = float(mono_sum.detach())
        return StepResult(loss, stats)

    def describe(self) -> dict:
        return {"name": self.name, "pdf_to_phone": list(self.pdf_to_phone), "phones": list(self.phones),
                "mono_weight": float(self.mono_weight), "num_pdfs": self.num_pdfs}


@dataclass
class CtcTask:
    """CTC on token sequences; token 0 is the blank (the lang folder's ``tokens.txt``).

    Attributes:
        tokens: token names by id, blank first.
        score_39: the dev error is the greedy PER on TIMIT's 39 phones (tokens are 48
            phones); else the token error rate on the tokens as they are.
        units: ``phones``, or ``bpe`` (sentencepiece pieces): the dev error is then the
            greedy WER, on the words the pieces spell.

    The loss is the sum of the utterances' CTC losses over the batch's valid frames (so
    its scale matches the hybrid loss). An utterance too short for its targets has no
    CTC path: it is left out of the loss and counted in ``impossible``.
    """

    tokens: list[str]
    score_39: bool = True
    units: str = "phones"
    name: str = "ctc"

    def __post_init__(self) -> None:
        if self.units not in ("phones", "bpe"):
            raise AsrError(f"CTC task: units '{self.units}' are not phones or bpe")
        if self.units == "bpe":
            self.score_39 = False

    def heads(self) -> dict[str, int]:
        return {"ctc": len(self.tokens)}

    def compute(self, outputs: Mapping[str, torch.Tensor], batch: Batch, score: bool = False) -> StepResult:
        logits = outputs["ctc"].float()
        log_probs = logits.log_softmax(-1).transpose(0, 1)  # [T, B, C]
        lengths = batch.lengths.to(logits.device)
        target_lengths = batch.target_lengths.to(logits.device)
        # zero_infinity: an impossible utterance's loss is inf and its gradient NaN, which
        # indexing it away would not stop; which ones are impossible is counted from lengths.
        per_utt = F.ctc_loss(log_probs, batch.targets, lengths, target_lengths, blank=0, reduction="none",
                             zero_infinity=True)
        possible = lengths.cpu() >= ctc_min_frames(batch.targets, batch.target_lengths)
        frames = int(lengths.sum())
        total = per_utt.sum()
        stats = {"frames": float(frames), "utts": float(len(batch.utts)), "loss": float(total.detach()),
                 "impossible": float((~possible).sum())}
        if score:
            errors, ref_total = self.greedy_errors(logits, batch)
            stats.update(errors=float(errors), err_total=float(ref_total))
        return StepResult(total / max(frames, 1), stats)

    def greedy(self, logits: torch.Tensor, lengths: torch.Tensor) -> list[list[str]]:
        """Best token per frame, repeats merged, blanks removed: [B] token-name lists."""
        best = logits.argmax(-1).cpu()
        out = []
        for b, n in enumerate(lengths.tolist()):
            ids = torch.unique_consecutive(best[b, :n]).tolist()
            out.append([self.tokens[i] for i in ids if i != 0])
        return out

    def greedy_errors(self, logits: torch.Tensor, batch: Batch) -> tuple[int, int]:
        """(edit distance, reference length) summed over the batch: on 39 phones if ``score_39``,
        on words for BPE units, else on tokens."""
        hyps = self.greedy(logits, batch.lengths)
        errors = ref_total = 0
        for b, hyp in enumerate(hyps):
            n = int(batch.target_lengths[b])
            ref = [self.tokens[i] for i in batch.targets[b, :n].tolist()]
            if self.score_39:
                ref, hyp = to_39(ref, batch.utts[b]), to_39(hyp, batch.utts[b])
            elif self.units == "bpe":
                ref, hyp = pieces_to_words(ref), pieces_to_words(hyp)
            errors += edit_distance(ref, hyp)
            ref_total += len(ref)
        return errors, ref_total

    def describe(self) -> dict:
        return {"name": self.name, "tokens": list(self.tokens), "score_39": self.score_39, "units": self.units}


def ctc_min_frames(targets: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """[B] fewest frames a CTC path needs: one per token, plus a blank between repeated tokens."""
    out = []
    for b, n in enumerate(target_lengths.tolist()):
        t = targets[b, :n]
        out.append(n + int((t[1:] == t[:-1]).sum()) if n > 1 else n)
    return torch.tensor(out, dtype=torch.int64)


def task_from_description(d: Mapping) -> HybridTask | CtcTask:
    """Rebuild a task from its ``describe()`` dict (a checkpoint's ``task``)."""
    if d["name"] == "hybrid":
        return HybridTask(list(d["pdf_to_phone"]), list(d["phones"]), float(d["mono_weight"]))
    if d["name"] == "ctc":
        return CtcTask(list(d["tokens"]), bool(d.get("score_39", True)), str(d.get("units", "phones")))
    raise AsrError(f"unknown task {d['name']!r} in checkpoint")


def tokens_of(table: Mapping[str, Sequence[str]], token_ids: Mapping[str, int]) -> dict[str, list[int]]:
    """utt -> token ids of its transcript (``text.phn`` phones), naming an unknown token."""
    out = {}
    for utt, toks in table.items():
        try:
            out[utt] = [token_ids[t] for t in toks]
        except KeyError as e:
            raise AsrError(f"utterance '{utt}': token {e.args[0]!r} is not in the token table") from None
    return out
