// CUDA continuous MCMC chains with the built-in energies: the launcher behind
// ebm::cuda::mcmc_run_chunk (cuda_api.h). The per-chain loop is shared with the run-time
// compiled user energies (python/ebmfast/_cuda/mcmc_chain.cuh); here it is instantiated
// for each built-in energy (formulas in reference.py, energy_*), one thread per chain.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "common/math.h"
#include "common/mcmc_views.h"
#include "common/philox.h"
#include "cuda/cuda_api.h"
#include "../../python/ebmfast/_cuda/mcmc_chain.cuh"

namespace ebm::cuda {
namespace {

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(err));
}

// ---------------------------------------------------------------- energies (device)

struct DevGaussianDiag {
  EnergyView v;
  __device__ float eval(const float* x, float* g, float*, int64_t d, bool with_grad) const {
    float e = 0.0f;
    for (int64_t i = 0; i < d; ++i) {
      const float r = x[i] - v.mean[i], pr = v.precision[i] * r;
      if (with_grad) g[i] = pr;
      e += pr * r;
    }
    return 0.5f * e;
  }
};

struct DevGaussianFull {
  EnergyView v;
  __device__ float eval(const float* x, float* g, float*, int64_t d, bool with_grad) const {
    float e = 0.0f;
    for (int64_t i = 0; i < d; ++i) {
      const float* row = v.precision + i * d;
      float acc = 0.0f;
      for (int64_t j = 0; j < d; ++j) acc += row[j] * (x[j] - v.mean[j]);
      if (with_grad) g[i] = acc;
      e += acc * (x[i] - v.mean[i]);
    }
    return 0.5f * e;
  }
};

struct DevMixture {
  EnergyView v;
  __device__ float eval(const float* x, float* g, float* logc, int64_t d, bool with_grad) const {
    float m = -3.0e38f;
    for (int64_t k = 0; k < v.k; ++k) {
      float q = 0.0f;
      for (int64_t i = 0; i < d; ++i) {
        const float r = x[i] - v.means[k * d + i];
        q += r * r * v.inv_var[k * d + i];
      }
      logc[k] = v.log_coef[k] - 0.5f * q;
      m = fmaxf(m, logc[k]);
    }
    float s = 0.0f;
    for (int64_t k = 0; k < v.k; ++k) {
      logc[k] = expf(logc[k] - m);
      s += logc[k];
    }
    if (with_grad) {
      for (int64_t i = 0; i < d; ++i) g[i] = 0.0f;
      for (int64_t k = 0; k < v.k; ++k) {
        const float r = logc[k] / s;
        for (int64_t i = 0; i < d; ++i)
          g[i] += r * (x[i] - v.means[k * d + i]) * v.inv_var[k * d + i];
      }
    }
    return -(m + logf(s));
  }
};

struct DevDoubleWell {
  EnergyView v;
  __device__ float eval(const float* x, float* g, float*, int64_t d, bool with_grad) const {
    const float q = x[0] * x[0] - 1.0f;
    float e = 0.0f;
    for (int64_t i = 1; i < d; ++i) {
      if (with_grad) g[i] = x[i];
      e += x[i] * x[i];
    }
    if (with_grad) g[0] = 4.0f * v.a * x[0] * q;
    return v.a * q * q + 0.5f * e;
  }
};

struct DevRosenbrock {
  EnergyView v;
  __device__ float eval(const float* x, float* g, float*, int64_t d, bool with_grad) const {
    float e = 0.0f;
    if (with_grad) for (int64_t i = 0; i < d; ++i) g[i] = 0.0f;
    for (int64_t i = 0; i + 1 < d; ++i) {
      const float t = x[i + 1] - x[i] * x[i], r = v.a - x[i];
      e += v.b_coef * t * t + r * r;
      if (with_grad) {
        g[i] += (-4.0f * v.b_coef * x[i] * t - 2.0f * r) * v.inv_scale;
        g[i + 1] += 2.0f * v.b_coef * t * v.inv_scale;
      }
    }
    return e * v.inv_scale;
  }
};

