// ctypes entry points of csrc/cuda/ising_chains.cu and hopfield_recall.cu (see shim.h).
#include "cuda/cuda_api.h"
#include "shims/shim.h"

extern "C" const char* emu_ising_chains(int64_t n, const float* h, const float* J,
                                        const int64_t* indptr, const int32_t* indices,
                                        const float* data, const float* betas, int64_t n_sweeps,
                                        int gibbs, int random_order, const uint8_t* clamped,
                                        int8_t* St, float* F, int64_t chains, uint64_t seed,
                                        uint32_t step, uint32_t chain_offset, int64_t* flips,
                                        double* trace) {
  return emu::guard([&] {
    ebm::IsingView P;
    P.n = n; P.h = h; P.J = J; P.indptr = indptr; P.indices = indices; P.data = data;
    ebm::SweepPlan plan;
    plan.betas = betas; plan.n_sweeps = n_sweeps; plan.gibbs = gibbs != 0;
    plan.random_order = random_order != 0; plan.clamped = clamped;
    ebm::RngView r;
    r.seed = seed; r.step = step; r.chain_offset = chain_offset;
    ebm::cuda::ising_chains(P, plan, St, F, chains, r, flips, trace, 0);
  });
}

extern "C" const char* emu_lattice_sweeps(int8_t* S, int64_t chains, int64_t L, float J, float h,
                                          const float* betas_host, int64_t n_sweeps, int gibbs,
                                          uint64_t seed, uint32_t step, uint32_t chain_offset,
                                          unsigned long long* flips, long long* bonds,
                                          long long* magnet) {
  return emu::guard([&] {
    ebm::RngView r;
    r.seed = seed; r.step = step; r.chain_offset = chain_offset;
    ebm::cuda::lattice_sweeps(S, chains, L, J, h, betas_host, n_sweeps, gibbs != 0, r, flips, bonds,
                              magnet, 0);
  });
}
