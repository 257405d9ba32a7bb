// Fused Light GRU recurrence for CPU, working in place on the batch-first
// layout of the layer: per frame one batched matmul (ATen/BLAS) and one
// hand-written elementwise pass; hand-written backward. See
// asr/nn/ligru_fused.py for the equations.
//
// Layouts: a [B, T, D*2H] input projections (direction d's gates at
// [d*2H, (d+1)*2H), update gate first); y, z, c [B, T, D*H]. Direction 1 runs
// backward in time within each sequence's length: at its step t it reads and
// writes frame len_b - 1 - t. Frames t >= len_b are padding: outputs zero.
// Reading and writing the layer's own layout avoids reordering copies, and y
// doubles as the saved hidden states (it is the next layer's input anyway).
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <optional>
#include <vector>

namespace {

// Rows (direction x batch) per parallel task. The elementwise work of a frame
// is small (D*B*H, ~9k elements at TIMIT's shape): like ATen's own grain size
// (32k elements), split it over threads only when each gets enough to pay for
// the synchronisation.
int64_t grain_rows(int64_t hidden) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(hidden, 1)); }

struct Shape {
  int64_t batch, steps, dirs, hidden;
  const int64_t* lengths;
  // Frame that direction d of sequence b visits at step t.
  int64_t frame(int64_t d, int64_t b, int64_t t) const {
    const int64_t len = lengths[b];
    return (d == 0 || t >= len) ? t : len - 1 - t;
  }
  // Offset of (b, frame, d) in a [B, T, D*width] tensor.
  int64_t offset(int64_t b, int64_t f, int64_t d, int64_t width) const {
    return ((b * steps + f) * dirs + d) * width;
  }
};

template <typename scalar_t>
void forward_step(const Shape& s, int64_t t, const scalar_t* a, const scalar_t* rec, const scalar_t* drop,
                  scalar_t* h_state, scalar_t* y, scalar_t* z_out, scalar_t* c_out) {
  const int64_t hidden = s.hidden;
  at::parallel_for(0, s.dirs * s.batch, grain_rows(hidden), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t d = r / s.batch, b = r % s.batch;
      const int64_t f = s.frame(d, b, t);
      const scalar_t k = t < s.lengths[b] ? scalar_t(1) : scalar_t(0);
      const scalar_t* ar = a + s.offset(b, f, d, 2 * hidden);
      const scalar_t* rr = rec ? rec + r * 2 * hidden : nullptr;
      const scalar_t* dr = drop ? drop + r * hidden : nullptr;
      scalar_t* hr = h_state + r * hidden;
      const int64_t o = s.offset(b, f, d, hidden);
      for (int64_t j = 0; j < hidden; ++j) {
        const scalar_t gz = ar[j] + (rr ? rr[j] : scalar_t(0));
        const scalar_t gc = ar[hidden + j] + (rr ? rr[hidden + j] : scalar_t(0));
        const scalar_t z = scalar_t(1) / (scalar_t(1) + std::exp(-gz));
        const scalar_t c = gc > scalar_t(0) ? gc : scalar_t(0);
        const scalar_t cd = dr ? c * dr[j] : c;
        const scalar_t hn = (z * hr[j] + (scalar_t(1) - z) * cd) * k;
        hr[j] = hn;
        y[o + j] = hn;
        z_out[o + j] = z;
        c_out[o + j] = c;
      }
    }
  });
}

