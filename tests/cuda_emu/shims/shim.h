// Helpers for the extern "C" shims that expose a CUDA launcher (csrc/cuda/cuda_api.h) of
// the emulated build to ctypes. A shim returns nullptr on success, else the error message
// (valid until the next shim call on that thread). Pointers are host pointers, preferably
// from emu_malloc (exact-size allocations, so AddressSanitizer sees overruns).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include "emu.h"

namespace emu {
inline const char* shim_error(const std::string& what) {
  static thread_local std::string msg;
  msg = what;
  return msg.c_str();
}
// A CUDA error the launcher left unchecked is a bug of the launcher: report it.
inline const char* shim_unchecked() {
  const cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) return nullptr;
  return shim_error(std::string("launcher returned without checking a CUDA error: ") + cudaGetErrorString(e));
}
}  // namespace emu

namespace emu {
// Runs f (a call of a launcher); any exception or unchecked CUDA error comes back as text.
template <class F>
inline const char* guard(F&& f) {
  cudaGetLastError();  // start clean
  try {
    f();
  } catch (const std::exception& e) {
    cudaGetLastError();
    return shim_error(e.what());
  }
  return shim_unchecked();
}
}  // namespace emu
