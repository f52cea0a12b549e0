// Spin fields from a sign-symmetric subset table: see spin_table.h.
#include "cpu/spin_table.h"

#include <algorithm>
#include "cpu/signed_rows.h"
#include "cpu/simd.h"

namespace ebm::cpu {

namespace {

// A panel of the table as large as L2 allows (1 MB per core here; half of it leaves room
// for the tile's pick lists and output rows).
constexpr int64_t kPanelBytes = 512 * 1024;

// Picks of one state: for group g, table row 8g + c (c = the code of its four spins,
// bit b set where spin 4g + b is +1) when spin 4g + 3 is -1, else row 8g + (15 - c) with
// the sign bit set. Spins past n count as -1 (their table rows are zero).
EBM_CLONES int64_t spin_picks(const int8_t* s, int64_t n, int64_t groups, int32_t* idx) {
  const int64_t full = n / 4;
  for (int64_t g = 0; g < full; ++g) {
    const uint32_t c = static_cast<uint32_t>(s[4 * g] > 0) | (static_cast<uint32_t>(s[4 * g + 1] > 0) << 1) |
                       (static_cast<uint32_t>(s[4 * g + 2] > 0) << 2) |
                       (static_cast<uint32_t>(s[4 * g + 3] > 0) << 3);
    const uint32_t neg = c >> 3;
    const uint32_t row = static_cast<uint32_t>(8 * g) + (neg ? 15u - c : c);
    idx[g] = static_cast<int32_t>(row | (neg * kPickNegate));
  }
  if (full < groups) {
    uint32_t c = 0;
    for (int64_t b = 0; 4 * full + b < n; ++b) c |= static_cast<uint32_t>(s[4 * full + b] > 0) << b;
    idx[full] = static_cast<int32_t>(8 * full + c);  // bit 3 is a missing spin: -1
  }
  return groups;
}

// acc [16 NV] = sum over the picks of +-(panel row).
template <int NV>
EBM_INLINE void sum_signed_rows(const float* P, const int32_t* idx, int64_t m, float* acc) {
  vf16 a[NV] = {};
  add_signed_rows<NV>(P, 16 * NV, idx, m, 0, a);
  for (int t = 0; t < NV; ++t) store16(acc + 16 * t, a[t]);
}

EBM_CLONES void sum_signed_panel(const float* P, int64_t width, const int32_t* idx, int64_t m,
                                 float* acc) {
  switch (width) {
    case 16: sum_signed_rows<1>(P, idx, m, acc); break;
    case 32: sum_signed_rows<2>(P, idx, m, acc); break;
    case 64: sum_signed_rows<4>(P, idx, m, acc); break;
    default: sum_signed_rows<8>(P, idx, m, acc); break;
  }
}

}  // namespace

SpinTableShape spin_table_shape(int64_t n) {
  SpinTableShape s;
  s.n = n;
  s.groups = ceil_div(n, 4);
  s.rows = 8 * s.groups;
  s.width = 128;
  while (s.width > 16 && s.rows * s.width * static_cast<int64_t>(sizeof(float)) > kPanelBytes)
    s.width /= 2;
  s.panels = ceil_div(n, s.width);
  return s;
}

void build_spin_table(const float* J, const SpinTableShape& s, float* T) {
  const int64_t n = s.n, w = s.width;
#pragma omp parallel for collapse(2) schedule(static) if (parallel_worth(s.floats()))
  for (int64_t p = 0; p < s.panels; ++p)
    for (int64_t g = 0; g < s.groups; ++g) {
      float* base = T + (p * s.rows + 8 * g) * w;
      const int64_t j0 = p * w, width = std::min(w, n - j0);
      // row c = sum_b (bit b of c ? +1 : -1) J[4g + b]; bit 3 is always clear
      for (int64_t j = 0; j < w; ++j) base[j] = 0.0f;
      for (int b = 0; b < 4 && 4 * g + b < n; ++b) {
        const float* Jr = J + (4 * g + b) * n + j0;
        for (int64_t j = 0; j < width; ++j) base[j] -= Jr[j];
      }
      for (int c = 1; c < 8; ++c) {
        const int b = __builtin_ctz(static_cast<unsigned>(c));
        const float* prev = base + static_cast<int64_t>(c & (c - 1)) * w;
        float* e = base + static_cast<int64_t>(c) * w;
        for (int64_t j = 0; j < w; ++j) e[j] = prev[j];
        if (4 * g + b < n) {
          const float* Jr = J + (4 * g + b) * n + j0;
          for (int64_t j = 0; j < width; ++j) e[j] += 2.0f * Jr[j];
        }
      }
    }
}

void spin_fields(const float* T, const SpinTableShape& s, const float* h, const int8_t* S,
                 int64_t rows, float* F, int64_t ldf, int32_t* idx) {
  const int64_t n = s.n, w = s.width;
  for (int64_t r = 0; r < rows; ++r) spin_picks(S + r * n, n, s.groups, idx + r * s.groups);
  alignas(64) float acc[128];
  // Panel-outer: a panel is read from L3 once per tile of states, then from L2.
  for (int64_t p = 0; p < s.panels; ++p) {
    const float* P = T + p * s.rows * w;
    const int64_t j0 = p * w, width = std::min(w, n - j0);
    for (int64_t r = 0; r < rows; ++r) {
      sum_signed_panel(P, w, idx + r * s.groups, s.groups, acc);
      float* f = F + r * ldf + j0;
      for (int64_t j = 0; j < width; ++j) f[j] = acc[j] + h[j0 + j];
    }
  }
}

}  // namespace ebm::cpu
