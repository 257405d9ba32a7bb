"""Recurrent cells: fused paths against reference loops, padding, dropout, determinism."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from asr.errors import AsrError
from asr.nn import build_rnn
from asr.nn import ligru_cpp
from asr.nn.cells_reference import ligru_step, run_recurrence
from asr.nn.ligru_fused import ligru_recurrence
from asr.nn.padding import direction_rows, lengths_to_mask, merge_directions, split_directions
from asr.nn.sligru_fused import sligru_recurrence
from asr.nn.mgu_fused import mgu_recurrence

FUSED_CASES = [("rnn", {"nonlinearity": "tanh"}), ("rnn", {"nonlinearity": "relu"}), ("gru", {}),
               ("lstm", {}), ("ligru", {"backend": "torch"}), ("ligru", {"backend": "cpp"}),
               ("ligru", {"backend": "torch", "batch_norm": False}), ("sligru", {}), ("mgu", {})]
ALL_CELLS = ["rnn", "lstm", "gru", "ligru", "sligru", "mgu"]
LENGTHS = torch.tensor([7, 5, 2])
# Finite-difference step of the gradchecks. gradcheck's default (1e-6) divides output
# differences by 2e-6: forward evaluations that differ by 2e-11 (the amount seen in the two
# failing runs, whatever perturbed them) already exceed atol=1e-5. At 1e-4 such noise costs
# 1e-7, while the central-difference error (eps^2 times a third derivative, ~1e-8) stays far
# below atol; ReLU pre-activations are asserted to be at least 20 steps away from the kink.
GRADCHECK_EPS = 1e-4


def require_cpp(options: dict) -> None:
    if options.get("backend") == "cpp" and not ligru_cpp.available():
        pytest.skip("C++ LiGRU kernel did not build (see the logged warning)")


def relu_margin(a: torch.Tensor, u: torch.Tensor, mask: torch.Tensor, drop: torch.Tensor | None = None,
                layer_norm: tuple[torch.Tensor, torch.Tensor] | None = None) -> float:
    """Smallest |candidate pre-activation| of a (S)LiGRU recurrence over valid frames.

    Central differences are wrong where a perturbation moves a ReLU input across 0.

    Args:
        a: [T, D, B, 2H] input projections, time-major.
        u: [D, H, 2H].
        mask: [T, B] bool, valid frames.
        drop: [D, B, H] or None.
        layer_norm: SLi-GRU's (weight, bias) or None.
    """
    hidden = u.shape[1]
    h = a.new_zeros(a.shape[1], a.shape[2], hidden)
    margin = math.inf
    with torch.no_grad():
        for t in range(a.shape[0]):
            rec = torch.bmm(h, u)
            if layer_norm is not None:
                rec = F.layer_norm(rec, (2 * hidden,)) * layer_norm[0][:, None] + layer_norm[1][:, None]
            if mask[t].any():
                margin = min(margin, (a[t] + rec)[..., hidden:][:, mask[t]].abs().min().item())
            (h,) = ligru_step(a[t], (h,), u, drop, layer_norm)
            h = h * mask[t, None, :, None]
    return margin


def batch_first_relu_margin(a: torch.Tensor, u: torch.Tensor, lengths: torch.Tensor,
                            drop: torch.Tensor | None = None) -> float:
    """``relu_margin`` for ``ligru_recurrence``'s arguments (a [B, T, D * 2H])."""
    batch, steps, _ = a.shape
    rows = direction_rows(lengths, batch, steps, u.shape[0], a.device)
    mask = lengths_to_mask(lengths, batch, steps, a.device).t()
    return relu_margin(split_directions(a.detach(), rows, u.shape[0]), u.detach(), mask, drop)


def module_relu_margin(model, x: torch.Tensor, lengths: torch.Tensor) -> float:
    """``relu_margin`` over every layer of a LiGRU stack (no dropout) on input x [B, T, F]."""
    model = copy.deepcopy(model)  # batch norm updates its running statistics
    mask = lengths_to_mask(lengths, x.shape[0], x.shape[1])
    margin = math.inf
    with torch.no_grad():
        for layer in model.layers:
            a = F.linear(x, layer.w, layer.bias)
            if layer.norm is not None:
                a = layer.norm(a, mask)
            margin = min(margin, batch_first_relu_margin(a, layer.u, lengths))
            x = layer(x, lengths, mask)
    return margin