struct DevRbmFree {
  EnergyView v;
  __device__ float eval(const float* x, float* g, float* z, int64_t d, bool with_grad) const {
    const int64_t nh = v.n_hidden;
    for (int64_t j = 0; j < nh; ++j) z[j] = v.c[j];
    float e = 0.0f;
    for (int64_t i = 0; i < d; ++i) {
      for (int64_t j = 0; j < nh; ++j) z[j] += x[i] * v.W[i * nh + j];
      e -= v.b[i] * x[i] - 0.5f * v.a * x[i] * x[i];
    }
    for (int64_t j = 0; j < nh; ++j) {
      e -= softplus_f(z[j]);
      z[j] = sigmoid_f(z[j]);
    }
    if (with_grad)
      for (int64_t i = 0; i < d; ++i) {
        float acc = 0.0f;
        for (int64_t j = 0; j < nh; ++j) acc += v.W[i * nh + j] * z[j];
        g[i] = -v.b[i] - acc + v.a * x[i];
      }
    return e;
  }
};

// ---------------------------------------------------------------- kernels and launcher

template <class E, int kS>
__global__ void chain_kernel(E energy, EbmChunk P) {
  ebm_chain_loop<E, kS>(energy, P);
}

int64_t energy_scratch(const EnergyView& v) {
  switch (v.kind) {
    case EnergyKind::kMixture: return v.k;
    case EnergyKind::kRbmFree: return v.n_hidden;
    default: return 1;
  }
}

template <class E>
void launch(const E& energy, SamplerKind s, const EbmChunk& P, cudaStream_t st) {
  constexpr int kBlock = 128;
  const unsigned grid = static_cast<unsigned>((P.n_chains + kBlock - 1) / kBlock);
  switch (s) {
    case SamplerKind::kRwmh: chain_kernel<E, 0><<<grid, kBlock, 0, st>>>(energy, P); break;
    case SamplerKind::kMala: chain_kernel<E, 1><<<grid, kBlock, 0, st>>>(energy, P); break;
    case SamplerKind::kUla: chain_kernel<E, 2><<<grid, kBlock, 0, st>>>(energy, P); break;
  }
  check(cudaGetLastError(), "mcmc chain kernel launch");
}

}  // namespace

int64_t mcmc_scratch_floats(const EnergyView& energy, int64_t n_chains) {
  return n_chains * (3 * energy.d + energy_scratch(energy));
}

void mcmc_run_chunk(const EnergyView& v, const ChainsView& C, const ChunkPlan& plan,
                    float* scratch, uintptr_t stream) {
  if (C.n_chains <= 0 || plan.n_steps <= 0) return;
  EbmChunk P;
  P.x = C.x; P.eps = C.eps; P.n_accept = C.n_accept;
  P.samples = plan.samples; P.energies = plan.energies;
  P.scratch = scratch;
  P.per_chain = 3 * v.d + energy_scratch(v);
  P.n_chains = C.n_chains; P.d = C.d; P.n_steps = plan.n_steps; P.thin = plan.thin;
  P.adapt_index = plan.adapt_index;
  P.seed = plan.seed; P.step = plan.step; P.chain_offset = plan.chain_offset;
  P.adapt = plan.adapt ? 1 : 0;
  P.target_accept = plan.target_accept;
  const cudaStream_t st = reinterpret_cast<cudaStream_t>(stream);
  switch (v.kind) {
    case EnergyKind::kGaussianDiag: launch(DevGaussianDiag{v}, plan.sampler, P, st); break;
    case EnergyKind::kGaussianFull: launch(DevGaussianFull{v}, plan.sampler, P, st); break;
    case EnergyKind::kMixture: launch(DevMixture{v}, plan.sampler, P, st); break;
    case EnergyKind::kDoubleWell: launch(DevDoubleWell{v}, plan.sampler, P, st); break;
    case EnergyKind::kRosenbrock: launch(DevRosenbrock{v}, plan.sampler, P, st); break;
    case EnergyKind::kRbmFree: launch(DevRbmFree{v}, plan.sampler, P, st); break;
  }
}

}  // namespace ebm::cuda
