"""Small FST helpers shared by the word and CTC graphs: arrays, relabelling, penalties, L.

Whole-graph edits (relabelling, insertion penalties, HMM self-loops) go through
:class:`FstArrays`, a column view of a ``kaldifst.StdVectorFst``. kaldifst has no bulk
accessors and walking ~1e6 arcs from Python costs seconds, so the conversion goes through
OpenFst's binary formats with numpy (a temporary file each way): :func:`fst_to_arrays`
writes the graph as a ``ConstFst`` (states and arcs are two flat tables there),
:func:`fst_from_arrays` writes the ``VectorFst`` format directly and reads it back.

The lexicon transducer :func:`lexicon_fst` follows Kaldi's ``make_lexicon_fst.py``
(optional silence, disambiguation symbols as ``utils/add_lex_disambig.pl`` places them).
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from asr.data.lexicon import Lexicon
from asr.errors import AsrError

if TYPE_CHECKING:
    import kaldifst

__all__ = [
    "WORD_DISAMBIG",
    "FstArrays",
    "fst_from_arrays",
    "fst_size",
    "fst_to_arrays",
    "lexicon_fst",
    "lg_fst",
    "map_input_labels",
    "read_lang_lexicon",
    "remove_input_labels",
    "with_output_penalty",
]

WORD_DISAMBIG = "#0"  # G's back-off symbol in words.txt

_MAGIC = 2125659606  # OpenFst's binary FST magic number
_KEXPANDED_MUTABLE = 0x3  # property bits of a VectorFst that hold whatever its arcs are
_ARC = np.dtype([("ilabel", "<i4"), ("olabel", "<i4"), ("weight", "<f4"), ("nextstate", "<i4")])
_CONST_STATE = np.dtype([("final", "<f4"), ("pos", "<u4"), ("narcs", "<u4"), ("nieps", "<u4"), ("noeps", "<u4")])


@dataclass
class FstArrays:
    """A weighted transducer as flat arrays (tropical weights: costs, ``inf`` = no weight).

    Attributes:
        start: start state (-1 for an empty FST).
        final: [S] float32 final cost of each state (``inf``: not final).
        src: [A] int64 source state of each arc; arcs of a state are contiguous when the
            arrays come from :func:`fst_to_arrays`, in the FST's arc order.
        dst: [A] int64 destination state.
        ilabel: [A] int32 input label (0 = epsilon).
        olabel: [A] int32 output label (0 = epsilon).
        weight: [A] float32 arc cost.
    """

    start: int
    final: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    ilabel: np.ndarray
    olabel: np.ndarray
    weight: np.ndarray

    @property
    def num_states(self) -> int:
        return len(self.final)

    @property
    def num_arcs(self) -> int:
        return len(self.src)


def _read_string(buf: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<i", buf, pos)
    return buf[pos + 4:pos + 4 + n].decode("ascii", "replace"), pos + 4 + n


def _arrays_slow(fst: kaldifst.StdVectorFst) -> FstArrays:
    """Arc by arc (FSTs carrying symbol tables, whose binary header is longer)."""
    import kaldifst

    n = fst.num_states
    final = np.array([fst.final(s).value for s in range(n)], dtype=np.float32)
    rows = [(s, a.nextstate, a.ilabel, a.olabel, a.weight.value)
            for s in range(n) for a in kaldifst.ArcIterator(fst, s)]
    cols = list(zip(*rows)) if rows else [(), (), (), (), ()]
    return FstArrays(int(fst.start) if n else -1, final, np.asarray(cols[0], np.int64),
                     np.asarray(cols[1], np.int64), np.asarray(cols[2], np.int32),
                     np.asarray(cols[3], np.int32), np.asarray(cols[4], np.float32))


def fst_to_arrays(fst: kaldifst.StdVectorFst) -> FstArrays:
    """The states and arcs of ``fst`` as arrays (about 0.25 s per million arcs; symbol
    tables are not kept, and an FST carrying them is read arc by arc, ~3 s per million)."""
    import kaldifst

    if fst.num_states == 0:
        z = np.zeros(0, np.int64)
        return FstArrays(-1, np.zeros(0, np.float32), z, z.copy(), z.astype(np.int32),
                         z.astype(np.int32), z.astype(np.float32))
    with tempfile.TemporaryDirectory(prefix="asr_fst_") as tmp:
        path = os.path.join(tmp, "c.fst")
        kaldifst.StdConstFst(fst).write(path)
        buf = Path(path).read_bytes()
    (magic,) = struct.unpack_from("<i", buf, 0)
    fst_type, pos = _read_string(buf, 4)
    arc_type, pos = _read_string(buf, pos)
    _version, flags, _props, start, num_states, num_arcs = struct.unpack_from("<iiQqqq", buf, pos)
    pos += 4 + 4 + 8 + 24
    if magic != _MAGIC or fst_type != "const" or arc_type != "standard" or flags & 0x3:
        return _arrays_slow(fst)
    aligned = bool(flags & 0x4)
    if aligned:
        pos = (pos + 15) // 16 * 16
    states = np.frombuffer(buf, _CONST_STATE, num_states, pos)
    pos += states.nbytes
    if aligned:
        pos = (pos + 15) // 16 * 16
    arcs = np.frombuffer(buf, _ARC, num_arcs, pos)
    narcs = states["narcs"].astype(np.int64)
    src = np.repeat(np.arange(num_states, dtype=np.int64), narcs)
    return FstArrays(int(start), states["final"].copy(), src, arcs["nextstate"].astype(np.int64),
                     arcs["ilabel"].copy(), arcs["olabel"].copy(), arcs["weight"].copy())


def fst_from_arrays(arr: FstArrays) -> kaldifst.StdVectorFst:
    """A ``StdVectorFst`` holding ``arr`` (arcs grouped by source state, stable order;
    no symbol tables, properties left to be computed). About 0.2 s per million arcs.

    Raises:
        AsrError: an arc names a state outside ``0 .. len(final) - 1``.
    """
    import kaldifst

    n = arr.num_states
    src = np.asarray(arr.src, dtype=np.int64)
    dst = np.asarray(arr.dst, dtype=np.int64)
    if len(src) and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= n):
        raise AsrError(f"FST arrays: an arc names a state outside 0..{n - 1}")
    if len(src) > 1 and np.any(src[1:] < src[:-1]):
        order = np.argsort(src, kind="stable")
    else:
        order = slice(None)
    counts = np.bincount(src, minlength=n).astype(np.int64)
    arc_start = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    body = np.zeros(3 * n + 4 * len(src), dtype=np.uint32)
    spos = 3 * np.arange(n, dtype=np.int64) + 4 * arc_start
    body[spos] = np.asarray(arr.final, dtype=np.float32).view(np.uint32)
    body[spos + 1] = counts.astype(np.uint32)  # narcs is an int64: low word, high word 0
    k = np.arange(len(src), dtype=np.int64)
    s_sorted = src[order]
    apos = 3 * s_sorted + 3 + 4 * k
    body[apos] = np.asarray(arr.ilabel, dtype=np.int32)[order].view(np.uint32)
    body[apos + 1] = np.asarray(arr.olabel, dtype=np.int32)[order].view(np.uint32)
    body[apos + 2] = np.asarray(arr.weight, dtype=np.float32)[order].view(np.uint32)
    body[apos + 3] = dst[order].astype(np.int32).view(np.uint32)
    header = (struct.pack("<i", _MAGIC) + struct.pack("<i", 6) + b"vector" + struct.pack("<i", 8)
              + b"standard" + struct.pack("<iiQqqq", 2, 0, _KEXPANDED_MUTABLE, arr.start if n else -1, n,
                                          len(src)))
    with tempfile.TemporaryDirectory(prefix="asr_fst_") as tmp:
        path = os.path.join(tmp, "v.fst")
        with open(path, "wb") as f:
            f.write(header)
            f.write(body.tobytes())
        return kaldifst.StdVectorFst.read(path)


class ArcList:
    """Arcs collected one at a time while a graph is written out, then made into an FST."""

    def __init__(self) -> None:
        self.src: list[int] = []
        self.dst: list[int] = []
        self.ilabel: list[int] = []
        self.olabel: list[int] = []
        self.weight: list[float] = []

    def __len__(self) -> int:
        return len(self.src)

    def add(self, src: int, dst: int, ilabel: int, olabel: int, weight: float = 0.0) -> None:
        self.src.append(src), self.dst.append(dst), self.ilabel.append(ilabel)
        self.olabel.append(olabel), self.weight.append(weight)

    def to_fst(self, num_states: int, start: int, finals: Mapping[int, float]) -> kaldifst.StdVectorFst:
        """The FST of these arcs over states ``0 .. num_states - 1`` (:func:`fst_from_arrays`);
        ``finals``: state -> final cost."""
        final = np.full(num_states, np.inf, dtype=np.float32)
        for state, cost in finals.items():
            final[state] = cost
        return fst_from_arrays(FstArrays(start, final, np.asarray(self.src, np.int64), np.asarray(self.dst, np.int64),
                                         np.asarray(self.ilabel, np.int32), np.asarray(self.olabel, np.int32),
                                         np.asarray(self.weight, np.float32)))


def fst_size(fst: kaldifst.StdVectorFst) -> tuple[int, int]:
    """(states, arcs) of ``fst``."""
    return fst.num_states, sum(fst.num_arcs(s) for s in range(fst.num_states))


def with_output_penalty(fst: kaldifst.StdVectorFst, penalty: float) -> kaldifst.StdVectorFst:
    """A copy of ``fst`` where every arc with a non-epsilon output label costs ``penalty`` more.

    On a word graph this is a word insertion penalty (a phone insertion penalty on a phone
    graph), in graph-cost units (nats at LM scale 1), applied without rebuilding the graph:
    each output label sits on exactly one arc of any path. Final costs are unchanged.
    About 0.2 s per million arcs (0.005 s on the TIMIT tri3 word graph).
    """
    arr = fst_to_arrays(fst)
    arr.weight = arr.weight + np.where(arr.olabel != 0, np.float32(penalty), np.float32(0.0))
    return fst_from_arrays(arr)


def map_input_labels(fst: kaldifst.StdVectorFst, table: np.ndarray) -> kaldifst.StdVectorFst:
    """A copy of ``fst`` with every input label ``i`` replaced by ``table[i]``.

    Raises:
        AsrError: an input label is outside ``table``.
    """
    arr = fst_to_arrays(fst)
    table = np.asarray(table, dtype=np.int64)
    if arr.num_arcs and (arr.ilabel.min() < 0 or arr.ilabel.max() >= len(table)):
        raise AsrError(f"relabel: input label {int(arr.ilabel.max())} has no entry (table of {len(table)})")
    arr.ilabel = table[arr.ilabel].astype(np.int32)
    return fst_from_arrays(arr)


def remove_input_labels(fst: kaldifst.StdVectorFst, labels: Iterable[int]) -> kaldifst.StdVectorFst:
    """A copy of ``fst`` with the input labels ``labels`` (e.g. disambiguation symbols) made epsilon."""
    arr = fst_to_arrays(fst)
    drop = np.asarray(sorted({int(x) for x in labels}), dtype=np.int32)
    if len(drop):
        arr.ilabel = np.where(np.isin(arr.ilabel, drop), 0, arr.ilabel).astype(np.int32)
    return fst_from_arrays(arr)


def _disambiguated(prons: list[tuple[str, tuple[str, ...]]]) -> tuple[list[int], int]:
    """Kaldi's ``add_lex_disambig.pl`` numbering.

    A pronunciation gets a symbol ``#k`` appended when it is a proper prefix of another
    pronunciation or occurs more than once (homophones); the occurrences of one such
    pronunciation get ``#1, #2, ...`` in lexicon order. Returns (k per entry, 0 for none;
    the largest k).
    """
    count = Counter(p for _, p in prons)
    prefixes = {p[:i] for p in count for i in range(1, len(p))}
    used: Counter[tuple[str, ...]] = Counter()
    ks = []
    for _, p in prons:
        if count[p] > 1 or p in prefixes:
            used[p] += 1
            ks.append(used[p])
        else:
            ks.append(0)
    return ks, max(ks, default=0)


def lexicon_fst(lexicon: Lexicon, phone_ids: Mapping[str, int], word_ids: Mapping[str, int],
                silence_phone: str | None = "sil", silence_prob: float = 0.5,
                disambig: bool = True) -> tuple[kaldifst.StdVectorFst, list[int]]:
    """The lexicon transducer L: phone sequences in, word sequences out (Kaldi style).

    States: a start state, the loop state (where words begin and end; the only final
    state) and, with silence, a silence state. Each pronunciation is a chain from the loop
    state reading its phones; the word id is the output of its first arc (the others
    output epsilon). With optional silence (``silence_phone`` set and ``silence_prob`` > 0,
    ``p = silence_prob``):

    * start -> loop costs ``-ln(1 - p)``; start -> silence state costs ``-ln p``
      (an utterance opens with silence with probability ``p``);
    * a pronunciation's last arc goes to the loop state with extra cost ``-ln(1 - p)``
      or to the silence state with ``-ln p`` (silence follows the word, also the last one);
    * silence state -> loop reads ``silence_phone`` once (its HMM gives the duration).

    Without silence the pronunciations end on the loop state at no cost, and the start
    state is the loop state. Pronunciation probabilities are not modelled (cost 0).

    With ``disambig``, each pronunciation that is a proper prefix of another or occurs
    more than once (homophones) ends with an extra arc ``#k : <eps>`` (Kaldi's
    ``add_lex_disambig.pl``: the homophones of one pronunciation get ``#1, #2, ...``), and
    every state with a non-epsilon output arc, and the final state, gets a self-loop
    ``#0 : #0`` (input ``#0`` of L's phone side, output ``words_ids["#0"]``) so that the
    ``#0`` on G's back-off arcs passes through L o G, which stays determinisable.
    Phone-side ids: ``#0`` is ``max(phone_ids.values()) + 1``, ``#k`` that ``+ k``.

    Args:
        lexicon: word -> pronunciations (phone symbols of ``phone_ids``).
        phone_ids: phone symbol -> input label (> 0), e.g. phones.txt ids; only the
            lexicon's phones and ``silence_phone`` need to be there.
        word_ids: word -> output label, e.g. words.txt (must hold ``#0`` with ``disambig``).
        silence_phone: the optional silence phone, or None for no silence arcs.
        silence_prob: probability of silence at the start and after each word, in [0, 1).
        disambig: add the disambiguation symbols (for determinisation of L o G).

    Returns:
        ``(L, disambig_phone_ids)``: L with arcs sorted by output label, and the phone-side
        ids of ``#0, #1, ..., #K`` (empty without ``disambig``).

    Raises:
        AsrError: a word with an empty pronunciation or missing from ``word_ids``, a phone
            missing from ``phone_ids``, a bad ``silence_prob``, or no ``#0`` in ``word_ids``.
    """
    if not 0.0 <= silence_prob < 1.0:
        raise AsrError(f"lexicon FST: silence_prob must be in [0, 1), got {silence_prob}")
    ids = [int(v) for v in phone_ids.values()]
    if not ids or min(ids) <= 0:
        raise AsrError("lexicon FST: phone ids must be positive (0 is epsilon)")
    entries: list[tuple[str, tuple[str, ...]]] = []
    for word, prons in lexicon.items():
        if word not in word_ids:
            raise AsrError(f"lexicon FST: word {word!r} is not in the word symbol table")
        if not prons:
            raise AsrError(f"lexicon FST: word {word!r} has no pronunciation")
        for pron in prons:
            if len(pron) == 0:
                raise AsrError(f"lexicon FST: word {word!r} has an empty pronunciation")
            for p in pron:
                if p not in phone_ids:
                    raise AsrError(f"lexicon FST: phone {p!r} of word {word!r} is not in the phone table")
            entries.append((word, tuple(pron)))
    with_sil = silence_phone is not None and silence_prob > 0.0
    if with_sil and silence_phone not in phone_ids:
        raise AsrError(f"lexicon FST: silence phone {silence_phone!r} is not in the phone table")
    base = max(ids)
    ks, num_k = _disambiguated(entries) if disambig else ([0] * len(entries), 0)
    disambig_ids = [base + 1 + k for k in range(num_k + 1)] if disambig else []
    if disambig and WORD_DISAMBIG not in word_ids:
        raise AsrError(f"lexicon FST: the word symbol table has no {WORD_DISAMBIG}")

    arcs = ArcList()
    arc = arcs.add
    if with_sil:
        start, loop, sil = 0, 1, 2
        num_states = 3
        sil_cost, no_sil_cost = -math.log(silence_prob), -math.log1p(-silence_prob)
        arc(start, loop, 0, 0, no_sil_cost)
        arc(start, sil, 0, 0, sil_cost)
        arc(sil, loop, phone_ids[silence_phone], 0, 0.0)
    else:
        start = loop = 0
        sil = -1
        num_states = 1
        sil_cost = no_sil_cost = 0.0
    for (word, pron), k in zip(entries, ks):
        labels = [int(phone_ids[p]) for p in pron] + ([base + 1 + k] if k else [])
        cur = loop
        for j, lab in enumerate(labels[:-1]):
            arc(cur, num_states, lab, int(word_ids[word]) if j == 0 else 0, 0.0)
            cur = num_states
            num_states += 1
        out = int(word_ids[word]) if len(labels) == 1 else 0
        arc(cur, loop, labels[-1], out, no_sil_cost)
        if with_sil:
            arc(cur, sil, labels[-1], out, sil_cost)
    fst = arcs.to_fst(num_states, start, {loop: 0.0})
    import kaldifst

    if disambig:
        kaldifst.add_self_loops(fst, [disambig_ids[0]], [int(word_ids[WORD_DISAMBIG])])
    kaldifst.arcsort(fst, sort_type="olabel")
    return fst, disambig_ids


def lg_fst(lexicon: Lexicon, phone_ids: Mapping[str, int], word_ids: Mapping[str, int],
           g_words: kaldifst.StdVectorFst, silence_phone: str | None = "sil",
           silence_prob: float = 0.5) -> tuple[kaldifst.StdVectorFst, list[int]]:
    """``min(det(L o G))`` with disambiguation symbols (Kaldi's ``LG.fst``).

    L is :func:`lexicon_fst` with ``disambig=True``; G has ``#0`` (``word_ids["#0"]``) on
    the input side of its back-off arcs (:func:`asr.graph.ngram_lm.make_word_g_fst`). The
    composition is determinised (``determinize_star`` in the log semiring, which removes
    epsilons) and minimised after encoding labels and weights, as ``mkgraph.sh`` does
    (``fstpushspecial`` is left out).

    Returns:
        ``(LG, disambig_phone_ids)``: input labels phone ids and the phone-side ids of
        ``#0, #1, ...`` (see :func:`lexicon_fst`), output labels word ids.

    Raises:
        AsrError: see :func:`lexicon_fst`; L o G empty (no word of G has a pronunciation)
            or not determinisable.
    """
    import kaldifst

    lfst, disambig = lexicon_fst(lexicon, phone_ids, word_ids, silence_phone, silence_prob, disambig=True)
    lg = kaldifst.compose(lfst, g_words)  # matches on L's output side (sorted)
    if lg.num_states == 0:
        raise AsrError("LG: L o G is empty (no sentence of G has a pronunciation for all its words)")
    if kaldifst.determinize_star(lg, use_log=True):
        raise AsrError("LG: determinisation of L o G stopped early")
    kaldifst.minimize_encoded(lg)
    return lg, disambig


def read_lang_lexicon(path: str | os.PathLike) -> Lexicon:
    """Read the lang folder's ``lexicon.txt`` (``word p1 p2 ...`` in the model's phones,
    as :func:`asr.data.lexicon.write_lexicon` writes it; no phone mapping is applied).

    Raises:
        AsrError: unreadable file or a line without a pronunciation (file:line).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not UTF-8"
        raise AsrError(f"{path}: cannot read the lexicon ({why})") from None
    lex: Lexicon = {}
    for lineno, line in enumerate(lines, 1):
        f = line.split()
        if not f:
            continue
        if len(f) < 2:
            raise AsrError(f"{path}:{lineno}: word {f[0]!r} has no pronunciation")
        prons = lex.setdefault(f[0], [])
        if tuple(f[1:]) not in prons:
            prons.append(tuple(f[1:]))
    return lex
