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
