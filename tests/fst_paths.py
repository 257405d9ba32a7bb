"""Path costs of decoding graphs, shared by the graph tests."""

from __future__ import annotations


def path_cost(graph, ilabels: list[int], olabels: list[int]) -> float:
    """Cost of the best graph path reading ``ilabels`` and writing ``olabels`` (inf if none)."""
    import kaldifst

    fst = kaldifst.compose(kaldifst.make_linear_acceptor(ilabels), graph)
    kaldifst.arcsort(fst, sort_type="olabel")  # compose() matches on the left FST's output labels
    fst = kaldifst.compose(fst, kaldifst.make_linear_acceptor(olabels))
    best = kaldifst.shortest_path(fst)
    if best.num_states == 0:
        return float("inf")
    ok, _, _, weight = kaldifst.get_linear_symbol_sequence(best)
    assert ok
    return weight.value
