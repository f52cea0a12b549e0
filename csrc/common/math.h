// Scalar math shared by CPU and CUDA kernels: sigmoid, softplus, log-sum-exp.
// The CPU versions are branch-free polynomial approximations (Cephes expf/logf,
// about 1 ulp) so that loops over them vectorise inside target_clones kernels;
// the CUDA versions use the device's expf/log1pf.
#pragma once
#include <cstdint>
#include <cstring>
#include "common/philox.h"  // EBM_HD

namespace ebm {

#if !defined(__CUDA_ARCH__)
EBM_HD float bits_to_float(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
EBM_HD uint32_t float_to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

// Cephes expf core: e^r for |r| <= ln2/2, degree-6 polynomial. T is float or a GCC
// vector of floats (csrc/cpu/simd.h), so the scalar and vector exp share one polynomial.
template <class T>
EBM_HD T exp_reduced(T r) {
  const T r2 = r * r;
  T p = r * 0.0f + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * r2 + r + 1.0f;
}

// e^x for x in [-87, 88] (clamped outside): x = n ln2 + r, e^x = 2^n e^r.
EBM_HD float exp_f(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  const int32_t e = static_cast<int32_t>(n) + 127;
  return exp_reduced(r) * bits_to_float(static_cast<uint32_t>(e) << 23);
}

// Cephes logf core: ln x = ln(1 + m) + e ln2 from the reduced m (x = (1 + m) 2^e, m in
// [sqrt(1/2) - 1, sqrt(2) - 1]) and fe = e; degree-8 polynomial. T is float or a GCC vector
// of floats (csrc/cpu/simd.h log16), so the scalar and vector log share one polynomial.
template <class T>
EBM_HD T log_reduced(T m, T fe) {
  const T z = m * m;
  T y = m * 0.0f + 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y += -2.12194440e-4f * fe;
  y += -0.5f * z;
  return m + y + 0.693359375f * fe;
}

// ln x for finite x > 0 (Cephes logf): frexp by bit manipulation + degree-8 polynomial.
EBM_HD float log_f(float x) {
  uint32_t u = float_to_bits(x);
  int32_t e = static_cast<int32_t>((u >> 23) & 0xff) - 126;  // x = m * 2^e, m in [0.5, 1)
  float m = bits_to_float((u & 0x007fffffu) | 0x3f000000u);
  const bool small = m < 0.707106781186547524f;
  e -= small ? 1 : 0;
  m = small ? (m + m - 1.0f) : (m - 1.0f);
  return log_reduced(m, static_cast<float>(e));
}

// ln(1 + t) for t >= 0, accurate for tiny t (Goldberg's trick: the rounding error of
// 1 + t is divided back out).
EBM_HD float log1p_f(float t) {
  const float w = 1.0f + t;
  const float d = w - 1.0f;
  return d == 0.0f ? t : log_f(w) * (t / d);
}

EBM_HD float sigmoid_f(float z) { return 1.0f / (1.0f + exp_f(-z)); }

// softplus(x) = ln(1 + e^x) = max(x, 0) + ln(1 + e^{-|x|}): never overflows.
EBM_HD float softplus_f(float x) {
  const float ax = x < 0.0f ? -x : x;
  return (x > 0.0f ? x : 0.0f) + log1p_f(exp_f(-ax));
}
#else
__device__ __forceinline__ float sigmoid_f(float z) { return 1.0f / (1.0f + expf(-z)); }
__device__ __forceinline__ float softplus_f(float x) {
  return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
}
#endif

}  // namespace ebm
