"""HMM topology and transition probabilities.

Every phone is a left-to-right chain of emitting states (3 by default, Kaldi style;
silence phones may have more). State ``s`` of a phone either loops or moves on to
``s + 1``; the last state moves on to the next phone. A (phone, state) pair is an
"HMM state" with a global id, ``state_offset[phone] + state``; transition probabilities
are kept per HMM state and re-estimated from alignment counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from asr.errors import AsrError


@dataclass
class TransitionModel:
    """Phones, their number of states and the self-loop probability of each HMM state.

    Attributes:
        phones: phone symbols; a phone's id is its index here.
        num_states: states per phone (same length as ``phones``).
        self_loop: [num_hmm_states] probability of staying in each HMM state.
    """

    phones: list[str]
    num_states: list[int]
    self_loop: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if len(self.phones) != len(self.num_states) or min(self.num_states) < 1:
            raise AsrError("transition model: one positive state count per phone is needed")
        self.state_offset = np.concatenate([[0], np.cumsum(self.num_states)[:-1]]).astype(np.int64)
        self.phone_id = {p: i for i, p in enumerate(self.phones)}
        if self.self_loop is None:
            self.self_loop = np.full(self.num_hmm_states, 0.75)  # Kaldi's initial topology
        self.self_loop = np.asarray(self.self_loop, dtype=np.float64)

    @classmethod
    def create(cls, phones: list[str], num_states: int = 3, silence_phones: tuple[str, ...] = (),
               num_silence_states: int = 3) -> "TransitionModel":
        """Every phone with ``num_states`` states, ``silence_phones`` with ``num_silence_states``."""
        sil = set(silence_phones)
        return cls(list(phones), [num_silence_states if p in sil else num_states for p in phones])

    @property
    def num_hmm_states(self) -> int:
        return int(sum(self.num_states))

    @property
    def phone_of_hmm_state(self) -> np.ndarray:
        """[num_hmm_states] phone id of each HMM state."""
        return np.repeat(np.arange(len(self.phones)), self.num_states)

    @property
    def state_of_hmm_state(self) -> np.ndarray:
        """[num_hmm_states] state index (within its phone) of each HMM state."""
        return np.concatenate([np.arange(n) for n in self.num_states])

    def phone_ids(self, symbols: list[str], utt: str = "?") -> np.ndarray:
        """Phone ids of a transcript; an unknown symbol is an :class:`AsrError` naming ``utt``."""
        try:
            return np.array([self.phone_id[s] for s in symbols], dtype=np.int64)
        except KeyError as e:
            raise AsrError(f"utterance '{utt}': phone {e.args[0]!r} is not in the phone set") from None

    def chain(self, phone_ids: np.ndarray) -> np.ndarray:
        """HMM-state ids of the linear chain of a phone sequence: [sum of num_states]."""
        return np.concatenate([self.state_offset[p] + np.arange(self.num_states[p]) for p in phone_ids])

    def log_probs(self) -> tuple[np.ndarray, np.ndarray]:
        """(log self-loop, log forward) probabilities per HMM state, each [num_hmm_states]."""
        return np.log(self.self_loop), np.log1p(-self.self_loop)

    def update(self, loop_counts: np.ndarray, forward_counts: np.ndarray, floor: float = 0.01) -> None:
        """Re-estimate self-loop probabilities from counts per HMM state (ML, floored).

        States never visited keep their probability.
        """
        total = loop_counts + forward_counts
        seen = total > 0
        p = np.where(seen, loop_counts / np.maximum(total, 1e-10), self.self_loop)
        self.self_loop = np.clip(p, floor, 1.0 - floor)

    def state_dict(self) -> dict:
        return {"phones": list(self.phones), "num_states": list(self.num_states),
                "self_loop": self.self_loop.tolist()}

    @classmethod
    def from_state_dict(cls, d: dict) -> "TransitionModel":
        return cls(list(d["phones"]), list(d["num_states"]), np.asarray(d["self_loop"]))


def transition_counts(positions: np.ndarray, chain: np.ndarray, num_hmm_states: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Self-loop and forward counts per HMM state from one utterance's alignment.

    Args:
        positions: [T] chain position of each frame (non-decreasing, steps of 0 or 1).
        chain: [S] HMM-state id of each chain position (:meth:`TransitionModel.chain`).
        num_hmm_states: size of the outputs.

    Returns:
        (loop [num_hmm_states], forward [num_hmm_states]) float64 counts.
    """
    loop = np.zeros(num_hmm_states)
    fwd = np.zeros(num_hmm_states)
    stay = positions[1:] == positions[:-1]
    np.add.at(loop, chain[positions[1:][stay]], 1.0)
    np.add.at(fwd, chain[positions[:-1][~stay]], 1.0)
    np.add.at(fwd, chain[positions[-1:]], 1.0)  # the final state leaves at the end
    return loop, fwd