template <typename scalar_t>
void backward_step(const Shape& s, int64_t t, const scalar_t* grad_y, const scalar_t* y, const scalar_t* z_in,
                   const scalar_t* c_in, const scalar_t* drop, const scalar_t* dh_carry, scalar_t* grad_a,
                   scalar_t* grad_gates, scalar_t* dh_direct) {
  const int64_t hidden = s.hidden;
  at::parallel_for(0, s.dirs * s.batch, grain_rows(hidden), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t d = r / s.batch, b = r % s.batch;
      const int64_t f = s.frame(d, b, t);
      const bool valid = t < s.lengths[b];
      const int64_t o = s.offset(b, f, d, hidden);
      scalar_t* ga = grad_a + s.offset(b, f, d, 2 * hidden);
      scalar_t* gg = grad_gates + r * 2 * hidden;
      scalar_t* dd = dh_direct + r * hidden;
      if (!valid) {  // padding: no gradient, and none carried to earlier steps
        for (int64_t j = 0; j < 2 * hidden; ++j) ga[j] = gg[j] = scalar_t(0);
        for (int64_t j = 0; j < hidden; ++j) dd[j] = scalar_t(0);
        continue;
      }
      const scalar_t* hp = t > 0 ? y + s.offset(b, s.frame(d, b, t - 1), d, hidden) : nullptr;
      const scalar_t* dr = drop ? drop + r * hidden : nullptr;
      const scalar_t* carry = dh_carry + r * hidden;
      for (int64_t j = 0; j < hidden; ++j) {
        const scalar_t dhn = carry[j] + grad_y[o + j];
        const scalar_t z = z_in[o + j];
        const scalar_t c = c_in[o + j];
        const scalar_t dm = dr ? dr[j] : scalar_t(1);
        const scalar_t hv = hp ? hp[j] : scalar_t(0);
        const scalar_t dz = dhn * (hv - c * dm) * z * (scalar_t(1) - z);
        const scalar_t dc = c > scalar_t(0) ? dhn * (scalar_t(1) - z) * dm : scalar_t(0);
        ga[j] = gg[j] = dz;
        ga[hidden + j] = gg[hidden + j] = dc;
        dd[j] = dhn * z;
      }
    }
  });
}

Shape make_shape(const at::Tensor& a, const at::Tensor& u, const at::Tensor& lengths) {
  TORCH_CHECK(a.device().is_cpu() && u.device().is_cpu(), "ligru_cpu: tensors must be on CPU");
  TORCH_CHECK(a.dim() == 3 && a.is_contiguous(), "ligru_cpu: a must be contiguous [B, T, D*2H]");
  TORCH_CHECK(u.dim() == 3 && u.is_contiguous() && u.size(2) == 2 * u.size(1),
              "ligru_cpu: u must be contiguous [D, H, 2H]");
  TORCH_CHECK(u.scalar_type() == a.scalar_type(), "ligru_cpu: a and u dtypes differ");
  TORCH_CHECK(a.size(2) == u.size(0) * u.size(2), "ligru_cpu: shapes of a and u disagree");
  TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == a.size(0) && lengths.is_contiguous() &&
                  lengths.scalar_type() == at::kLong && lengths.device().is_cpu(),
              "ligru_cpu: lengths must be a contiguous CPU int64 [B]");
  const int64_t* len = lengths.data_ptr<int64_t>();
  for (int64_t b = 0; b < a.size(0); ++b) {
    TORCH_CHECK(len[b] >= 0 && len[b] <= a.size(1), "ligru_cpu: lengths out of range");
  }
  return Shape{a.size(0), a.size(1), u.size(0), u.size(1), len};
}

void check_drop(const std::optional<at::Tensor>& drop, const at::Tensor& a, const Shape& s) {
  if (drop) {
    TORCH_CHECK(drop->is_contiguous() && drop->scalar_type() == a.scalar_type() &&
                    drop->numel() == s.dirs * s.batch * s.hidden,
                "ligru_cpu: drop must be contiguous [D, B, H] of a's dtype");
  }
}

}  // namespace

