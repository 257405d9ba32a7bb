"""Phonetic decision tree tying triphone states (Kaldi's ``build-tree``).

Every (centre phone, state) starts as one leaf. A leaf is split by a question on its
left or right context phone ("is it in set S?") chosen to maximise the gain in
likelihood of single diagonal Gaussians fitted to each side; the best split over all
leaves is taken greedily until ``max_leaves`` leaves exist or no split gains more than
``thresh`` nats with at least ``min_count`` frames on each side. Each leaf is a pdf.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass

import numpy as np

from asr.hmm.topology import TransitionModel
from asr.hmm.tree_stats import TreeStats, context_of_frames, gaussian_log_like

log = logging.getLogger(__name__)

LEFT, RIGHT = 0, 2  # positions of the context phones in an event (left, centre, right, state)


@dataclass
class TreeOptions:
    """Options of tree building.

    Attributes:
        max_leaves: target number of leaves (pdfs) in total.
        thresh: minimum likelihood gain (nats) of a split.
        min_count: minimum frames on each side of a split.
        var_floor: variance floor of the Gaussians scoring the splits.
    """

    max_leaves: int = 2500
    thresh: float = 0.0
    min_count: float = 100.0
    var_floor: float = 0.01


class TreePdfMap:
    """(left, centre, right, state) -> pdf by walking a decision tree.

    Nodes are stored as arrays: ``key[n]`` is LEFT or RIGHT for a question node, -1 for a
    leaf; ``question[n]`` indexes ``questions``; ``yes[n]``/``no[n]`` are child nodes;
    ``pdf[n]`` is the pdf of a leaf. ``roots[phone][state]`` is the root node of each
    monophone state.
    """

    kind = "tree"

    def __init__(self, questions: list[frozenset[int]], key: list[int], question: list[int],
                 yes: list[int], no: list[int], pdf: list[int], roots: list[list[int]],
                 num_phones: int) -> None:
        self.questions = [frozenset(q) for q in questions]
        self.key, self.question, self.yes, self.no, self.pdf = key, question, yes, no, pdf
        self.roots = roots
        self.num_phones = num_phones
        self.num_pdfs = 1 + max(p for p in pdf if p >= 0)
        self._cache: dict[tuple[int, int, int, int], int] = {}

    def lookup(self, left: int, centre: int, right: int, state: int) -> int:
        """pdf id of a triphone state (context ``num_phones`` = utterance boundary)."""
        k = (left, centre, right, state)
        hit = self._cache.get(k)
        if hit is not None:
            return hit
        n = self.roots[centre][state]
        ctx = (left, centre, right)
        while self.key[n] >= 0:
            n = self.yes[n] if ctx[self.key[n]] in self.questions[self.question[n]] else self.no[n]
        self._cache[k] = self.pdf[n]
        return self.pdf[n]

    def chain_pdfs(self, tm: TransitionModel, phone_ids: np.ndarray) -> np.ndarray:
        sizes = np.asarray(tm.num_states)[phone_ids]
        index = np.repeat(np.arange(len(phone_ids)), sizes)
        states = np.concatenate([np.arange(n) for n in sizes])
        left, centre, right = context_of_frames(phone_ids, index, self.num_phones)
        return np.array([self.lookup(int(a), int(b), int(c), int(s))
                         for a, b, c, s in zip(left, centre, right, states)], dtype=np.int64)

    def phone_pdfs(self, tm: TransitionModel, phone: int) -> np.ndarray:
        """Sorted pdf ids of the leaves under the roots of ``phone``'s states."""
        out, stack = [], list(self.roots[phone])
        while stack:
            n = stack.pop()
            if self.key[n] < 0:
                out.append(self.pdf[n])
            else:
                stack += [self.yes[n], self.no[n]]
        return np.unique(np.asarray(out, dtype=np.int64))

    def event_pdfs(self, events: np.ndarray) -> np.ndarray:
        """[E] pdf of each (left, centre, right, state) row."""
        return np.array([self.lookup(*map(int, e)) for e in events], dtype=np.int64)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "questions": [sorted(q) for q in self.questions], "key": self.key,
                "question": self.question, "yes": self.yes, "no": self.no, "pdf": self.pdf,
                "roots": self.roots, "num_phones": self.num_phones}

    @classmethod
    def from_state_dict(cls, d: dict) -> "TreePdfMap":
        return cls([frozenset(q) for q in d["questions"]], list(d["key"]), list(d["question"]),
                   list(d["yes"]), list(d["no"]), list(d["pdf"]), [list(r) for r in d["roots"]],
                   int(d["num_phones"]))


