// ctypes entry points of csrc/cuda/mcmc_chains.cu (see shim.h). The energy's arrays come
// as pointers (null when the energy has no such array), its scalars as arguments.
#include "cuda/cuda_api.h"
#include "shims/shim.h"

extern "C" const char* emu_mcmc_run_chunk(int kind, int64_t d, const float* mean,
                                          const float* precision, int64_t k, const float* log_coef,
                                          const float* means, const float* inv_var, const float* W,
                                          const float* b, const float* c, int64_t n_hidden, float a,
                                          float b_coef, float inv_scale, int sampler, float* x,
                                          float* eps, int64_t* n_accept, int64_t n_chains,
                                          int64_t n_steps, uint64_t seed, uint32_t step,
                                          uint32_t chain_offset, int adapt, int64_t adapt_index,
                                          float target_accept, float* samples, double* energies,
                                          int64_t thin, float* scratch) {
  return emu::guard([&] {
    ebm::EnergyView v;
    v.kind = static_cast<ebm::EnergyKind>(kind);
    v.d = d; v.mean = mean; v.precision = precision; v.k = k; v.log_coef = log_coef;
    v.means = means; v.inv_var = inv_var; v.W = W; v.b = b; v.c = c; v.n_hidden = n_hidden;
    v.a = a; v.b_coef = b_coef; v.inv_scale = inv_scale;
    ebm::ChainsView C{x, eps, n_accept, n_chains, d};
    ebm::ChunkPlan P;
    P.sampler = static_cast<ebm::SamplerKind>(sampler);
    P.n_steps = n_steps; P.seed = seed; P.step = step; P.chain_offset = chain_offset;
    P.adapt = adapt != 0; P.adapt_index = adapt_index; P.target_accept = target_accept;
    P.samples = samples; P.energies = energies; P.thin = thin;
    ebm::cuda::mcmc_run_chunk(v, C, P, scratch, 0);
  });
}

extern "C" int64_t emu_mcmc_scratch_floats(int kind, int64_t d, int64_t k, int64_t n_hidden,
                                           int64_t n_chains) {
  ebm::EnergyView v;
  v.kind = static_cast<ebm::EnergyKind>(kind);
  v.d = d; v.k = k; v.n_hidden = n_hidden;
  return ebm::cuda::mcmc_scratch_floats(v, n_chains);
}
