// Stand-in for <mma.h> under the host emulator (emu.h): nvcuda::wmma at tile level, for
// the TF32 shape m16n16k8 (matrix_a row/col major, matrix_b row/col major, float
// accumulator) and plain float tiles of any shape.
//
// Every lane holds the WHOLE tile (num_elements = rows * cols, stored row-major), so an
// element loop `for (i < f.num_elements) f.x[i] = g(f.x[i])` means the same as on a GPU,
// but code that assumes the device's element-to-position mapping does not (that mapping
// is unspecified by CUDA anyway). load/mma/fill are computed redundantly by each lane;
// every *_sync call is a warp barrier, so all 32 lanes must call it (as on the device);
// store_matrix_sync writes from lane 0 only, then the warp waits for it. Pointers must be
// 32-byte aligned and ldm a multiple of 16 bytes, as on the device (else an error).
//
// __float_to_tf32 rounds to nearest, ties away from zero, to a 10-bit mantissa, and keeps
// the result as a float (cvt.rna.tf32.f32). mma_sync reads only the top 19 bits of each
// input (inputs not converted are truncated, as the tensor cores do) and accumulates the
// exact products in float32 in k order: the device's accumulation order and rounding are
// unspecified, so compare with a tolerance of a few float32 ulps of sum |a||b|.
#pragma once
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include "emu.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
namespace precision {
struct tf32 {};
}  // namespace precision

inline float __float_to_tf32(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) {  // finite: round the magnitude half away from zero
    u += 0x1000u;
    u &= 0xffffe000u;
  }
  std::memcpy(&f, &u, 4);
  return f;
}

namespace detail {
template <class Use, int M, int N, int K> struct shape;
template <int M, int N, int K> struct shape<matrix_a, M, N, K> { static constexpr int rows = M, cols = K; };
template <int M, int N, int K> struct shape<matrix_b, M, N, K> { static constexpr int rows = K, cols = N; };
template <int M, int N, int K> struct shape<accumulator, M, N, K> { static constexpr int rows = M, cols = N; };
template <class T> struct storage { using type = T; };
template <> struct storage<precision::tf32> { using type = float; };
inline float tf32_truncate(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u &= 0xffffe000u;
  std::memcpy(&f, &u, 4);
  return f;
}
// The device's requirements on every load/store: a 256-bit aligned pointer and a leading
// dimension that is a multiple of 16 bytes (CUDA Programming Guide, wmma). A violation is
// an error here (undefined behaviour on the device).
template <class T>
inline void check_ptr(const T* p, unsigned ldm, const char* what) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0)
    throw std::runtime_error(std::string(what) + ": pointer not 256-bit aligned");
  if ((ldm * sizeof(T)) % 16 != 0)
    throw std::runtime_error(std::string(what) + ": ldm " + std::to_string(ldm) +
                             " is not a multiple of 16 bytes");
}
inline void warp_sync(const char* what) {
  // The calling warp's lanes (all of them: a *_sync call is warp-collective).
  const unsigned nt = blockDim.x * blockDim.y * blockDim.z;
  const unsigned tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned lanes = nt - (tid & ~31u) >= 32 ? 32 : nt - (tid & ~31u);
  emu::sync_warp(lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u), what);
}
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment {
  static_assert(!std::is_same_v<T, precision::tf32> || (M == 16 && N == 16 && K == 8),
                "the emulated TF32 wmma supports m16n16k8 only");
  static_assert(std::is_same_v<Use, accumulator> == std::is_same_v<Layout, void>,
                "matrix_a/matrix_b need a row_major/col_major layout, accumulators none");

 public:
  static constexpr int rows = detail::shape<Use, M, N, K>::rows;
  static constexpr int cols = detail::shape<Use, M, N, K>::cols;
  using element_type = typename detail::storage<T>::type;
  static constexpr int num_elements = rows * cols;
  element_type x[num_elements];
};

template <class Use, int M, int N, int K, class T, class L>
inline void fill_fragment(fragment<Use, M, N, K, T, L>& f, typename fragment<Use, M, N, K, T, L>::element_type v) {
  for (int i = 0; i < f.num_elements; ++i) f.x[i] = v;
}

// matrix_a / matrix_b: the layout is the fragment's.
template <class Use, int M, int N, int K, class T, class L>
inline void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const typename fragment<Use, M, N, K, T, L>::element_type* p,
                             unsigned ldm) {
  static_assert(!std::is_same_v<L, void>, "an accumulator load needs a layout_t");
  detail::warp_sync("wmma::load_matrix_sync");
  detail::check_ptr(p, ldm, "wmma::load_matrix_sync");
  constexpr int R = fragment<Use, M, N, K, T, L>::rows, C = fragment<Use, M, N, K, T, L>::cols;
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c)
      f.x[r * C + c] = std::is_same_v<L, row_major> ? p[r * static_cast<size_t>(ldm) + c]
                                                    : p[c * static_cast<size_t>(ldm) + r];
}

template <int M, int N, int K, class T>
inline void load_matrix_sync(fragment<accumulator, M, N, K, T>& f, const T* p, unsigned ldm, layout_t layout) {
  detail::warp_sync("wmma::load_matrix_sync");
  detail::check_ptr(p, ldm, "wmma::load_matrix_sync");
  for (int r = 0; r < M; ++r)
    for (int c = 0; c < N; ++c)
      f.x[r * N + c] = layout == mem_row_major ? p[r * static_cast<size_t>(ldm) + c]
                                               : p[c * static_cast<size_t>(ldm) + r];
}

template <int M, int N, int K, class T>
inline void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm, layout_t layout) {
  detail::warp_sync("wmma::store_matrix_sync");
  detail::check_ptr(p, ldm, "wmma::store_matrix_sync");
  if ((threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) % 32 == 0)
    for (int r = 0; r < M; ++r)
      for (int c = 0; c < N; ++c) {
        const size_t o = layout == mem_row_major ? r * static_cast<size_t>(ldm) + c : c * static_cast<size_t>(ldm) + r;
        p[o] = f.x[r * N + c];
      }
  detail::warp_sync("wmma::store_matrix_sync");
}

template <int M, int N, int K, class TA, class TB, class LA, class LB, class TC>
inline void mma_sync(fragment<accumulator, M, N, K, TC>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
                     const fragment<matrix_b, M, N, K, TB, LB>& b, const fragment<accumulator, M, N, K, TC>& c) {
  detail::warp_sync("wmma::mma_sync");
  constexpr bool tf32 = std::is_same_v<TA, precision::tf32>;
  static_assert(std::is_same_v<TA, TB>, "matrix_a and matrix_b precisions differ");
  TC out[M * N];
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      TC acc = c.x[i * N + j];
      for (int k = 0; k < K; ++k) {
        const float av = tf32 ? detail::tf32_truncate(a.x[i * K + k]) : a.x[i * K + k];
        const float bv = tf32 ? detail::tf32_truncate(b.x[k * N + j]) : b.x[k * N + j];
        acc += av * bv;  // exact for TF32 inputs (11 x 11 significant bits)
      }
      out[i * N + j] = acc;
    }
  for (int i = 0; i < M * N; ++i) d.x[i] = out[i];
}

}  // namespace wmma
}  // namespace nvcuda
