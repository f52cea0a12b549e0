// Spin chains and the 2-D lattice on the GPU, on the same Philox stream as the CPU kernels
// (csrc/cpu/ising_chains.cpp, ising_lattice.cpp) and the NumPy reference.
//
// Spin chains: one thread per chain. Spins and local fields are stored site-major,
// St [n][chains] and F [n][chains], so the 32 threads of a warp (32 consecutive chains)
// read and write one contiguous segment per site, and every thread reads the same
// coupling J_ij (a broadcast). As on the CPU, the fields move incrementally after each
// flip and are recomputed every kRefreshSweeps sweeps.
//
// Lattice: one thread per Philox block of one colour (four consecutive units, so one
// Philox call serves four sites), on the natural [chains][L][L] int8 layout; the ten
// acceptance probabilities of a sweep are tabulated in shared memory from double exp,
// exactly as the CPU does.
#include <cuda_runtime.h>
#include "common/philox.h"
#include "cuda/cuda_api.h"
#include "cuda/cuda_check.cuh"

namespace ebm::cuda {

namespace {

constexpr int kThreads = 128;
constexpr int64_t kRefreshSweeps = 32;

struct ChainArgs {
  IsingView P;        // device pointers
  SweepPlan plan;     // betas, clamped: device pointers
  int8_t* St;         // [n][chains] (rw)
  float* F;           // [n][chains] scratch
  int64_t chains;
  RngView rng;
  int64_t* flips;     // [chains] (w)
  double* trace;      // [n_sweeps][chains] (w) or null
};

template <bool kDense>
__device__ void refresh(const ChainArgs& a, int64_t c) {
  const int64_t n = a.P.n, C = a.chains;
  for (int64_t i = 0; i < n; ++i) {
    float g = a.P.h[i];
    if (kDense) {
      const float* row = a.P.J + n * i;
      for (int64_t j = 0; j < n; ++j) g += row[j] * a.St[j * C + c];
    } else {
      for (int64_t k = a.P.indptr[i]; k < a.P.indptr[i + 1]; ++k) g += a.P.data[k] * a.St[a.P.indices[k] * C + c];
    }
    a.F[i * C + c] = g;
  }
}

template <bool kDense>
__device__ void move(const ChainArgs& a, int64_t c, int64_t i, float d) {
  const int64_t n = a.P.n, C = a.chains;
  if (kDense) {
    const float* row = a.P.J + n * i;
    for (int64_t j = 0; j < n; ++j) a.F[j * C + c] += row[j] * d;
  } else {
    for (int64_t k = a.P.indptr[i]; k < a.P.indptr[i + 1]; ++k) a.F[a.P.indices[k] * C + c] += a.P.data[k] * d;
  }
}

template <bool kGibbs>
__device__ bool decide(float s, float g, float u, float beta) {
  if (kGibbs) return (u < 1.0f / (1.0f + expf(2.0f * beta * g))) != (s > 0.0f);
  return u < expf(fminf(2.0f * beta * (g * s), 0.0f));
}

template <bool kDense, bool kGibbs, bool kRandom>
__global__ void chains_kernel(ChainArgs a) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (c >= a.chains) return;
  const int64_t n = a.P.n, C = a.chains;
  const uint32_t chain = a.rng.chain_offset + static_cast<uint32_t>(c);
  const uint32_t k0 = static_cast<uint32_t>(a.rng.seed), k1 = static_cast<uint32_t>(a.rng.seed >> 32);
  int64_t flips = 0;
  refresh<kDense>(a, c);
  for (int64_t t = 0; t < a.plan.n_sweeps; ++t) {
    if (t > 0 && t % kRefreshSweeps == 0) refresh<kDense>(a, c);
    const float beta = a.plan.betas[t];
    const uint32_t step = a.rng.step + static_cast<uint32_t>(t);
    PhiloxBlock acc{}, pick{};
    for (int64_t k = 0; k < n; ++k) {
      if ((k & 3) == 0) {
        acc = philox4x32_10(static_cast<uint32_t>(k >> 2), chain, step, kStreamAccept, k0, k1);
        if (kRandom) pick = philox4x32_10(static_cast<uint32_t>(k >> 2), chain, step, kStreamProposal, k0, k1);
      }
      int64_t i = k;
      if (kRandom) {
        const float up = philox_word_to_uniform(pick.x[k & 3]);
        i = min(n - 1, static_cast<int64_t>(up * static_cast<float>(n)));
      }
      if (a.plan.clamped != nullptr && a.plan.clamped[i]) continue;
      const float s = a.St[i * C + c];
      if (!decide<kGibbs>(s, a.F[i * C + c], philox_word_to_uniform(acc.x[k & 3]), beta)) continue;
      a.St[i * C + c] = static_cast<int8_t>(-s);
      ++flips;
      move<kDense>(a, c, i, -2.0f * s);
    }
    if (a.trace != nullptr) {
      double e = 0.0;
      for (int64_t i = 0; i < n; ++i) e += a.St[i * C + c] * (a.F[i * C + c] + a.P.h[i]);
      a.trace[t * C + c] = 0.5 * e;
    }
  }
  a.flips[c] = flips;
}

template <bool kDense, bool kGibbs>
void launch_chains(const ChainArgs& a, cudaStream_t st) {
  const dim3 grid(static_cast<unsigned>(ceil_div(a.chains, kThreads)));
  if (a.plan.random_order)
    chains_kernel<kDense, kGibbs, true><<<grid, kThreads, 0, st>>>(a);
  else
    chains_kernel<kDense, kGibbs, false><<<grid, kThreads, 0, st>>>(a);
}

// ---------------------------------------------------------------- lattice

struct LatticeArgs {
  int8_t* S;          // [chains][L][L] (rw)
  int64_t chains, L;
  float J, h;
  float beta;
  bool gibbs;
  uint64_t seed;
  uint32_t step;       // of this half-sweep
  uint32_t chain_offset;
  int colour;
  unsigned long long* flips;  // [chains] (accumulated)
};

__global__ void lattice_half_sweep(LatticeArgs a) {
  __shared__ float table[10];
  if (threadIdx.x < 5) {
    const int q = threadIdx.x;
    const double field = static_cast<double>(a.J) * (2.0 * q - 4.0) + a.h;
    if (a.gibbs) {
      table[q] = static_cast<float>(1.0 / (1.0 + exp(-2.0 * a.beta * field)));
    } else {
      table[q] = static_cast<float>(exp(fmin(2.0 * a.beta * field, 0.0)));
      table[5 + q] = static_cast<float>(exp(fmin(-2.0 * a.beta * field, 0.0)));
    }
  }
  __syncthreads();
  const int64_t L = a.L, H = L / 2, per_chain = (L * H + 3) / 4;
  const int64_t tid = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (tid >= per_chain * a.chains) return;
  const int64_t ch = tid / per_chain, q = tid % per_chain;
  int8_t* S = a.S + ch * L * L;
  const PhiloxBlock b = philox4x32_10(static_cast<uint32_t>(q), a.chain_offset + static_cast<uint32_t>(ch),
                                      a.step, kStreamAccept, static_cast<uint32_t>(a.seed),
                                      static_cast<uint32_t>(a.seed >> 32));
  unsigned long long flips = 0;
  for (int w = 0; w < 4; ++w) {
    const int64_t unit = 4 * q + w;
    if (unit >= L * H) break;
    const int64_t i = unit / H, j = 2 * (unit % H) + ((i + a.colour) & 1);
    const int nb = S[((i + L - 1) % L) * L + j] + S[((i + 1) % L) * L + j] +
                   S[i * L + (j + L - 1) % L] + S[i * L + (j + 1) % L];
    const int s = S[i * L + j];
    const float u = philox_word_to_uniform(b.x[w]);
    const bool flip = a.gibbs ? ((u < table[(nb + 4) >> 1]) != (s > 0))
                              : (u < table[((nb + 4) >> 1) + (s > 0 ? 5 : 0)]);
    if (flip) {
      S[i * L + j] = static_cast<int8_t>(-s);
      ++flips;
    }
  }
  if (flips) atomicAdd(a.flips + ch, flips);
}

// Per chain: sum over colour-0 sites of s * (four neighbours) and sum of s over all sites.
// Each warp reduces its sites with shuffles and adds once per chain it touches, not once
// per site (blockDim is a multiple of 32, so every warp is full).
__global__ void lattice_sums(const int8_t* S_all, int64_t chains, int64_t L, long long* bonds,
                             long long* magnet) {
  const int64_t tid = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t total = chains * L * L;
  int b = 0, m = 0;
  int64_t ch = -1;
  if (tid < total) {
    ch = tid / (L * L);
    const int64_t r = tid % (L * L), i = r / L, j = r % L;
    const int8_t* S = S_all + ch * L * L;
    const int s = S[r];
    m = s;
    if (((i + j) & 1) == 0)
      b = s * (S[((i + L - 1) % L) * L + j] + S[((i + 1) % L) * L + j] +
               S[i * L + (j + L - 1) % L] + S[i * L + (j + 1) % L]);
  }
  // One round per chain present in the warp (one or two unless L*L < 32).
  const unsigned full = 0xffffffffu;
  int64_t todo = ch;
  while (__any_sync(full, todo >= 0)) {
    const int leader = __ffs(__ballot_sync(full, todo >= 0)) - 1;
    const int64_t target = __shfl_sync(full, todo, leader);
    const bool mine = todo == target;
    int bb = mine ? b : 0, mm = mine ? m : 0;
    for (int off = 16; off > 0; off >>= 1) {
      bb += __shfl_down_sync(full, bb, off);
      mm += __shfl_down_sync(full, mm, off);
    }
    if ((threadIdx.x & 31u) == 0) {
      atomicAdd(reinterpret_cast<unsigned long long*>(bonds + target), static_cast<unsigned long long>(static_cast<long long>(bb)));
      atomicAdd(reinterpret_cast<unsigned long long*>(magnet + target), static_cast<unsigned long long>(static_cast<long long>(mm)));
    }
    if (mine) todo = -1;
  }
}

}  // namespace

