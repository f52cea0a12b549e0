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