def fused_and_reference(cell: str, options: dict, **kwargs):
    torch.manual_seed(0)
    fused = build_rnn(cell, 5, 4, num_layers=2, bidirectional=True, **options, **kwargs).double()
    reference = build_rnn(cell, 5, 4, num_layers=2, bidirectional=True, impl="reference",
                          **{k: v for k, v in options.items() if k != "backend"}, **kwargs).double()
    reference.load_state_dict(fused.state_dict())
    return fused, reference


@pytest.mark.parametrize("cell,options", FUSED_CASES)
def test_fused_matches_reference_outputs_and_gradients(cell, options):
    require_cpp(options)
    fused, reference = fused_and_reference(cell, options)
    x = torch.randn(3, 7, 5, dtype=torch.float64)
    grad_out = torch.randn(3, 7, 8, dtype=torch.float64)
    results = []
    for module in (fused, reference):
        xi = x.clone().requires_grad_()
        out = module(xi, LENGTHS)
        grads = torch.autograd.grad((out * grad_out).sum(), [xi, *module.parameters()])
        results.append((out, grads))
    torch.testing.assert_close(results[0][0], results[1][0])
    for g_fused, g_ref in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(g_fused, g_ref)


@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_ligru_recurrence_gradcheck(backend):
    require_cpp({"backend": backend})
    torch.manual_seed(1)
    batch, steps, dirs, hidden = 3, 5, 2, 4
    a = torch.randn(batch, steps, dirs * 2 * hidden, dtype=torch.float64, requires_grad=True)
    u = (0.5 * torch.randn(dirs, hidden, 2 * hidden, dtype=torch.float64)).requires_grad_()
    lengths = torch.tensor([5, 3, 1])
    drop = (torch.rand(dirs, batch, hidden) > 0.3).double() / 0.7
    assert batch_first_relu_margin(a, u, lengths, drop) > 20 * GRADCHECK_EPS
    assert torch.autograd.gradcheck(lambda a, u: ligru_recurrence(a, u, lengths, drop, backend), (a, u),
                                    eps=GRADCHECK_EPS)


def test_ligru_backends_agree_with_reference_loop():
    require_cpp({"backend": "cpp"})
    torch.manual_seed(10)
    batch, steps, dirs, hidden = 4, 9, 2, 6
    a = torch.randn(batch, steps, dirs * 2 * hidden, dtype=torch.float64, requires_grad=True)
    u = (0.4 * torch.randn(dirs, hidden, 2 * hidden, dtype=torch.float64)).requires_grad_()
    lengths = torch.tensor([9, 4, 1, 7])
    drop = (torch.rand(dirs, batch, hidden) > 0.3).double() / 0.7
    rows = direction_rows(lengths, batch, steps, dirs, a.device)
    mask = lengths_to_mask(lengths, batch, steps).t()
    step = lambda x, s: ligru_step(x, s, u, drop)  # noqa: E731
    h0 = torch.zeros(dirs, batch, hidden, dtype=torch.float64)
    reference = merge_directions(run_recurrence(step, split_directions(a, rows, dirs), (h0,), mask), rows)
    grad_out = torch.randn_like(reference)
    expected = torch.autograd.grad((reference * grad_out).sum(), (a, u))
    for backend in ("torch", "cpp"):
        out = ligru_recurrence(a, u, lengths, drop, backend)
        torch.testing.assert_close(out, reference)
        for got, want in zip(torch.autograd.grad((out * grad_out).sum(), (a, u)), expected):
            torch.testing.assert_close(got, want)