// Returns (y, z, c), each [B, T, D*H].
std::vector<at::Tensor> ligru_forward(const at::Tensor& a, const at::Tensor& u, const at::Tensor& lengths,
                                      const std::optional<at::Tensor>& drop) {
  const Shape s = make_shape(a, u, lengths);
  check_drop(drop, a, s);
  auto y = at::empty({s.batch, s.steps, s.dirs * s.hidden}, a.options());
  auto zs = at::empty_like(y);
  auto cs = at::empty_like(y);
  auto h_state = at::zeros({s.dirs, s.batch, s.hidden}, a.options());
  auto rec = at::empty({s.dirs, s.batch, 2 * s.hidden}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "ligru_forward", [&] {
    const scalar_t* drop_ptr = drop ? drop->data_ptr<scalar_t>() : nullptr;
    for (int64_t t = 0; t < s.steps; ++t) {
      if (t > 0) at::bmm_out(rec, h_state, u);  // h_{-1} = 0: no recurrent term at t = 0
      forward_step<scalar_t>(s, t, a.data_ptr<scalar_t>(), t > 0 ? rec.data_ptr<scalar_t>() : nullptr,
                             drop_ptr, h_state.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(),
                             zs.data_ptr<scalar_t>(), cs.data_ptr<scalar_t>());
    }
  });
  return {y, zs, cs};
}

// Returns (grad_a [B, T, D*2H], grad_u [D, H, 2H]).
std::vector<at::Tensor> ligru_backward(const at::Tensor& grad_y, const at::Tensor& u, const at::Tensor& lengths,
                                       const std::optional<at::Tensor>& drop, const at::Tensor& y,
                                       const at::Tensor& zs, const at::Tensor& cs) {
  TORCH_CHECK(grad_y.is_contiguous() && grad_y.sizes() == y.sizes(), "ligru_cpu: bad grad_y");
  const int64_t dirs = u.size(0), hidden = u.size(1);
  const Shape s{y.size(0), y.size(1), dirs, hidden, lengths.data_ptr<int64_t>()};
  auto grad_a = at::empty({s.batch, s.steps, dirs * 2 * hidden}, y.options());
  auto grad_gates = at::empty({dirs, s.batch, 2 * hidden}, y.options());
  auto dh_carry = at::zeros({dirs, s.batch, hidden}, y.options());
  auto dh_direct = at::empty_like(dh_carry);
  const auto u_t = u.transpose(1, 2);
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "ligru_backward", [&] {
    const scalar_t* drop_ptr = drop ? drop->data_ptr<scalar_t>() : nullptr;
    for (int64_t t = s.steps - 1; t >= 0; --t) {
      backward_step<scalar_t>(s, t, grad_y.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(),
                              zs.data_ptr<scalar_t>(), cs.data_ptr<scalar_t>(), drop_ptr,
                              dh_carry.data_ptr<scalar_t>(), grad_a.data_ptr<scalar_t>(),
                              grad_gates.data_ptr<scalar_t>(), dh_direct.data_ptr<scalar_t>());
      if (t > 0) at::baddbmm_out(dh_carry, dh_direct, grad_gates, u_t);
    }
  });
  // grad_u[d] = sum over valid frames of h_prev^T grad_gates. Pairs (h_prev, frame)
  // are (t-1, t) forward and (t+1, t) backward; pairs that touch padding
  // contribute zero (padded outputs and gradients are zero). One matmul per
  // sequence and direction over all its frames.
  auto grad_u = at::zeros_like(u);
  if (s.steps > 1) {
    auto y4 = y.view({s.batch, s.steps, dirs, hidden});
    auto ga4 = grad_a.view({s.batch, s.steps, dirs, 2 * hidden});
    for (int64_t d = 0; d < dirs; ++d) {
      auto prev = y4.select(2, d).narrow(1, d == 0 ? 0 : 1, s.steps - 1);  // [B, T-1, H]
      auto gates = ga4.select(2, d).narrow(1, d == 0 ? 1 : 0, s.steps - 1);  // [B, T-1, 2H]
      auto acc = grad_u[d];
      for (int64_t b = 0; b < s.batch; ++b) acc.addmm_(prev[b].t(), gates[b]);
    }
  }
  return {grad_a, grad_u};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &ligru_forward, "Fused LiGRU recurrence, forward (CPU, batch-first)");
  m.def("backward", &ligru_backward, "Fused LiGRU recurrence, backward (CPU, batch-first)");
}