void ising_chains(const IsingView& P, const SweepPlan& plan, int8_t* St, float* F, int64_t chains,
                  const RngView& rng, int64_t* flips, double* trace, uintptr_t stream) {
  if (chains <= 0) return;  // an empty grid is a launch error ("invalid configuration")
  const ChainArgs a{P, plan, St, F, chains, rng, flips, trace};
  const cudaStream_t st = as_stream(stream);
  const bool dense = P.J != nullptr;
  if (dense && plan.gibbs) launch_chains<true, true>(a, st);
  else if (dense) launch_chains<true, false>(a, st);
  else if (plan.gibbs) launch_chains<false, true>(a, st);
  else launch_chains<false, false>(a, st);
  check_cuda(cudaGetLastError(), "ising_chains launch");
}

void lattice_sweeps(int8_t* S, int64_t chains, int64_t L, float J, float h, const float* betas_host,
                    int64_t n_sweeps, bool gibbs, const RngView& rng, unsigned long long* flips,
                    long long* bonds, long long* magnet, uintptr_t stream) {
  if (chains <= 0) return;  // an empty grid is a launch error ("invalid configuration")
  const cudaStream_t st = as_stream(stream);
  const int64_t per_chain = (L * (L / 2) + 3) / 4;
  const dim3 grid(static_cast<unsigned>(ceil_div(per_chain * chains, kThreads)));
  const dim3 grid_sums(static_cast<unsigned>(ceil_div(chains * L * L, kThreads)));
  for (int64_t t = 0; t < n_sweeps; ++t) {
    for (int c = 0; c < 2; ++c) {
      const LatticeArgs a{S, chains, L, J, h, betas_host[t], gibbs, rng.seed,
                          rng.step + static_cast<uint32_t>(2 * t + c), rng.chain_offset, c, flips};
      lattice_half_sweep<<<grid, kThreads, 0, st>>>(a);
      check_cuda(cudaGetLastError(), "lattice_half_sweep launch");
    }
    if (bonds != nullptr) {
      lattice_sums<<<grid_sums, kThreads, 0, st>>>(S, chains, L, bonds + t * chains, magnet + t * chains);
      check_cuda(cudaGetLastError(), "lattice_sums launch");
    }
  }
}

}  // namespace ebm::cuda
