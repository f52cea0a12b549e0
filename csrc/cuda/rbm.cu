// The Bernoulli RBM on the GPU: block Gibbs, the CD-k / PCD-k update, free energy and the
// full pseudo-log-likelihood, with the semantics of the CPU kernels (csrc/cpu/rbm_*.cpp)
// and of reference.py on the shared Philox stream. Hand-written kernels only (no cuBLAS,
// no cuRAND); reached from bindings.cpp through python/ebmfast/_rbm_cuda.py.
//
// Launches per CD-k update: 2k + 2 layer passes (gemm_tile + fused sigmoid/Bernoulli
// epilogue), one weight kernel (the two V^T P products into one accumulator, then the
// momentum / weight-decay step on W in its epilogue: W is read and written once) and one
// bias kernel. No launch waits for the host; the chain state never leaves the device.
#include <cuda_runtime.h>
#include <cmath>
#include "common/math.h"
#include "common/philox.h"
#include "cuda/cuda_api.h"
#include "cuda/cuda_check.cuh"
#include "cuda/gemm_tile.cuh"
#include "cuda/warp_reduce.cuh"

namespace ebm::cuda {

namespace {

using tile::kThreads;
using tile::kThreadsX;

// |x| as ordered bits (non-negative floats order like their bit patterns); a non-finite
// x maps to 0x7f800000 (inf) or above (NaN), which the host reads as "not finite".
__device__ __forceinline__ uint32_t abs_bits(float x) { return __float_as_uint(x) & 0x7fffffffu; }

// Folds the thread's largest |param| and |velocity| bits into stats[0..1] (one atomic per
// warp). Every lane of the warp must call.
__device__ __forceinline__ void publish_stats(uint32_t mw, uint32_t mv, uint32_t* stats) {
  mw = warp_max(mw);
  mv = warp_max(mv);
  if ((threadIdx.x & 31) == 0) {
    atomicMax(stats, mw);
    atomicMax(stats + 1, mv);
  }
}

struct MomentumStep {
  float lr, momentum, decay;
  // velocity = momentum*velocity + lr*(g - decay*w); w += velocity. Returns (w, v).
  __device__ __forceinline__ void apply(float g, float w_in, float v_in, float& w, float& v) const {
    v = momentum * v_in + lr * (g - decay * w_in);
    w = w_in + v;
  }
};

// ------------------------------------------------------------------ the weight update

// Tile (visible rows) x (hidden columns) of
//   dW = V0^T P0 / B0 - Vk^T Pk / Bc
// (both products in one accumulator: P0 scaled by Bc / B0 when the counts differ, the
// chain side negated on load, so one 1 / Bc at the end), then the momentum step on W in
// the epilogue, or dW itself when gradient_only.
// fp32 Small: three blocks per SM (<= 85 registers, no spills); tf32 and the Large tile:
// two (<= 128 registers).
template <class S, bool kTf32>
__global__ void __launch_bounds__(kThreads, (kTf32 || S::kTM > 4) ? 2 : 3)
cd_weights_kernel(const float* __restrict__ V0, int64_t B0, const float* __restrict__ P0,
                  const float* __restrict__ Vk, int64_t Bc, const float* __restrict__ Pk,
                  int64_t n_v, int64_t n_h, const float* W_in, RbmCdUpdate up) {
  __shared__ __align__(32) float smem[tile::SharedFloats<S, kTf32>::value];
  tile::Slices<S>& s = *reinterpret_cast<tile::Slices<S>*>(smem);
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * S::kRows;
  const int64_t col0 = static_cast<int64_t>(blockIdx.y) * S::kCols;
  tile::Acc<S, kTf32> acc;
  // A = V^T: element (i, b) of V [B, n_v] is V[b * n_v + i], the transposed layout.
  tile::accumulate<true, false>({V0, n_v}, {P0, n_h}, 1.0f, n_v, n_h, B0, row0, col0, s, acc);
  if (B0 != Bc) acc.scale(static_cast<float>(Bc) / static_cast<float>(B0));
  tile::accumulate<true, false>({Vk, n_v}, {Pk, n_h}, -1.0f, n_v, n_h, Bc, row0, col0, s, acc);
  float g[S::kTM][S::kTN];
  acc.result(g, smem);

  const float inv = 1.0f / static_cast<float>(Bc);
  const MomentumStep step{up.learning_rate, up.momentum, up.weight_decay};
  const int tx = threadIdx.x % kThreadsX, ty = threadIdx.x / kThreadsX;
  uint32_t mw = 0, mv = 0;
#pragma unroll
  for (int i = 0; i < S::kTM; ++i) {
    const int64_t r = row0 + S::row(ty, i);
#pragma unroll
    for (int j = 0; j < S::kTN; ++j) {
      const int64_t c = col0 + S::col(tx, j);
      if (r >= n_v || c >= n_h) continue;  // no early return: the warp reduces below
      const int64_t o = r * n_h + c;
      const float grad = g[i][j] * inv;
      if (up.gradient_only) {
        up.W_out[o] = grad;
        continue;
      }
      float w, v;
      step.apply(grad, W_in[o], up.vW[o], w, v);
      up.W_out[o] = w;
      up.vW_out[o] = v;
      const uint32_t aw = abs_bits(w), av = abs_bits(v);
      mw = aw > mw ? aw : mw;
      mv = av > mv ? av : mv;
    }
  }
  if (!up.gradient_only) publish_stats(mw, mv, up.stats);
}

// db = mean(V0) - mean(Vk) over rows, dc = mean(P0) - mean(Pk); columns 0 .. n_v - 1 are
// the visible units, n_v .. n_v + n_h - 1 the hidden ones. A block is 32 columns x 8 row
// groups; sums in float64 in a fixed order (deterministic), then the momentum step (no
// weight decay on biases) by the first warp.
__global__ void __launch_bounds__(256)
cd_bias_kernel(const float* __restrict__ V0, int64_t B0, const float* __restrict__ P0,
               const float* __restrict__ Vk, int64_t Bc, const float* __restrict__ Pk,
               int64_t n_v, int64_t n_h, const float* b_in, const float* c_in, RbmCdUpdate up) {
  __shared__ double partial[2][8][32];
  const int lane = threadIdx.x % 32, group = threadIdx.x / 32;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * 32 + lane;
  const bool valid = col < n_v + n_h;
  const bool vis = col < n_v;
  const int64_t j = vis ? col : col - n_v, n = vis ? n_v : n_h;
  const float* X = vis ? V0 : P0;
  const float* Y = vis ? Vk : Pk;
  double sp = 0.0, sn = 0.0;
  if (valid) {
    for (int64_t b = group; b < B0; b += 8) sp += X[b * n + j];
    for (int64_t b = group; b < Bc; b += 8) sn += Y[b * n + j];
  }
  partial[0][group][lane] = sp;
  partial[1][group][lane] = sn;
  __syncthreads();
  if (group != 0) return;  // the whole first warp stays: it reduces the stats
  uint32_t mw = 0, mv = 0;
  if (valid) {
    sp = sn = 0.0;
    for (int t = 0; t < 8; ++t) {
      sp += partial[0][t][lane];
      sn += partial[1][t][lane];
    }
    const float grad = static_cast<float>(sp / static_cast<double>(B0) - sn / static_cast<double>(Bc));
    float* out = vis ? up.b_out : up.c_out;
    if (up.gradient_only) {
      out[j] = grad;
    } else {
      const MomentumStep step{up.learning_rate, up.momentum, 0.0f};
      float w, v;
      step.apply(grad, vis ? b_in[j] : c_in[j], vis ? up.vb[j] : up.vc[j], w, v);
      out[j] = w;
      (vis ? up.vb_out : up.vc_out)[j] = v;
      mw = abs_bits(w);
      mv = abs_bits(v);
    }
  }
  if (!up.gradient_only) publish_stats(mw, mv, up.stats);
}

// *recon += sum over B0 x n_v of (V0 - Pv)^2: one block, fixed order (deterministic).
__global__ void __launch_bounds__(256)
recon_kernel(const float* __restrict__ V0, const float* __restrict__ Pv, int64_t n, double* recon) {
  __shared__ double partial[256];
  double s = 0.0;
  for (int64_t t = threadIdx.x; t < n; t += 256) {
    const double d = static_cast<double>(V0[t]) - static_cast<double>(Pv[t]);
    s += d * d;
  }
  partial[threadIdx.x] = s;
  __syncthreads();
  for (int half = 128; half > 0; half >>= 1) {
    if (static_cast<int>(threadIdx.x) < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) *recon += partial[0];
}

// ------------------------------------------------------------------ scores

// Tree sum of one double per thread of a 256-thread block; the total lands in thread 0.
__device__ __forceinline__ double block_sum(double x, double* shared) {
  shared[threadIdx.x] = x;
  __syncthreads();
  for (int half = 128; half > 0; half >>= 1) {
    if (static_cast<int>(threadIdx.x) < half) shared[threadIdx.x] += shared[threadIdx.x + half];
    __syncthreads();
  }
  return shared[0];
}

// One block per row: out[r] = -b.v - sum_j softplus(z_j), Z the hidden field.
__global__ void __launch_bounds__(256)
free_energy_kernel(const float* __restrict__ V, const float* __restrict__ Z,
                   const float* __restrict__ b, int64_t n_v, int64_t n_h, double* out) {
  __shared__ double shared[256];
  const int64_t r = blockIdx.x;
  double bv = 0.0, sp = 0.0;
  for (int64_t i = threadIdx.x; i < n_v; i += 256)
    bv += static_cast<double>(b[i]) * V[r * n_v + i];
  for (int64_t j = threadIdx.x; j < n_h; j += 256) sp += softplus_f(Z[r * n_h + j]);
  const double total = block_sum(bv + sp, shared);
  if (threadIdx.x == 0) out[r] = -total;
}

// One block per row, one warp per visible unit i at a time: flipping v_i by s = 1 - 2 v_i
// moves the field by s W[i, :], so F(v^(i)) - F(v) = -s b_i - sum_j [softplus(z_j + s W_ij)
// - softplus(z_j)] (summed term by term: no cancellation between two large sums);
// out[r] = sum_i log sigmoid(F(v^(i)) - F(v)).
__global__ void __launch_bounds__(256)
pseudo_log_likelihood_kernel(const float* __restrict__ V, const float* __restrict__ Z,
                             const float* __restrict__ W, const float* __restrict__ b,
                             int64_t n_v, int64_t n_h, double* out) {
  __shared__ double per_warp[8];
  const int64_t r = blockIdx.x;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const float* z = Z + r * n_h;
  double pl = 0.0;
  for (int64_t i = warp; i < n_v; i += 8) {
    const float s = 1.0f - 2.0f * V[r * n_v + i];
    const float* w = W + i * n_h;
    float d = 0.0f;
    for (int64_t j = lane; j < n_h; j += 32) d += softplus_f(z[j] + s * w[j]) - softplus_f(z[j]);
    d = warp_sum(d);
    const float dF = -s * b[i] - d;
    pl += -static_cast<double>(softplus_f(-dF));  // log sigmoid(dF)
  }
  if (lane == 0) per_warp[warp] = pl;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (int t = 0; t < 8; ++t) total += per_warp[t];
    out[r] = total;
  }
}

// Layer passes of the RBM on the shared layer kernel: v -> h reads W, h -> v reads W^T.
void to_hidden(const RbmDeviceParams& P, const float* V, int64_t rows, float beta,
               const LayerOutputsCuda& out, const RngView& rng, uintptr_t stream, Precision prec) {
  layer_update(LayerInput{V, P.W, P.n_v, false}, LayerInput{}, P.c, rows, P.n_h, beta, out,
               kStreamHidden, rng, stream, prec);
}

void to_visible(const RbmDeviceParams& P, const float* H, int64_t rows, float beta,
                const LayerOutputsCuda& out, const RngView& rng, uintptr_t stream,
                Precision prec) {
  layer_update(LayerInput{H, P.W, P.n_h, true}, LayerInput{}, P.b, rows, P.n_v, beta, out,
               kStreamVisible, rng, stream, prec);
}

template <class S, bool kTf32>
void launch_weights(cudaStream_t st, const RbmCdBuffers& buf, const float* Vneg, int64_t Bc,
                    const RbmDeviceParams& P, const RbmCdUpdate& up) {
  const dim3 grid = tile_grid(P.n_v, P.n_h, S::kRows, S::kCols, "rbm_cd_update");
  cd_weights_kernel<S, kTf32><<<grid, kThreads, 0, st>>>(buf.V0, buf.B0, buf.P0, Vneg, Bc, buf.Pk,
                                                         P.n_v, P.n_h, P.W, up);
}

unsigned row_blocks(int64_t rows) {
  if (rows > 2147483647LL) throw std::runtime_error("too many rows for one launch");
  return static_cast<unsigned>(rows);
}

}  // namespace

// ------------------------------------------------------------------ launchers

void rbm_gibbs(const RbmDeviceParams& P, float beta, float* V, float* H, int64_t rows, int64_t k,
               const RngView& rng, uintptr_t stream, Precision precision) {
  if (rows <= 0 || k <= 0) return;
  RngView r = rng;
  for (int64_t t = 0; t < k; ++t) {
    r.step = rng.step + static_cast<uint32_t>(t);
    LayerOutputsCuda h;
    h.sample = H;
    to_hidden(P, V, rows, beta, h, r, stream, precision);
    LayerOutputsCuda v;
    v.sample = V;  // V is not an input of this pass: it may be overwritten in place
    to_visible(P, H, rows, beta, v, r, stream, precision);
  }
}

void rbm_cd_update(const RbmDeviceParams& P, const RbmCdBuffers& buf, const RbmCdUpdate& up,
                   int64_t k, const RngView& rng, uintptr_t stream, Precision precision) {
  if (buf.B0 <= 0 || k <= 0) throw std::runtime_error("rbm_cd_update: empty batch or k < 1");
  const cudaStream_t st = as_stream(stream);
  const bool pcd = buf.chain != nullptr;
  const int64_t Bc = pcd ? buf.Bc : buf.B0;
  float* Vneg = pcd ? buf.chain : buf.Vk;

  // --- sampling phase (steps rng.step .. rng.step + k - 1), reference.cd_gradient
  LayerOutputsCuda pos;
  pos.prob = buf.P0;
  if (pcd) {
    to_hidden(P, buf.V0, buf.B0, 1.0f, pos, rng, stream, precision);
    rbm_gibbs(P, 1.0f, Vneg, buf.H, Bc, k, rng, stream, precision);
  } else {
    pos.sample = buf.H;  // h0 ~ p(h | v0) at step rng.step, as the first Gibbs step draws it
    to_hidden(P, buf.V0, buf.B0, 1.0f, pos, rng, stream, precision);
    LayerOutputsCuda v1;
    v1.sample = Vneg;
    to_visible(P, buf.H, buf.B0, 1.0f, v1, rng, stream, precision);
    RngView later = rng;
    later.step = rng.step + 1;
    rbm_gibbs(P, 1.0f, Vneg, buf.H, Bc, k - 1, later, stream, precision);
  }
  LayerOutputsCuda neg;
  neg.prob = buf.Pk;
  to_hidden(P, Vneg, Bc, 1.0f, neg, rng, stream, precision);

  // --- mean-field reconstruction error with the parameters before the update
  if (up.recon != nullptr) {
    LayerOutputsCuda pv;
    pv.prob = buf.Pv;
    to_visible(P, buf.P0, buf.B0, 1.0f, pv, rng, stream, precision);
    recon_kernel<<<1, 256, 0, st>>>(buf.V0, buf.Pv, buf.B0 * P.n_v, up.recon);
    check_cuda(cudaGetLastError(), "recon launch");
  }

  // --- the update: W in one pass, then the biases
  if (!up.gradient_only) check_cuda(cudaMemsetAsync(up.stats, 0, 2 * sizeof(uint32_t), st), "stats");
  if (precision == Precision::kTf32)
    launch_weights<tile::Small, true>(st, buf, Vneg, Bc, P, up);
  else if (use_large_tile(P.n_v, P.n_h, false))
    launch_weights<tile::Large, false>(st, buf, Vneg, Bc, P, up);
  else
    launch_weights<tile::Small, false>(st, buf, Vneg, Bc, P, up);
  check_cuda(cudaGetLastError(), "cd_weights launch");
  const int64_t bias_blocks = ceil_div(P.n_v + P.n_h, 32);
  cd_bias_kernel<<<row_blocks(bias_blocks), 256, 0, st>>>(buf.V0, buf.B0, buf.P0, Vneg, Bc, buf.Pk,
                                                          P.n_v, P.n_h, P.b, P.c, up);
  check_cuda(cudaGetLastError(), "cd_bias launch");
}

namespace {

// The hidden field Z, then one block per row: free energy or pseudo-log-likelihood.
void row_scores(const RbmDeviceParams& P, const float* V, int64_t rows, float* Z, double* out,
                uintptr_t stream, bool pll) {
  if (rows <= 0) return;
  LayerOutputsCuda f;
  f.field = Z;
  to_hidden(P, V, rows, 1.0f, f, RngView{}, stream, Precision::kFp32);
  const cudaStream_t st = as_stream(stream);
  if (pll)
    pseudo_log_likelihood_kernel<<<row_blocks(rows), 256, 0, st>>>(V, Z, P.W, P.b, P.n_v, P.n_h, out);
  else
    free_energy_kernel<<<row_blocks(rows), 256, 0, st>>>(V, Z, P.b, P.n_v, P.n_h, out);
  check_cuda(cudaGetLastError(), pll ? "pseudo_log_likelihood launch" : "free_energy launch");
}

}  // namespace

void rbm_free_energy(const RbmDeviceParams& P, const float* V, int64_t rows, float* Z,
                     double* out, uintptr_t stream) {
  row_scores(P, V, rows, Z, out, stream, false);
}

void rbm_pseudo_log_likelihood(const RbmDeviceParams& P, const float* V, int64_t rows, float* Z,
                               double* out, uintptr_t stream) {
  row_scores(P, V, rows, Z, out, stream, true);
}

}  // namespace ebm::cuda