def test_sligru_recurrence_gradcheck():
    torch.manual_seed(1)
    steps, dirs, batch, hidden = 5, 2, 3, 4
    a = torch.randn(steps, dirs, batch, 2 * hidden, dtype=torch.float64, requires_grad=True)
    u = (0.5 * torch.randn(dirs, hidden, 2 * hidden, dtype=torch.float64)).requires_grad_()
    weight = (1 + 0.1 * torch.randn(dirs, 2 * hidden, dtype=torch.float64)).requires_grad_()
    bias = (0.1 * torch.randn(dirs, 2 * hidden, dtype=torch.float64)).requires_grad_()
    mask = torch.arange(steps)[:, None] < torch.tensor([5, 3, 1])[None]
    drop = (torch.rand(dirs, batch, hidden) > 0.3).double() / 0.7
    assert relu_margin(a, u, mask, drop, (weight, bias)) > 20 * GRADCHECK_EPS
    assert torch.autograd.gradcheck(
        lambda a, u, w, b: sligru_recurrence(a, u, w, b, mask, drop), (a, u, weight, bias), eps=GRADCHECK_EPS)


def test_mgu_recurrence_gradcheck():
    torch.manual_seed(1)
    steps, dirs, batch, hidden = 5, 2, 3, 4
    a = torch.randn(steps, dirs, batch, 2 * hidden, dtype=torch.float64, requires_grad=True)
    u = (0.5 * torch.randn(dirs, hidden, 2 * hidden, dtype=torch.float64)).requires_grad_()
    mask = torch.arange(steps)[:, None] < torch.tensor([5, 3, 1])[None]
    assert torch.autograd.gradcheck(lambda a, u: mgu_recurrence(a, u, mask), (a, u), eps=GRADCHECK_EPS)


@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_ligru_module_gradcheck(backend):
    require_cpp({"backend": backend})
    torch.manual_seed(2)
    model = build_rnn("ligru", 3, 2, num_layers=2, bidirectional=True, backend=backend).double()
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 3])
    assert module_relu_margin(model, x, lengths) > 20 * GRADCHECK_EPS
    assert torch.autograd.gradcheck(lambda x: model(x, lengths), (x,), eps=GRADCHECK_EPS)


def test_ligru_matches_paper_equations():
    torch.manual_seed(3)
    model = build_rnn("ligru", 3, 2, batch_norm=False).double()
    layer = model.layers[0]
    x = torch.randn(1, 3, 3, dtype=torch.float64)
    w_z, w_h = layer.w.split(2)
    b_z, b_h = layer.bias.split(2)
    u_z, u_h = layer.u[0].split(2, dim=1)
    h = torch.zeros(2, dtype=torch.float64)
    expected = []
    for t in range(3):
        z = torch.sigmoid(w_z @ x[0, t] + b_z + h @ u_z)
        c = torch.relu(w_h @ x[0, t] + b_h + h @ u_h)
        h = z * h + (1 - z) * c
        expected.append(h)
    torch.testing.assert_close(model(x)[0], torch.stack(expected))


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_padding_invariance_both_directions(cell):
    torch.manual_seed(4)
    model = build_rnn(cell, 5, 4, num_layers=2, bidirectional=True).double().eval()
    x = torch.randn(3, 7, 5, dtype=torch.float64)
    batch_out = model(x, LENGTHS)
    for b, length in enumerate(LENGTHS.tolist()):
        alone = model(x[b:b + 1, :length], torch.tensor([length]))
        torch.testing.assert_close(batch_out[b, :length], alone[0])
        assert batch_out[b, length:].abs().max() == 0 if length < 7 else True


@pytest.mark.parametrize("cell", ALL_CELLS)
def test_padded_values_never_reach_valid_frames_in_training(cell):
    torch.manual_seed(5)
    model = build_rnn(cell, 5, 4, num_layers=2, bidirectional=True, dropout=0.0).double().train()
    x = torch.randn(3, 7, 5, dtype=torch.float64)
    garbage = x.clone()
    for b, length in enumerate(LENGTHS.tolist()):
        garbage[b, length:] = 1e3 * torch.randn(7 - length, 5, dtype=torch.float64)
    torch.testing.assert_close(model(x, LENGTHS), model(garbage, LENGTHS))


