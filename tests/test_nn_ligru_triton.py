"""The Triton LiGRU backend against the ATen-ops one: in Triton's interpreter on CPU, natively on CUDA.

The interpreter is chosen when triton is first imported (``TRITON_INTERPRET=1``),
so the CPU check runs this file as a script in a fresh interpreter with the
variable set. Run by hand: ``TRITON_INTERPRET=1 python tests/test_nn_ligru_triton.py``.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

try:
    import triton
except ImportError:
    triton = None

from asr.errors import AsrError
from asr.nn import build_rnn, ligru_triton
from asr.nn.ligru_fused import ligru_recurrence, select_backend
from test_nn_cells import GRADCHECK_EPS, batch_first_relu_margin

ROOT = Path(__file__).resolve().parents[1]
# (directions, lengths or None, recurrent dropout)
CASES = [(2, [6, 3, 1, 5], True), (2, [6, 3, 1, 5], False), (1, [4, 6, 2, 1], True), (2, None, True),
         (1, None, False)]


def compare_with_torch_backend(device: str, dtype: torch.dtype) -> None:
    """Outputs and gradients (a, u) of backend "triton" equal those of "torch" on every case."""
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {}
    generator = torch.Generator().manual_seed(0)
    batch, steps, hidden = 4, 6, 5  # H not a power of two: the kernels' tail masks matter
    for num_dirs, lengths, with_drop in CASES:
        def randn(*shape):
            return torch.randn(*shape, generator=generator, dtype=dtype).to(device)

        a = randn(batch, steps, num_dirs * 2 * hidden).requires_grad_()
        u = (0.5 * randn(num_dirs, hidden, 2 * hidden)).requires_grad_()
        keep = torch.rand(num_dirs, batch, hidden, generator=generator) > 0.3
        drop = (keep.to(dtype) / 0.7).to(device) if with_drop else None
        lengths_t = None if lengths is None else torch.tensor(lengths, device=device)
        grad_out = randn(batch, steps, num_dirs * hidden)
        results = []
        for backend in ("triton", "torch"):
            out = ligru_recurrence(a, u, lengths_t, drop, backend)
            results.append((out, *torch.autograd.grad((out * grad_out).sum(), (a, u))))
        case = f"dirs={num_dirs} lengths={lengths} drop={with_drop} {dtype}"
        for name, got, want in zip(("output", "grad a", "grad u"), *results):
            torch.testing.assert_close(got, want, **tolerance, msg=lambda m: f"{case} {name}: {m}")
        for b, length in enumerate(lengths or []):  # padded frames output exactly zero
            assert not results[0][0][b, length:].any(), case


def gradcheck_triton_backend(device: str) -> None:
    """``torch.autograd.gradcheck`` of the triton backend (float64, both directions, padding, dropout)."""
    generator = torch.Generator().manual_seed(1)
    batch, steps, num_dirs, hidden = 2, 3, 2, 3
    a = torch.randn(batch, steps, num_dirs * 2 * hidden, generator=generator, dtype=torch.float64)
    u = 0.3 * torch.randn(num_dirs, hidden, 2 * hidden, generator=generator, dtype=torch.float64)
    drop = (torch.rand(num_dirs, batch, hidden, generator=generator) > 0.3).double() / 0.7
    a, u, drop = a.to(device).requires_grad_(), u.to(device).requires_grad_(), drop.to(device)
    lengths = torch.tensor([3, 2], device=device)
    assert batch_first_relu_margin(a, u, lengths, drop) > 20 * GRADCHECK_EPS  # finite differences valid
    torch.manual_seed(0)  # fast mode's random projections (one Jacobian-vector product each way)
    assert torch.autograd.gradcheck(lambda a, u: ligru_recurrence(a, u, lengths, drop, "triton"), (a, u),
                                    eps=GRADCHECK_EPS, fast_mode=True)


def run_interpreted_checks() -> None:
    """Every check on CPU tensors; needs ``TRITON_INTERPRET=1`` before triton's import."""
    assert ligru_triton.INTERPRET, "set TRITON_INTERPRET=1 before importing triton"
    for dtype in (torch.float32, torch.float64):
        compare_with_torch_backend("cpu", dtype)
    gradcheck_triton_backend("cpu")
    print("triton backend matches the torch backend")


def test_triton_backend_in_interpreter():
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, __file__], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "matches the torch backend" in proc.stdout


@pytest.mark.skipif(ligru_triton.triton is None or ligru_triton.INTERPRET, reason="needs triton, compiled")
@pytest.mark.parametrize("dtype", ["fp32", "fp64"])
def test_kernels_compile_for_hopper_without_a_gpu(dtype):
    # Lowering to a sm_90 cubin (ptxas included) catches what the interpreter cannot:
    # types, unsupported ops, fp64 math. No GPU needed.
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    pointer = "*" + dtype
    kernels = {ligru_triton.forward_step_kernel: ["act_ptr", "h_prev_ptr", "drop_ptr", "keep_ptr", "h_ptr"],
               ligru_triton.backward_step_kernel: ["dh_ptr", "grad_h_ptr", "h_prev_ptr", "act_ptr", "drop_ptr",
                                                   "keep_ptr", "grad_act_ptr"]}
    for kernel, pointers in kernels.items():
        for has_drop in (True, False):
            signature = {**dict.fromkeys(pointers, pointer), **dict.fromkeys(["numel", "batch", "hidden"], "i32"),
                         "HAS_DROP": "constexpr", "BLOCK": "constexpr"}
            source = ASTSource(kernel, signature, {"HAS_DROP": has_drop, "BLOCK": ligru_triton.BLOCK})
            compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32))
            assert compiled.asm["cubin"]


@pytest.mark.skipif(not (torch.cuda.is_available() and ligru_triton.triton is not None),
                    reason="needs a CUDA device and triton")
def test_triton_backend_on_gpu():
    for dtype in (torch.float32, torch.float64):
        compare_with_torch_backend("cuda", dtype)
    gradcheck_triton_backend("cuda")
    a = torch.zeros(1, 1, 4, device="cuda")
    assert select_backend("auto", a) == "triton"
    assert select_backend("auto", a.half()) == "torch"  # low precision: ATen ops
    torch.manual_seed(0)
    model = build_rnn("ligru", 3, 4, num_layers=2, bidirectional=True, recurrent_dropout=0.2).cuda()
    out = model(torch.randn(2, 5, 3, device="cuda"), torch.tensor([5, 2], device="cuda"))
    out.sum().backward()
    assert out.shape == (2, 5, 8) and out[1, 2:].abs().max() == 0


def test_backend_selection_and_errors_on_cpu():
    a = torch.zeros(1, 2, 4)
    assert select_backend("auto", a) in ("cpp", "torch")
    assert select_backend("triton", a) == "triton"
    with pytest.raises(AsrError, match="must be one of"):
        select_backend("cuda", a)
    if not ligru_triton.INTERPRET:
        with pytest.raises(AsrError, match="'triton' needs triton and CUDA"):
            ligru_recurrence(a, torch.zeros(1, 1, 2), None, backend="triton")
    with pytest.raises(AsrError, match="only the 'torch' backend"):
        build_rnn("sligru", 3, 4, backend="triton")


if __name__ == "__main__":
    run_interpreted_checks()
