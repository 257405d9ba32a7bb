// Fused Light GRU recurrence for CPU: per frame one batched matmul (ATen/BLAS)
// and one hand-written elementwise pass; hand-written backward. See
// asr/nn/ligru_fused.py for the equations and tensor layouts.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <optional>
#include <vector>

namespace {

// Rows (direction x batch) per parallel task: the elementwise work per frame is
// small, so only split it when each thread gets a few thousand elements.
int64_t grain_rows(int64_t hidden) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(hidden, 1)); }

template <typename scalar_t>
void forward_pointwise(const scalar_t* gates, const scalar_t* h_prev, const scalar_t* drop,
                       const scalar_t* keep, scalar_t* h, scalar_t* z_out, scalar_t* c_out,
                       int64_t rows, int64_t batch, int64_t hidden) {
  at::parallel_for(0, rows, grain_rows(hidden), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const scalar_t k = keep[r % batch];
      const scalar_t* g = gates + r * 2 * hidden;
      const scalar_t* hp = h_prev ? h_prev + r * hidden : nullptr;
      const scalar_t* dr = drop ? drop + r * hidden : nullptr;
      scalar_t* ho = h + r * hidden;
      scalar_t* zo = z_out + r * hidden;
      scalar_t* co = c_out + r * hidden;
      for (int64_t j = 0; j < hidden; ++j) {
        const scalar_t z = scalar_t(1) / (scalar_t(1) + std::exp(-g[j]));
        const scalar_t gc = g[hidden + j];
        const scalar_t c = gc > scalar_t(0) ? gc : scalar_t(0);
        const scalar_t cd = dr ? c * dr[j] : c;
        const scalar_t hv = hp ? hp[j] : scalar_t(0);
        zo[j] = z;
        co[j] = c;
        ho[j] = (z * hv + (scalar_t(1) - z) * cd) * k;
      }
    }
  });
}

template <typename scalar_t>
void backward_pointwise(const scalar_t* dh_carry, const scalar_t* grad_h, const scalar_t* h_prev,
                        const scalar_t* z_in, const scalar_t* c_in, const scalar_t* drop,
                        const scalar_t* keep, scalar_t* grad_gates, scalar_t* dh_direct,
                        int64_t rows, int64_t batch, int64_t hidden) {
  at::parallel_for(0, rows, grain_rows(hidden), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const scalar_t k = keep[r % batch];
      const int64_t o = r * hidden;
      scalar_t* gg = grad_gates + r * 2 * hidden;
      for (int64_t j = 0; j < hidden; ++j) {
        const scalar_t dhn = (dh_carry[o + j] + grad_h[o + j]) * k;
        const scalar_t z = z_in[o + j];
        const scalar_t c = c_in[o + j];
        const scalar_t d = drop ? drop[o + j] : scalar_t(1);
        const scalar_t hv = h_prev ? h_prev[o + j] : scalar_t(0);
        const scalar_t dz = dhn * (hv - c * d);
        const scalar_t dc = dhn * (scalar_t(1) - z) * d;
        gg[j] = dz * z * (scalar_t(1) - z);
        gg[hidden + j] = c > scalar_t(0) ? dc : scalar_t(0);
        dh_direct[o + j] = dhn * z;
      }
    }
  });
}

void check_inputs(const at::Tensor& a, const at::Tensor& u, const at::Tensor& keep,
                  const std::optional<at::Tensor>& drop) {
  TORCH_CHECK(a.device().is_cpu() && u.device().is_cpu(), "ligru_cpu: tensors must be on CPU");
  TORCH_CHECK(a.dim() == 4 && a.is_contiguous(), "ligru_cpu: a must be contiguous [T, D, B, 2H]");
  TORCH_CHECK(u.dim() == 3 && u.is_contiguous(), "ligru_cpu: u must be contiguous [D, H, 2H]");
  TORCH_CHECK(a.size(3) == 2 * u.size(1) && u.size(2) == 2 * u.size(1) && a.size(1) == u.size(0),
              "ligru_cpu: shapes of a and u disagree");
  TORCH_CHECK(keep.dim() == 2 && keep.size(0) == a.size(0) && keep.size(1) == a.size(2) &&
                  keep.is_contiguous() && keep.scalar_type() == a.scalar_type(),
              "ligru_cpu: keep must be contiguous [T, B] of a's dtype");
  TORCH_CHECK(u.scalar_type() == a.scalar_type(), "ligru_cpu: a and u dtypes differ");
  if (drop) {
    TORCH_CHECK(drop->is_contiguous() && drop->scalar_type() == a.scalar_type() &&
                    drop->numel() == a.size(1) * a.size(2) * u.size(1),
                "ligru_cpu: drop must be contiguous [D, B, H] of a's dtype");
  }
}

}  // namespace

