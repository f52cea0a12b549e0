// A host emulator for the CUDA C++ that ebmfast's kernels use: compile a .cu file as C++
// with g++ (tests/cuda_emu/build.py does this) and its kernels run on the CPU.
//
//   g++ -x c++ -std=c++20 -include tests/cuda_emu/emu.h -I tests/cuda_emu -I csrc file.cu
//
// after build.py has rewritten every `kernel<<<grid, block, smem, stream>>>(args)` into
// `::emu::launch(grid, block, smem, stream)(kernel, args)` (g++ cannot parse <<< >>>).
//
// It is a LOGIC CHECK, NOT A GPU. What is emulated:
//  - a launch runs the blocks of the grid one after another; the threads of a block are
//    real std::threads (a persistent pool reused across blocks and launches), with
//    threadIdx / blockIdx / blockDim / gridDim as thread_local variables;
//  - __shared__ is `static`: a function-local static array is shared by the threads of
//    the running block (blocks never run at the same time). It is NOT reset between
//    blocks or launches (a GPU gives garbage), so a kernel reading shared memory it did
//    not write this block may pass here;
//  - __syncthreads() is a barrier over the block's threads; a thread that returns while
//    others wait at a barrier, barriers reached from different source lines, and a wait
//    longer than the timeout (emu_set_timeout, default 60 s) are reported as errors;
//  - warps are 32 consecutive linear thread ids; __syncwarp and the warp collectives
//    (__shfl*_sync, __ballot_sync, __any_sync, __all_sync) exchange values through
//    per-warp slots and a per-warp barrier. Every lane of the warp must call them, with
//    a mask naming exactly the warp's lanes (what our kernels do); partial masks are
//    reported as errors, not emulated;
//  - atomicAdd (int, unsigned, unsigned long long, float, double) through std::atomic_ref;
//  - the math builtins map to <cmath> (expf is the host's expf, not the device's: results
//    agree with a GPU to a few ulps, not bitwise); __CUDA_ARCH__ is defined (800), so the
//    device branches of csrc/common/{philox,math}.h are the ones compiled;
//  - the runtime API subset the sources need: device memory is host memory (cudaMalloc
//    is aligned malloc, cudaMemcpy is memcpy, every stream is synchronous); a failing
//    launch sets the error cudaGetLastError returns, as on a GPU (invalid configurations
//    such as an empty grid or > 1024 threads are failures too).
// What is NOT emulated: timing and occupancy, the memory model (no weak ordering, no
// caches; races between threads of a block are real host races and only show up by
// chance), races between blocks (they run sequentially), dynamic shared memory, shared
// memory limits, cooperative groups, warp divergence and independent thread scheduling
// subtleties, textures, streams as concurrency, device-side printf formatting of %f on
// half types, and every API call not listed here (a missing one is a compile error).
#pragma once
#if !defined(EBM_CUDA_EMU)
#define EBM_CUDA_EMU 1
#endif
#define __CUDA_ARCH__ 800

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <source_location>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

// --------------------------------------------------------------------------- keywords
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __constant__ static
#define __managed__
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __grid_constant__

// --------------------------------------------------------------------------- vector types
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 { unsigned x, y, z; };
#define EMU_VEC(name, T, n, al) struct __attribute__((aligned(al))) name
EMU_VEC(float2, float, 2, 8) { float x, y; };
EMU_VEC(float4, float, 4, 16) { float x, y, z, w; };
EMU_VEC(int2, int, 2, 8) { int x, y; };
EMU_VEC(int4, int, 4, 16) { int x, y, z, w; };
EMU_VEC(uint2, unsigned, 2, 8) { unsigned x, y; };
EMU_VEC(uint4, unsigned, 4, 16) { unsigned x, y, z, w; };
EMU_VEC(double2, double, 2, 16) { double x, y; };
EMU_VEC(longlong2, long long, 2, 16) { long long x, y; };
#undef EMU_VEC
struct float3 { float x, y, z; };
struct int3 { int x, y, z; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
static_assert(alignof(float4) == 16 && sizeof(float4) == 16, "float4 layout");

// The built-in indices of the calling emulated thread.
inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};
constexpr int warpSize = 32;

// --------------------------------------------------------------------------- runtime API
typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorNoDevice = 100,
  cudaErrorLaunchFailure = 719,
};
typedef cudaError_t cudaError;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
#define cudaStreamLegacy (reinterpret_cast<cudaStream_t>(0x1))
#define cudaStreamPerThread (reinterpret_cast<cudaStream_t>(0x2))

namespace emu {
// The sticky "last error" of the emulated device (per host thread, like CUDA's).
void set_last_error(cudaError_t code, const std::string& what);
cudaError_t peek_last_error();
cudaError_t take_last_error();
const char* error_string(cudaError_t code);
}  // namespace emu

