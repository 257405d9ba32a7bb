"""Reference (loop) implementations of every recurrent cell.

These step functions run one frame of a cell with plain differentiable torch
ops, so autograd builds the graph step by step. They are slow and exist to
define what each cell computes; the fast paths are tested against them.

Layout: every tensor carries a leading direction axis D (1 or 2), because each
direction has its own weights: inputs ``[T, D, B, G]``, states ``[D, B, H]``,
recurrent weights ``[D, H, G]`` (applied as ``h @ u``) unless stated otherwise.
Input projections (``W x + b``) are computed for all frames before the loop.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

State = tuple[torch.Tensor, ...]
Step = Callable[[torch.Tensor, State], State]


def run_recurrence(step: Step, inputs: torch.Tensor, state: State,
                   mask: torch.Tensor | None) -> torch.Tensor:
    """Run ``step`` over time, holding the state at padded frames.

    Padding must come after the valid frames (see ``reverse_padded`` for the
    backward direction), so held states never reach a valid frame.

    Args:
        step: ``step(input_t [D, B, G], state) -> new state``; the first state
            tensor is the output h.
        inputs: [T, D, B, G] input projections.
        state: initial states, each [D, B, *].
        mask: [T, B] bool, True at valid frames, or None.

    Returns:
        [T, D, B, H] outputs, zero at padded frames.
    """
    outputs = []
    for t in range(inputs.shape[0]):
        new = step(inputs[t], state)
        if mask is None:
            state = new
            outputs.append(new[0])
            continue
        keep = mask[t].to(inputs.dtype)[None, :, None]  # [1, B, 1]
        state = tuple(keep * n + (1 - keep) * s for n, s in zip(new, state))
        outputs.append(new[0] * keep)
    return torch.stack(outputs)


def ligru_step(a_t: torch.Tensor, state: State, u: torch.Tensor,
               drop: torch.Tensor | None = None,
               layer_norm: tuple[torch.Tensor, torch.Tensor] | None = None) -> State:
    """One Light GRU frame (Ravanelli et al. 2018); SLi-GRU when ``layer_norm`` is set.

    ``z = sigmoid(a_z + U_z h)``, ``c = relu(a_c + U_c h) * drop``,
    ``h' = z * h + (1 - z) * c``. With ``layer_norm`` the recurrent term
    ``U h`` (both gates together) is layer-normalised first (Moumen & Parcollet 2023).

    Args:
        a_t: [D, B, 2H] batch-normalised input projections (update gate first).
        state: (h [D, B, H],).
        u: [D, H, 2H] recurrent weights.
        drop: [D, B, H] recurrent-dropout mask (already scaled), or None.
        layer_norm: (weight [D, 2H], bias [D, 2H]) of the recurrent layer norm, or None.

    Returns:
        (h' [D, B, H],).
    """
    (h,) = state
    hidden = h.shape[-1]
    rec = torch.bmm(h, u)
    if layer_norm is not None:
        weight, bias = layer_norm
        rec = F.layer_norm(rec, (2 * hidden,)) * weight[:, None] + bias[:, None]
    gates = a_t + rec
    z = torch.sigmoid(gates[..., :hidden])
    c = torch.relu(gates[..., hidden:])
    if drop is not None:
        c = c * drop
    return (z * h + (1 - z) * c,)


def rnn_step(a_t: torch.Tensor, state: State, w_hh: torch.Tensor, b_hh: torch.Tensor,
             nonlinearity: str) -> State:
    """One Elman RNN frame, as ``nn.RNN``: ``h' = act(a_t + W_hh h + b_hh)``.

    Args:
        a_t: [D, B, H] input projections including ``b_ih``.
        state: (h [D, B, H],).
        w_hh: [D, H, H] recurrent weights in PyTorch's (out, in) layout.
        b_hh: [D, H].
        nonlinearity: "tanh" or "relu".
    """
    (h,) = state
    pre = a_t + torch.baddbmm(b_hh[:, None], h, w_hh.transpose(1, 2))
    return (torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre),)


def gru_step(a_t: torch.Tensor, state: State, w_hh: torch.Tensor, b_hh: torch.Tensor) -> State:
    """One GRU frame with ``nn.GRU``'s equations and gate order (r, z, n).

    Args:
        a_t: [D, B, 3H] input projections including ``b_ih``.
        state: (h [D, B, H],).
        w_hh: [D, 3H, H] recurrent weights (out, in).
        b_hh: [D, 3H].
    """
    (h,) = state
    rec = torch.baddbmm(b_hh[:, None], h, w_hh.transpose(1, 2))
    a_r, a_z, a_n = a_t.chunk(3, dim=-1)
    h_r, h_z, h_n = rec.chunk(3, dim=-1)
    r = torch.sigmoid(a_r + h_r)
    z = torch.sigmoid(a_z + h_z)
    n = torch.tanh(a_n + r * h_n)
    return ((1 - z) * n + z * h,)


def lstm_step(a_t: torch.Tensor, state: State, w_hh: torch.Tensor, b_hh: torch.Tensor) -> State:
    """One LSTM frame with ``nn.LSTM``'s equations and gate order (i, f, g, o).

    Args:
        a_t: [D, B, 4H] input projections including ``b_ih``.
        state: (h [D, B, H], c [D, B, H]).
        w_hh: [D, 4H, H] recurrent weights (out, in).
        b_hh: [D, 4H].
    """
    h, c = state
    gates = a_t + torch.baddbmm(b_hh[:, None], h, w_hh.transpose(1, 2))
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return (torch.sigmoid(o) * torch.tanh(c), c)


def mgu_step(a_t: torch.Tensor, state: State, u: torch.Tensor) -> State:
    """One minimal gated unit frame (Zhou et al. 2016).

    ``f = sigmoid(a_f + U_f h)``, ``n = tanh(a_n + U_n (f * h))``,
    ``h' = (1 - f) * h + f * n``.

    Args:
        a_t: [D, B, 2H] input projections with biases (forget gate first).
        state: (h [D, B, H],).
        u: [D, H, 2H] recurrent weights (``[:, :, :H]`` for f, ``[:, :, H:]`` for n).
    """
    (h,) = state
    hidden = h.shape[-1]
    f = torch.sigmoid(a_t[..., :hidden] + torch.bmm(h, u[..., :hidden]))
    n = torch.tanh(a_t[..., hidden:] + torch.bmm(f * h, u[..., hidden:]))
    return ((1 - f) * h + f * n,)