@pytest.mark.parametrize("impl", ["auto", "reference"])
def test_recurrent_dropout_mask_constant_over_time(impl):
    torch.manual_seed(6)
    model = build_rnn("ligru", 2, 64, batch_norm=False, recurrent_dropout=0.4, impl=impl).train()
    layer = model.layers[0]
    with torch.no_grad():  # z = 0 and c = 1 at every frame, so h_t is the dropout mask itself
        layer.w.zero_()
        layer.u.zero_()
        layer.bias[:64] = -100.0
        layer.bias[64:] = 1.0
    out = model(torch.randn(8, 20, 2))  # [B, T, H]
    torch.testing.assert_close(out, out[:, :1].expand_as(out))
    kept = out[out != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.6))  # inverted scaling
    dropped = (out[:, 0] == 0).float().mean().item()
    assert 0.25 < dropped < 0.55
    assert not torch.equal(out[0, 0], out[1, 0])  # one mask per sequence


def test_recurrent_dropout_off_in_eval():
    model = build_rnn("ligru", 3, 4, recurrent_dropout=0.5).eval()
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(model(x), model(x))


@pytest.mark.parametrize("cell", ["ligru", "gru", "sligru"])
def test_fixed_seed_gives_identical_outputs(cell):
    def run():
        torch.manual_seed(7)
        options = {"recurrent_dropout": 0.3} if "ligru" in cell else {}
        model = build_rnn(cell, 3, 4, num_layers=2, bidirectional=True, dropout=0.2, **options)
        out = model(torch.randn(2, 6, 3), torch.tensor([6, 4]))
        out.sum().backward()
        return out, model.layers[0].w.grad if hasattr(model, "layers") else model.rnn.weight_hh_l0.grad
    first, second = run(), run()
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_time_major_matches_batch_first():
    torch.manual_seed(8)
    model = build_rnn("ligru", 3, 4, bidirectional=True).eval()
    time_major = build_rnn("ligru", 3, 4, bidirectional=True, batch_first=False).eval()
    time_major.module.load_state_dict(model.state_dict())
    x = torch.randn(2, 6, 3)
    lengths = torch.tensor([6, 3])
    torch.testing.assert_close(time_major(x.transpose(0, 1), lengths).transpose(0, 1), model(x, lengths))


@pytest.mark.parametrize("cell", ["ligru", "sligru", "mgu"])
def test_autocast_keeps_fp32_recurrent_state(cell):
    torch.manual_seed(9)
    model = build_rnn(cell, 8, 16, bidirectional=True).eval()
    x = torch.randn(2, 10, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, model(x), atol=5e-2, rtol=5e-2)


def test_output_size_and_errors():
    assert build_rnn("gru", 3, 4, bidirectional=True).output_size == 8
    assert build_rnn("mgu", 3, 4, num_layers=2).output_size == 4
    with pytest.raises(AsrError, match="unknown recurrent cell"):
        build_rnn("transformer", 3, 4)
    with pytest.raises(AsrError, match="unknown option"):
        build_rnn("gru", 3, 4, batch_norm=True)
    with pytest.raises(AsrError, match="only the 'torch' backend"):
        build_rnn("sligru", 3, 4, backend="cpp")
    with pytest.raises(AsrError, match="impl must be"):
        build_rnn("mgu", 3, 4, impl="cuda")


def test_reference_module_copy_is_independent():
    fused, reference = fused_and_reference("ligru", {})
    assert fused.layers[0].impl == "fused" and reference.layers[0].impl == "reference"
    clone = copy.deepcopy(fused)
    assert torch.equal(clone.layers[0].u, fused.layers[0].u)


def test_reference_loop_holds_state_over_padding():
    u = torch.randn(1, 3, 6, dtype=torch.float64)
    a = torch.randn(4, 1, 2, 6, dtype=torch.float64)
    mask = torch.tensor([[True, True], [True, True], [True, False], [True, False]])
    step = lambda x, s: ligru_step(x, s, u)  # noqa: E731
    out = run_recurrence(step, a, (torch.zeros(1, 2, 3, dtype=torch.float64),), mask)
    assert out[2:, 0, 1].abs().max() == 0
    short = run_recurrence(step, a[:2, :, 1:], (torch.zeros(1, 1, 3, dtype=torch.float64),), None)
    torch.testing.assert_close(out[:2, :, 1:], short)
