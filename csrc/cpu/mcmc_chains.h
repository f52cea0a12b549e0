// Continuous-state MCMC chains on the CPU (mcmc_chains.cpp), called from bindings.cpp
// with every buffer validated and the GIL released.
#pragma once
#include <cstdint>
#include "common/mcmc_views.h"

namespace ebm::cpu {

// One chunk of RWMH / MALA / ULA steps of every chain (see ChunkPlan), in place.
void mcmc_run_chunk(const EnergyView& energy, const ChainsView& chains, const ChunkPlan& plan);

// E(x) [n] (w) and, when grad is not null, grad E(x) [n, d] (w) of X [n, d].
void mcmc_energy(const EnergyView& energy, const float* X, int64_t n, float* energy_out,
                 float* grad);

}  // namespace ebm::cpu
