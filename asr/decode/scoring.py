"""Error rates of hypotheses against references (Kaldi ``compute-wer`` / ``align-text``).

Token sequences are aligned by minimum edit distance (substitution, insertion and
deletion each cost 1); the alignment, and so the error counts, come from ``jiwer``
(:func:`jiwer.process_words`, whose Levenshtein backend is ``rapidfuzz``). Tokens are
handed to jiwer unchanged: its default text normalisation is replaced by a plain split
on spaces. PER is scored on the 39-phone TIMIT set: both sides are folded 48 -> 39
first, as Kaldi's TIMIT recipe does. :func:`write_scoring` writes the files of
``decode/<test_set>/`` and returns the summary that goes into ``results.json``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jiwer

from asr.data.phones import to_39
from asr.errors import AsrError

log = logging.getLogger(__name__)

EPS = "***"  # the gap symbol of aligned lines (sclite's spelling)

# One aligned pair: (ref token or None, hyp token or None).
Pair = tuple[str | None, str | None]

# jiwer's default transform strips and squeezes spaces; other jiwer transforms lower-case,
# expand contractions or drop Kaldi non-words. Tokens must reach the aligner as they are,
# so the only transform is the split of the space-joined string back into its tokens.
_SPLIT_ONLY = jiwer.Compose([jiwer.ReduceToListOfListOfWords(word_delimiter=" ")])


@dataclass
class ErrorCounts:
    """Edit operations of one or more aligned utterances.

    Attributes:
        num_ref: reference tokens (the denominator of the error rate).
        ins, dels, subs: insertions, deletions, substitutions.
    """

    num_ref: int = 0
    ins: int = 0
    dels: int = 0
    subs: int = 0

    @property
    def errors(self) -> int:
        return self.ins + self.dels + self.subs

    @property
    def correct(self) -> int:
        return self.num_ref - self.dels - self.subs

    def add(self, other: "ErrorCounts") -> None:
        self.num_ref += other.num_ref
        self.ins += other.ins
        self.dels += other.dels
        self.subs += other.subs

    def rate(self) -> float:
        """Errors per reference token, in percent."""
        if self.num_ref == 0:
            raise AsrError("scoring: the references have no tokens; an error rate is undefined")
        return 100.0 * self.errors / self.num_ref


def _jiwer_words(ref: Sequence[str], hyp: Sequence[str]) -> tuple[list[str], list[str]]:
    """The words to give jiwer for ``ref`` and ``hyp``: the tokens themselves, or stand-ins.

    A token survives jiwer's space-joining and splitting when it is a non-empty string
    without a space. Should any token not be, every token of the pair is replaced by a
    stand-in ``w<k>`` (one per distinct token), which aligns the same way.
    """
    ref, hyp = list(ref), list(hyp)
    if all(isinstance(t, str) and t and " " not in t for t in (*ref, *hyp)):
        return ref, hyp
    ids: dict = {}
    code = lambda seq: [f"w{ids.setdefault(t, len(ids))}" for t in seq]  # noqa: E731
    return code(ref), code(hyp)


def align(ref: Sequence[str], hyp: Sequence[str]) -> list[Pair]:
    """Minimum-edit-distance alignment of two token sequences, computed by jiwer.

    Args:
        ref: reference tokens.
        hyp: hypothesis tokens.

    Returns:
        pairs in order: (r, h) for a match or substitution, (r, None) for a deletion,
        (None, h) for an insertion. The number of edits is always the minimum. Among
        equally cheap alignments the choice is jiwer's (rapidfuzz's backtrace, which
        follows no simple preference order): it can differ from the hand-written aligner
        this replaced (which preferred a match/substitution, then a deletion) and from
        Kaldi's, so the split into ins/del/sub of tied utterances can too, never the total.

    An empty ``ref`` or ``hyp`` is aligned here (all insertions or all deletions), not
    by jiwer.

    >>> align(["a", "b", "c"], ["a", "x", "c", "d"])
    [('a', 'a'), ('b', 'x'), ('c', 'c'), (None, 'd')]
    """
    ref, hyp = list(ref), list(hyp)
    if not ref or not hyp:
        return [(r, None) for r in ref] + [(None, h) for h in hyp]
    ref_words, hyp_words = _jiwer_words(ref, hyp)
    out = jiwer.process_words(" ".join(ref_words), " ".join(hyp_words),
                              reference_transform=_SPLIT_ONLY, hypothesis_transform=_SPLIT_ONLY)
    if out.references != [ref_words] or out.hypotheses != [hyp_words]:
        raise AsrError("scoring: jiwer changed the tokens it was given "
                       f"({ref_words[:5]} -> {out.references[0][:5]}); cannot align")
    pairs: list[Pair] = []
    for chunk in out.alignments[0]:
        r = ref[chunk.ref_start_idx:chunk.ref_end_idx]
        h = hyp[chunk.hyp_start_idx:chunk.hyp_end_idx]
        if chunk.type in ("equal", "substitute"):
            if len(r) != len(h):
                raise AsrError(f"scoring: jiwer returned an uneven {chunk.type} chunk {chunk}")
            pairs.extend(zip(r, h))
        elif chunk.type == "delete":
            pairs.extend((t, None) for t in r)
        elif chunk.type == "insert":
            pairs.extend((None, t) for t in h)
        else:
            raise AsrError(f"scoring: unknown jiwer alignment chunk type {chunk.type!r}")
    return pairs


def count_errors(pairs: Sequence[Pair]) -> ErrorCounts:
    """Counts of an alignment from :func:`align`."""
    c = ErrorCounts()
    for r, h in pairs:
        if r is not None:
            c.num_ref += 1
        if r is None:
            c.ins += 1
        elif h is None:
            c.dels += 1
        elif r != h:
            c.subs += 1
    return c


def op_codes(pairs: Sequence[Pair]) -> list[str]:
    """``C``/``S``/``I``/``D`` per aligned pair."""
    return ["I" if r is None else "D" if h is None else "C" if r == h else "S" for r, h in pairs]


def format_alignment(utt: str, pairs: Sequence[Pair]) -> str:
    """Four lines (``ref``, ``hyp``, ``op``, ``#csid``) with columns padded to line up.

    The layout of Kaldi's ``wer_per_utt_details.pl``: gaps are ``***``.
    """
    ops = op_codes(pairs)
    cols = [(r or EPS, h or EPS, o) for (r, h), o in zip(pairs, ops)]
    widths = [max(len(a), len(b)) for a, b, _ in cols]
    line = lambda items: " ".join(s.ljust(w) for s, w in zip(items, widths)).rstrip()  # noqa: E731
    c = count_errors(pairs)
    return "\n".join([
        f"{utt} ref  {line([a for a, _, _ in cols])}",
        f"{utt} hyp  {line([b for _, b, _ in cols])}",
        f"{utt} op   {line([o for _, _, o in cols])}",
        f"{utt} #csid {c.correct} {c.subs} {c.ins} {c.dels}",
    ]) + "\n"


@dataclass
class ScoreResult:
    """Scores of a test set.

    Attributes:
        counts: totals over all reference utterances.
        per_utt: utt -> its alignment, in sorted utterance order.
        num_missing: reference utterances with no hypothesis (scored as all deletions).
        num_extra: hypotheses with no reference (not scored).
    """

    counts: ErrorCounts
    per_utt: dict[str, list[Pair]]
    num_missing: int
    num_extra: int


def score(refs: Mapping[str, Sequence[str]], hyps: Mapping[str, Sequence[str]]) -> ScoreResult:
    """Align every reference utterance with its hypothesis and add up the errors.

    A reference utterance missing from ``hyps`` counts as all deletions; hypotheses of
    utterances not in ``refs`` are not scored. Both counts are logged.

    Raises:
        AsrError: no reference utterances.
    """
    if not refs:
        raise AsrError("scoring: no reference utterances")
    total = ErrorCounts()
    per_utt: dict[str, list[Pair]] = {}
    missing = [u for u in refs if u not in hyps]
    extra = [u for u in hyps if u not in refs]
    for utt in sorted(refs):
        pairs = align(list(refs[utt]), list(hyps.get(utt, ())))
        per_utt[utt] = pairs
        total.add(count_errors(pairs))
    if missing:
        log.warning("scoring: %d of %d reference utterance(s) have no hypothesis (e.g. %s); "
                    "counted as all deletions", len(missing), len(refs), sorted(missing)[0])
    if extra:
        log.warning("scoring: %d hypothesis utterance(s) have no reference (e.g. %s); not scored",
                    len(extra), sorted(extra)[0])
    return ScoreResult(total, per_utt, len(missing), len(extra))


def fold_to_39(table: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Fold every utterance's 48-set (or 39-set) phones to the 39-set scoring labels.

    Raises:
        AsrError: a label outside the TIMIT sets, naming the utterance.
    """
    return {u: to_39(list(p), where=f"utterance '{u}'") for u, p in table.items()}


def score_line(counts: ErrorCounts) -> str:
    """``%WER 12.34 [ 5 / 40, 1 ins, 2 del, 2 sub ]`` (Kaldi ``compute-wer``'s line)."""
    return (f"%WER {counts.rate():.2f} [ {counts.errors} / {counts.num_ref}, "
            f"{counts.ins} ins, {counts.dels} del, {counts.subs} sub ]")


def _write_text(path: Path, table: Mapping[str, Sequence[str]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for utt in sorted(table):
            f.write(" ".join([utt, *table[utt]]) + "\n")


def write_scoring(out_dir: str | os.PathLike, refs: Mapping[str, Sequence[str]],
                  hyps: Mapping[str, Sequence[str]], metric: str = "per") -> dict:
    """Score a test set and write ``hyp.txt``, ``ref.txt``, ``per_utt.txt``, ``score.txt``.

    Args:
        out_dir: ``exp_dir/decode/<test_set>``, created if needed.
        refs: utt -> reference tokens (48- or 39-set phones for ``per``, words for ``wer``).
        hyps: utt -> hypothesis tokens, same token set.
        metric: ``per`` (both sides folded to the 39 TIMIT phones before scoring) or
            ``wer`` (tokens compared as they are).

    ``hyp.txt`` and ``ref.txt`` hold the tokens actually scored (39-set for ``per``), so
    re-scoring them with Kaldi's ``compute-wer`` gives ``score.txt`` again.

    Returns:
        ``{"per": float | None, "wer": float | None, "n_utts", "n_tokens", "ins", "del",
        "sub", "n_missing"}``: percentages and counts, for ``results.json``.
    """
    if metric not in ("per", "wer"):
        raise AsrError(f"scoring: metric must be 'per' or 'wer', got {metric!r}")
    if metric == "per":
        refs, hyps = fold_to_39(refs), fold_to_39(hyps)
    result = score(refs, hyps)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_text(out / "ref.txt", refs)
    _write_text(out / "hyp.txt", {u: h for u, h in hyps.items() if u in refs})
    with open(out / "per_utt.txt", "w", encoding="utf-8") as f:
        for utt, pairs in result.per_utt.items():
            f.write(format_alignment(utt, pairs))
    c = result.counts
    (out / "score.txt").write_text(score_line(c) + "\n")
    rate = round(c.rate(), 2)
    return {"per": rate if metric == "per" else None, "wer": rate if metric == "wer" else None,
            "n_utts": len(refs), "n_tokens": c.num_ref, "ins": c.ins, "del": c.dels, "sub": c.subs,
            "n_missing": result.num_missing}