inline cudaError_t cudaGetLastError() { return emu::take_last_error(); }
inline cudaError_t cudaPeekAtLastError() { return emu::peek_last_error(); }
inline const char* cudaGetErrorString(cudaError_t e) { return emu::error_string(e); }
inline const char* cudaGetErrorName(cudaError_t e) { return emu::error_string(e); }
// Exact-size allocations (256-byte aligned, like the device's), so that AddressSanitizer
// builds see an overrun of a "device" buffer.
inline cudaError_t cudaMalloc(void** p, size_t n) {
  *p = nullptr;
  if (posix_memalign(p, 256, n == 0 ? 1 : n) != 0) return cudaErrorMemoryAllocation;
  return cudaSuccess;
}
template <class T>
inline cudaError_t cudaMalloc(T** p, size_t n) { return cudaMalloc(reinterpret_cast<void**>(p), n); }
inline cudaError_t cudaFree(void* p) { std::free(p); return cudaSuccess; }
inline cudaError_t cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) {
  if (n) std::memmove(d, s, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind k,
                                   cudaStream_t = nullptr) { return cudaMemcpy(d, s, n, k); }
inline cudaError_t cudaMemset(void* d, int v, size_t n) {
  if (n) std::memset(d, v, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t = nullptr) {
  return cudaMemset(d, v, n);
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return emu::peek_last_error(); }
inline cudaError_t cudaDeviceSynchronize() { return emu::peek_last_error(); }

// --------------------------------------------------------------------------- math
// Device overloads of min/max (CUDA has them for every arithmetic type).
#define EMU_MINMAX(T)                                                  \
  inline T min(T a, T b) { return b < a ? b : a; }                     \
  inline T max(T a, T b) { return a < b ? b : a; }
EMU_MINMAX(int)
EMU_MINMAX(unsigned)
EMU_MINMAX(long)
EMU_MINMAX(unsigned long)
EMU_MINMAX(long long)
EMU_MINMAX(unsigned long long)
EMU_MINMAX(float)
EMU_MINMAX(double)
#undef EMU_MINMAX
// expf, logf, log1pf, fmaf, sqrtf, fminf, ... are the C library's (global, from <cmath>).
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float cospif(float x) { return static_cast<float>(std::cos(M_PI * static_cast<double>(x))); }
inline float sinpif(float x) { return static_cast<float>(std::sin(M_PI * static_cast<double>(x))); }
inline void sincospif(float x, float* s, float* c) { *s = sinpif(x); *c = cospif(x); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline int __float2int_rn(float x) { return static_cast<int>(std::nearbyint(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __float2int_rd(float x) { return static_cast<int>(std::floor(x)); }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return static_cast<unsigned long long>((static_cast<unsigned __int128>(a) * b) >> 64);
}
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
template <class T> inline T __ldg(const T* p) { return *p; }

// --------------------------------------------------------------------------- atomics
template <class T>
inline T emu_atomic_add(T* p, T v) {
  static_assert(std::is_arithmetic_v<T>);
  return std::atomic_ref<T>(*p).fetch_add(v);
}
inline int atomicAdd(int* p, int v) { return emu_atomic_add(p, v); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return emu_atomic_add(p, v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { return emu_atomic_add(p, v); }
inline float atomicAdd(float* p, float v) { return emu_atomic_add(p, v); }
inline double atomicAdd(double* p, double v) { return emu_atomic_add(p, v); }
inline int atomicSub(int* p, int v) { return std::atomic_ref<int>(*p).fetch_sub(v); }
inline unsigned atomicSub(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).fetch_sub(v); }
inline int atomicExch(int* p, int v) { return std::atomic_ref<int>(*p).exchange(v); }
inline unsigned atomicExch(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).exchange(v); }
inline float atomicExch(float* p, float v) { return std::atomic_ref<float>(*p).exchange(v); }
template <class T>
inline T emu_atomic_cas(T* p, T cmp, T v) {
  std::atomic_ref<T>(*p).compare_exchange_strong(cmp, v);
  return cmp;  // the old value either way
}
inline int atomicCAS(int* p, int c, int v) { return emu_atomic_cas(p, c, v); }
inline unsigned atomicCAS(unsigned* p, unsigned c, unsigned v) { return emu_atomic_cas(p, c, v); }
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long c, unsigned long long v) {
  return emu_atomic_cas(p, c, v);
}
template <class T>
inline T emu_atomic_minmax(T* p, T v, bool want_max) {
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while ((want_max ? old < v : v < old) && !a.compare_exchange_weak(old, v)) {}
  return old;
}
inline int atomicMax(int* p, int v) { return emu_atomic_minmax(p, v, true); }
inline int atomicMin(int* p, int v) { return emu_atomic_minmax(p, v, false); }
inline unsigned atomicMax(unsigned* p, unsigned v) { return emu_atomic_minmax(p, v, true); }
inline unsigned atomicMin(unsigned* p, unsigned v) { return emu_atomic_minmax(p, v, false); }
inline unsigned atomicOr(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).fetch_or(v); }
inline unsigned atomicAnd(unsigned* p, unsigned v) { return std::atomic_ref<unsigned>(*p).fetch_and(v); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }

// --------------------------------------------------------------------------- block / warp sync
namespace emu {
// Barrier over the block's threads; `where` names the call site (divergence check).
void sync_block(const std::source_location& where);
// Barrier over the calling warp; mask must name exactly the warp's lanes.
void sync_warp(unsigned mask, const char* what);
// One warp exchange: every lane publishes `mine` (8 bytes) and receives lane src's value
// (src < 0: its own). Returns the word of lane src.
unsigned long long warp_exchange(unsigned mask, unsigned long long mine, int src, const char* what);
// All lanes publish a predicate; returns the ballot of the warp's lanes restricted to mask.
unsigned warp_ballot(unsigned mask, bool pred, const char* what);
int lane_id();
}  // namespace emu

inline void __syncthreads(const std::source_location where = std::source_location::current()) {
  emu::sync_block(where);
}
inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::sync_warp(mask, "__syncwarp"); }

namespace emu {
template <class T>
inline unsigned long long to_word(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of a type > 8 bytes");
  unsigned long long w = 0;
  std::memcpy(&w, &v, sizeof(T));
  return w;
}
template <class T>
inline T from_word(unsigned long long w) {
  T v;
  std::memcpy(&v, &w, sizeof(T));
  return v;
}
inline int segment_src(int lane, int src, int width) {
  // Lanes are split into segments of `width`; src indexes within the caller's segment.
  return (lane & ~(width - 1)) + (src & (width - 1));
}
}  // namespace emu

template <class T>
inline T __shfl_sync(unsigned mask, T var, int src, int width = 32) {
  const int lane = emu::lane_id();
  return emu::from_word<T>(emu::warp_exchange(mask, emu::to_word(var), emu::segment_src(lane, src, width), "__shfl_sync"));
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  const int lane = emu::lane_id();
  const int pos = (lane & (width - 1)) + static_cast<int>(delta);
  const int src = pos < width ? lane + static_cast<int>(delta) : -1;
  return emu::from_word<T>(emu::warp_exchange(mask, emu::to_word(var), src, "__shfl_down_sync"));
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  const int lane = emu::lane_id();
  const int pos = (lane & (width - 1)) - static_cast<int>(delta);
  const int src = pos >= 0 ? lane - static_cast<int>(delta) : -1;
  return emu::from_word<T>(emu::warp_exchange(mask, emu::to_word(var), src, "__shfl_up_sync"));
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
  const int lane = emu::lane_id();
  const int x = lane ^ lane_mask;
  const int src = (x & ~(width - 1)) == (lane & ~(width - 1)) ? x : -1;
  return emu::from_word<T>(emu::warp_exchange(mask, emu::to_word(var), src, "__shfl_xor_sync"));
}
inline unsigned __ballot_sync(unsigned mask, int pred) { return emu::warp_ballot(mask, pred != 0, "__ballot_sync"); }
inline int __any_sync(unsigned mask, int pred) { return emu::warp_ballot(mask, pred != 0, "__any_sync") != 0; }
inline int __all_sync(unsigned mask, int pred) {
  return emu::warp_ballot(mask, pred != 0, "__all_sync") == emu::warp_ballot(mask, true, "__all_sync");
}
inline unsigned __activemask() { return emu::warp_ballot(0xffffffffu, true, "__activemask"); }

// --------------------------------------------------------------------------- launches
namespace emu {
// Runs body() as every thread of every block of the grid (blocks sequentially). Errors
// (exceptions in the kernel, barrier misuse, timeouts) become the last error.
void run_grid(const char* kernel, dim3 grid, dim3 block, const std::function<void()>& body);

struct Launch {
  const char* name;
  dim3 grid, block;
  size_t smem;
  template <class... P, class... A>
  void operator()(void (*kernel)(P...), A&&... args) const {
    static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
    if (smem != 0) {
      set_last_error(cudaErrorInvalidValue, "dynamic shared memory is not emulated");
      return;
    }
    // Arguments are converted to the parameter types once, as the launch copies them;
    // each emulated thread then gets its own copy (kernel parameters are by value).
    const std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
    run_grid(name, grid, block, [&] { std::apply(kernel, params); });
  }
};
// build.py rewrites `k<<<g, b, s, st>>>(a...)` to `::emu::launch("k", g, b, s, st)(k, a...)`.
inline Launch launch(const char* name, dim3 grid, dim3 block, size_t smem = 0, cudaStream_t = nullptr) {
  return Launch{name, grid, block, smem};
}
}  // namespace emu