@dataclass
class _Split:
    gain: float
    key: int
    question: int


def _best_split(events: np.ndarray, stats: np.ndarray, qmat: np.ndarray, opts: TreeOptions) -> _Split | None:
    """Best question for one leaf; ``qmat`` [Q, num_phones + 1] membership matrix."""
    total = stats.sum(0)
    base = float(gaussian_log_like(total, opts.var_floor))
    best: _Split | None = None
    for key in (LEFT, RIGHT):
        yes = qmat[:, events[:, key]].astype(np.float64) @ stats  # [Q, 2D+1]
        no = total[None] - yes
        ok = (yes[:, 0] >= opts.min_count) & (no[:, 0] >= opts.min_count)
        if not ok.any():
            continue
        gain = gaussian_log_like(yes, opts.var_floor) + gaussian_log_like(no, opts.var_floor) - base
        gain = np.where(ok, gain, -np.inf)
        q = int(np.argmax(gain))  # first maximum: deterministic
        if best is None or gain[q] > best.gain:
            best = _Split(float(gain[q]), key, q)
    return best


def build_tree(stats: TreeStats, questions: list[frozenset[int]], tm: TransitionModel,
               opts: TreeOptions | None = None) -> TreePdfMap:
    """Grow the tree and number its leaves as pdfs (by phone, state, then tree order).

    Every (phone, state) of ``tm`` gets at least one pdf, seen in ``stats`` or not.
    """
    opts = opts or TreeOptions()
    qmat = np.zeros((len(questions), stats.num_phones + 1), dtype=bool)
    for i, q in enumerate(questions):
        qmat[i, sorted(q)] = True
    key, question, yes, no = [], [], [], []
    members: list[np.ndarray] = []  # event indices of each node
    roots: list[list[int]] = []
    ev = stats.events
    for p in range(len(tm.phones)):
        roots.append([])
        for s in range(tm.num_states[p]):
            roots[p].append(len(key))
            key.append(-1), question.append(-1), yes.append(-1), no.append(-1)
            members.append(np.nonzero((ev[:, 1] == p) & (ev[:, 3] == s))[0])
    num_leaves = len(key)
    heap: list[tuple[float, int, _Split]] = []

    def consider(node: int) -> None:
        idx = members[node]
        if len(idx) < 2:
            return
        split = _best_split(ev[idx], stats.stats[idx], qmat, opts)
        if split is not None and split.gain > opts.thresh:
            heapq.heappush(heap, (-split.gain, node, split))

    for node in range(num_leaves):
        consider(node)
    total_gain = 0.0
    while heap and num_leaves < opts.max_leaves:
        neg_gain, node, split = heapq.heappop(heap)
        idx = members[node]
        in_q = qmat[split.question, ev[idx, split.key]]
        key[node], question[node] = split.key, split.question
        for child_members in (idx[in_q], idx[~in_q]):
            child = len(key)
            key.append(-1), question.append(-1), yes.append(-1), no.append(-1)
            members.append(child_members)
            consider(child)
        yes[node], no[node] = len(key) - 2, len(key) - 1
        num_leaves += 1
        total_gain -= neg_gain
    pdf = [-1] * len(key)
    next_pdf = 0
    for p in range(len(tm.phones)):
        for s in range(tm.num_states[p]):
            stack = [roots[p][s]]
            while stack:  # depth-first, yes before no
                n = stack.pop()
                if key[n] < 0:
                    pdf[n] = next_pdf
                    next_pdf += 1
                else:
                    stack += [no[n], yes[n]]
    log.info("tree: %d leaves from %d events, likelihood gain %.1f nats (%.4f per frame)",
             next_pdf, len(ev), total_gain, total_gain / max(1.0, float(stats.stats[:, 0].sum())))
    return TreePdfMap(questions, key, question, yes, no, pdf, roots, stats.num_phones)
