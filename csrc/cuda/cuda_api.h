// Host-side entry points of the CUDA backend (implemented in *.cu, called from
// bindings.cpp). Plain C++ types only: no pybind11, no CUDA headers.
#pragma once
#include <string>

namespace ebm::cuda {

// Number of usable devices; 0 (never an error) without a driver or a GPU.
int device_count();
// Name of device `index`, or "" when it cannot be queried.
std::string device_name(int index);
// Version of the CUDA runtime the module was built with (e.g. 13000).
int runtime_version();
// Compute capability of the current device as 10 * major + minor (90 for an H100), 0 when
// it cannot be queried.
int current_compute_capability();

}  // namespace ebm::cuda

// --- spin chains and the 2-D lattice (ising_chains.cu). Every pointer is a device pointer
// except betas_host; `stream` is a cudaStream_t as an integer (0 = legacy default stream).
// Errors throw std::runtime_error.
#include <cstdint>
#include "common/views.h"

namespace ebm::cuda {

// The CPU kernel's semantics (cpu/kernels.h) on spins stored site-major: St [n][chains]
// int8 (rw), F [n][chains] float scratch; flips [chains] (w); trace [n_sweeps][chains] or
// null. plan.betas and plan.clamped are device pointers.
void ising_chains(const IsingView& P, const SweepPlan& plan, int8_t* St, float* F, int64_t chains,
                  const RngView& rng, int64_t* flips, double* trace, uintptr_t stream);

// Checkerboard sweeps of S [chains][L][L] (rw) as cpu::lattice_sweeps; flips [chains] are
// added to; bonds/magnet [n_sweeps][chains] (w, or null) receive the sums from which the
// energy per spin is (-J bonds - h magnet) / L^2.
void lattice_sweeps(int8_t* S, int64_t chains, int64_t L, float J, float h, const float* betas_host,
                    int64_t n_sweeps, bool gibbs, const RngView& rng, unsigned long long* flips,
                    long long* bonds, long long* magnet, uintptr_t stream);

// Asynchronous Hopfield recall (hopfield_recall.cu), cpu hopfield_recall's semantics: W
// [n][n], b [n]; St [n][cues] int8 (rw) site-major, F [n][cues] float scratch; sweeps
// [cues] int32 (w), converged [cues] uint8 (w).
void hopfield_recall(const float* W, const float* b, int8_t* St, float* F, int64_t n, int64_t cues,
                     int max_sweeps, bool random_order, uint64_t seed, uint32_t step,
                     int32_t* sweeps, uint8_t* converged, uintptr_t stream);

}  // namespace ebm::cuda

// --- continuous chains (mcmc_chains.cu): one thread per chain on `stream` (a
// cudaStream_t as an integer; 0 = the legacy default stream). Every pointer inside the
// views is a device pointer; `scratch` holds mcmc_scratch_floats(energy, n_chains) device
// floats. Throws std::runtime_error on a launch or runtime error.
#include <cstdint>
#include "common/mcmc_views.h"

namespace ebm::cuda {

int64_t mcmc_scratch_floats(const EnergyView& energy, int64_t n_chains);
void mcmc_run_chunk(const EnergyView& energy, const ChainsView& chains, const ChunkPlan& plan,
                    float* scratch, uintptr_t stream);

}  // namespace ebm::cuda

// --- the shared layer update (layer_update.cu): z = beta * (X1.M1 + X2.M2) + bias, then
// sigmoid and Bernoulli on the Philox stream (stream_id, chain = rng.chain_offset + row,
// rng.step, unit = column), reference.layer_update's semantics. Every pointer is a device
// pointer; `stream` is a cudaStream_t as an integer. Throws std::runtime_error.
#include <cstdint>
#include "common/views.h"

namespace ebm::cuda {

// Arithmetic of the hand-written GEMMs: exact fp32 FFMA (matches the CPU to float
// rounding) or tf32 tensor cores (inputs rounded to a 10-bit mantissa, fp32 accumulate).
enum class Precision : int { kFp32 = 0, kTf32 = 1 };

// One neighbour of the layer: X [rows, n_in] and M [n_in, n_out] (or, transposed, M stored
// [n_out, n_in] and read as its transpose), row-major float32. X == nullptr marks an
// absent second neighbour.
struct LayerInput {
  const float* X = nullptr;  // [rows, n_in]
  const float* M = nullptr;  // [n_in, n_out], or [n_out, n_in] when transposed
  int64_t n_in = 0;
  bool transposed = false;
};

// What the epilogue writes; each pointer may be null (that output is skipped).
struct LayerOutputsCuda {
  float* field = nullptr;   // [rows, n_out] (w) z
  float* prob = nullptr;    // [rows, n_out] (w) sigmoid(z)
  float* sample = nullptr;  // [rows, n_out] (w) 1.0f / 0.0f
};

// Which GEMM tile the launchers use (gemm_tile.cuh): 0 by problem size (the default), 1
// always the 64 x 64 tile, 2 the 128 x 128 one for every fp32 product - so that tests can
// reach both shapes on small problems. Process-wide.
void set_gemm_tile_policy(int policy);

// bias [n_out]. Outputs must not overlap the inputs (blocks read X/M while others write).
void layer_update(const LayerInput& in1, const LayerInput& in2, const float* bias, int64_t rows,
                  int64_t n_out, float beta, const LayerOutputsCuda& out, uint32_t stream_id,
                  const RngView& rng, uintptr_t stream, Precision precision = Precision::kFp32);

}  // namespace ebm::cuda

