// Device discovery for the CUDA backend. Linked against the static cudart, so the module
// needs only the NVIDIA driver at run time; without one every query reports "no device".
#include <cuda_runtime.h>
#include "cuda/cuda_api.h"

namespace ebm::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error (no driver, no device)
    return 0;
  }
  return n;
}

std::string device_name(int index) {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return std::string(prop.name);
}

int runtime_version() { return CUDART_VERSION; }

int current_compute_capability() {
  int dev = 0;
  cudaDeviceProp prop;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return 10 * prop.major + prop.minor;
}

}  // namespace ebm::cuda