// Returns (h [T, D, B, H], z [T, D, B, H], c [T, D, B, H]).
std::vector<at::Tensor> ligru_forward(const at::Tensor& a, const at::Tensor& u, const at::Tensor& keep,
                                      const std::optional<at::Tensor>& drop) {
  check_inputs(a, u, keep, drop);
  const int64_t steps = a.size(0), dirs = a.size(1), batch = a.size(2), hidden = u.size(1);
  auto hs = at::empty({steps, dirs, batch, hidden}, a.options());
  auto zs = at::empty_like(hs);
  auto cs = at::empty_like(hs);
  auto gates = at::empty({dirs, batch, 2 * hidden}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "ligru_forward", [&] {
    const scalar_t* drop_ptr = drop ? drop->data_ptr<scalar_t>() : nullptr;
    for (int64_t t = 0; t < steps; ++t) {
      const scalar_t* h_prev = nullptr;
      if (t == 0) {
        gates.copy_(a[t]);  // h_{-1} = 0: no recurrent term
      } else {
        at::baddbmm_out(gates, a[t], hs[t - 1], u);
        h_prev = hs[t - 1].data_ptr<scalar_t>();
      }
      forward_pointwise<scalar_t>(gates.data_ptr<scalar_t>(), h_prev, drop_ptr,
                                  keep[t].data_ptr<scalar_t>(), hs[t].data_ptr<scalar_t>(),
                                  zs[t].data_ptr<scalar_t>(), cs[t].data_ptr<scalar_t>(),
                                  dirs * batch, batch, hidden);
    }
  });
  return {hs, zs, cs};
}

// Returns (grad_a [T, D, B, 2H], grad_u [D, H, 2H]).
std::vector<at::Tensor> ligru_backward(const at::Tensor& grad_h, const at::Tensor& u,
                                       const at::Tensor& keep, const std::optional<at::Tensor>& drop,
                                       const at::Tensor& hs, const at::Tensor& zs, const at::Tensor& cs) {
  TORCH_CHECK(grad_h.is_contiguous() && grad_h.sizes() == hs.sizes(), "ligru_cpu: bad grad_h");
  const int64_t steps = hs.size(0), dirs = hs.size(1), batch = hs.size(2), hidden = hs.size(3);
  auto grad_a = at::empty({steps, dirs, batch, 2 * hidden}, hs.options());
  auto dh_carry = at::zeros({dirs, batch, hidden}, hs.options());
  auto dh_direct = at::empty_like(dh_carry);
  const auto u_t = u.transpose(1, 2);
  AT_DISPATCH_FLOATING_TYPES(hs.scalar_type(), "ligru_backward", [&] {
    const scalar_t* drop_ptr = drop ? drop->data_ptr<scalar_t>() : nullptr;
    for (int64_t t = steps - 1; t >= 0; --t) {
      const scalar_t* h_prev = t > 0 ? hs[t - 1].data_ptr<scalar_t>() : nullptr;
      backward_pointwise<scalar_t>(dh_carry.data_ptr<scalar_t>(), grad_h[t].data_ptr<scalar_t>(), h_prev,
                                   zs[t].data_ptr<scalar_t>(), cs[t].data_ptr<scalar_t>(), drop_ptr,
                                   keep[t].data_ptr<scalar_t>(), grad_a[t].data_ptr<scalar_t>(),
                                   dh_direct.data_ptr<scalar_t>(), dirs * batch, batch, hidden);
      if (t > 0) at::baddbmm_out(dh_carry, dh_direct, grad_a[t], u_t);
    }
  });
  // grad_u = sum_{t>=1} h_{t-1}^T grad_gates_t, as one matmul over all frames.
  at::Tensor grad_u;
  if (steps > 1) {
    auto lhs = hs.narrow(0, 0, steps - 1).permute({1, 3, 0, 2}).reshape({dirs, hidden, (steps - 1) * batch});
    auto rhs = grad_a.narrow(0, 1, steps - 1).permute({1, 0, 2, 3}).reshape({dirs, (steps - 1) * batch, 2 * hidden});
    grad_u = at::bmm(lhs, rhs);
  } else {
    grad_u = at::zeros_like(u);
  }
  return {grad_a, grad_u};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &ligru_forward, "Fused LiGRU recurrence, forward (CPU)");
  m.def("backward", &ligru_backward, "Fused LiGRU recurrence, backward (CPU)");
}