// --- the RBM (rbm.cu): W [n_v, n_h], b [n_v], c [n_h] on the device; every pointer is a
// device pointer, scratch included (the caller allocates it from CuPy's pool).
namespace ebm::cuda {

struct RbmDeviceParams {
  const float* W = nullptr;
  const float* b = nullptr;
  const float* c = nullptr;
  int64_t n_v = 0, n_h = 0;
};

// k block-Gibbs steps v -> h -> v of V [rows, n_v] in place (step t: Philox step rng.step
// + t, streams hidden / visible, as reference.gibbs); H [rows, n_h] scratch receives the
// last hidden sample. b and c enter as given (the caller scales them by beta).
void rbm_gibbs(const RbmDeviceParams& P, float beta, float* V, float* H, int64_t rows, int64_t k,
               const RngView& rng, uintptr_t stream, Precision precision);

// One CD-k (chain == nullptr: chains start at the data) or PCD-k update, the semantics of
// cpu::cd_update / reference.cd_gradient + momentum_update (DESIGN.md §4).
struct RbmCdBuffers {
  const float* V0 = nullptr;  // [B0, n_v] data (values in [0, 1])
  int64_t B0 = 0;
  float* chain = nullptr;     // [Bc, n_v] PCD chains (rw), or null for CD (then Bc = B0)
  int64_t Bc = 0;
  // scratch: P0 [B0, n_h], H [max(B0, Bc), n_h], Vk [B0, n_v] (CD only), Pk [Bc, n_h],
  // Pv [B0, n_v] (only with recon)
  float* P0 = nullptr;
  float* H = nullptr;
  float* Vk = nullptr;
  float* Pk = nullptr;
  float* Pv = nullptr;
};
struct RbmCdUpdate {
  // velocities in, parameters / velocities out (may alias the inputs: in place)
  const float* vW = nullptr;
  const float* vb = nullptr;
  const float* vc = nullptr;
  float* W_out = nullptr;
  float* b_out = nullptr;
  float* c_out = nullptr;
  float* vW_out = nullptr;
  float* vb_out = nullptr;
  float* vc_out = nullptr;
  float learning_rate = 0.0f, momentum = 0.0f, weight_decay = 0.0f;
  bool gradient_only = false;  // then W_out/b_out/c_out receive dW, db, dc; nothing else
  uint32_t* stats = nullptr;   // [2] (w): bits of max |W|,|b|,|c| and max |velocity| written
  double* recon = nullptr;     // [1] (+=): sum over the batch of ||v0 - p(v | p(h|v0))||^2
};
void rbm_cd_update(const RbmDeviceParams& P, const RbmCdBuffers& buf, const RbmCdUpdate& up,
                   int64_t k, const RngView& rng, uintptr_t stream, Precision precision);

// F(v) = -b.v - sum_j softplus(c_j + (vW)_j) per row of V [rows, n_v] (float64 out);
// Z [rows, n_h] scratch.
void rbm_free_energy(const RbmDeviceParams& P, const float* V, int64_t rows, float* Z,
                     double* out, uintptr_t stream);

// Full pseudo-log-likelihood sum_i log sigmoid(F(v^(i)) - F(v)) per binary row (float64);
// Z [rows, n_h] scratch.
void rbm_pseudo_log_likelihood(const RbmDeviceParams& P, const float* V, int64_t rows, float* Z,
                               double* out, uintptr_t stream);

}  // namespace ebm::cuda

// --- input checks (summarize.cu): out [4] uint32 (w): the number of non-finite values, the
// number of values other than 0 and 1, and the largest and smallest finite value as
// order-preserving keys (max: key, min: ~key; decode in python/ebmfast/_layer_cuda.py).
// n must be < 2^32.
namespace ebm::cuda {
void summarize(const float* x, int64_t n, uint32_t* out, uintptr_t stream);
}  // namespace ebm::cuda
