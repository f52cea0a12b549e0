// Exact float64 energies of +-1 spin states, and random +-1 initial states, for
// sample_ising. Both ran in Python before (a float64 GEMM in row chunks for dense J, a
// scalar CSR loop for sparse; Philox uniforms into a float array, then a compare): on the
// sparse n = 10^4 benchmark they were ~4% of the call, on dense n = 1000 the energies
// alone were ~25%.
//
// Energies take sixteen chains at a time, site-major like the sweeps (spin_block.h): a
// coupling is read once per sixteen chains and the products accumulate in float64 lanes.
#include <algorithm>
#include <vector>
#include "cpu/kernels.h"
#include "cpu/philox_run.h"
#include "cpu/scratch.h"
#include "cpu/simd.h"
#include "cpu/spin_block.h"

namespace ebm::cpu {

namespace {

using spin_block::kLanes;

typedef double vd8 __attribute__((vector_size(64)));

// Spins i of the block's sixteen chains, as float64 lanes 0-7 and 8-15, from int32 lanes:
// one vcvtdq2pd each (the int8 -> float64 vector conversion took ten shuffles and
// conversions, GCC splitting it through every width in between).
EBM_INLINE void spins_d16(const int32_t* p, vd8& lo, vd8& hi) {
  vi8 a, b;
  __builtin_memcpy(&a, p, sizeof a);
  __builtin_memcpy(&b, p + 8, sizeof b);
  lo = __builtin_convertvector(a, vd8);
  hi = __builtin_convertvector(b, vd8);
}

// out[c0 + l] = sum_i s_i (h_i + sum_{j>i} J_ij s_j) for the block's lanes; g_i for four
// rows at a time over their upper parts (contiguous), so each pair of spin vectors loaded
// feeds eight multiply-adds (one row at a time, the loads bounded the loop).
EBM_INLINE void load_d16(const double* p, vd8& lo, vd8& hi) {
  __builtin_memcpy(&lo, p, sizeof lo);
  __builtin_memcpy(&hi, p + 8, sizeof hi);
}

EBM_CLONES void dense_block_energy(int64_t n, const double* h, const double* J, const double* Sd,
                                   int lanes, double* out) {
  vd8 e_lo = {}, e_hi = {};
  for (int64_t i = 0; i < n; i += 4) {
    const int rows = static_cast<int>(std::min<int64_t>(4, n - i));
    vd8 g_lo[4] = {}, g_hi[4] = {}, s_lo, s_hi;
    // the triangle's corner: row i + k starts at column i + k + 1
    for (int64_t j = i + 1; j < std::min<int64_t>(i + 4, n); ++j) {
      load_d16(Sd + kLanes * j, s_lo, s_hi);
      for (int k = 0; k < rows; ++k)
        if (j > i + k) {
          g_lo[k] += J[n * (i + k) + j] * s_lo;
          g_hi[k] += J[n * (i + k) + j] * s_hi;
        }
    }
    if (rows == 4) {
      const double *r0 = J + n * i, *r1 = r0 + n, *r2 = r1 + n, *r3 = r2 + n;
      for (int64_t j = i + 4; j < n; ++j) {
        load_d16(Sd + kLanes * j, s_lo, s_hi);
        g_lo[0] += r0[j] * s_lo; g_hi[0] += r0[j] * s_hi;
        g_lo[1] += r1[j] * s_lo; g_hi[1] += r1[j] * s_hi;
        g_lo[2] += r2[j] * s_lo; g_hi[2] += r2[j] * s_hi;
        g_lo[3] += r3[j] * s_lo; g_hi[3] += r3[j] * s_hi;
      }
    }
    for (int k = 0; k < rows; ++k) {
      load_d16(Sd + kLanes * (i + k), s_lo, s_hi);
      e_lo += s_lo * (h[i + k] + g_lo[k]);
      e_hi += s_hi * (h[i + k] + g_hi[k]);
    }
  }
  for (int l = 0; l < lanes; ++l) out[l] = l < 8 ? e_lo[l] : e_hi[l - 8];
}

// The same over CSR rows, both triangles: sum_i s_i (h_i + g_i / 2) with g_i over the whole
// row (a test for the upper entries mispredicted at every row).
EBM_CLONES void csr_block_energy(int64_t n, const double* h, const int64_t* indptr,
                                 const int32_t* indices, const double* data, const int32_t* Si,
                                 int lanes, double* out) {
  vd8 e_lo = {}, e_hi = {};
  for (int64_t i = 0; i < n; ++i) {
    vd8 g_lo = {}, g_hi = {}, s_lo, s_hi;
    for (int64_t k = indptr[i]; k < indptr[i + 1]; ++k) {
      spins_d16(Si + kLanes * indices[k], s_lo, s_hi);
      g_lo += data[k] * s_lo;
      g_hi += data[k] * s_hi;
    }
    spins_d16(Si + kLanes * i, s_lo, s_hi);
    e_lo += s_lo * (h[i] + 0.5 * g_lo);
    e_hi += s_hi * (h[i] + 0.5 * g_hi);
  }
  for (int l = 0; l < lanes; ++l) out[l] = l < 8 ? e_lo[l] : e_hi[l - 8];
}

template <class BlockFn>
void for_each_block(int64_t n, const int8_t* S, int64_t chains, int64_t work, double* out,
                    BlockFn fn) {
  const int64_t n_blocks = ceil_div(chains, kLanes);
#pragma omp parallel for schedule(dynamic, 1) if (n_blocks > 1 && parallel_worth(work))
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t c0 = blk * kLanes;
    const int lanes = static_cast<int>(std::min<int64_t>(kLanes, chains - c0));
    int8_t* Sb = scratch<int8_t>(kSlotSpinBlock, static_cast<size_t>(kLanes * n));
    spin_block::gather_block(S, n, c0, lanes, Sb);
    fn(Sb, lanes, out + c0);
  }
}

}  // namespace

void ising_energies_csr(int64_t n, const double* h, const int64_t* indptr, const int32_t* indices,
                        const double* data, const int8_t* S, int64_t chains, double* out) {
  for_each_block(n, S, chains, chains * (indptr[n] + n), out, [&](const int8_t* Sb, int lanes, double* o) {
    // int32 spins: 64 bytes a site (640 KB at n = 10^4, L2-resident for the random reads)
    int32_t* Si = scratch<int32_t>(kSlotSpinWide, static_cast<size_t>(kLanes * n));
    for (int64_t i = 0; i < kLanes * n; ++i) Si[i] = Sb[i];
    csr_block_energy(n, h, indptr, indices, data, Si, lanes, o);
  });
}

void ising_energies_dense(int64_t n, const double* h, const double* J, const int8_t* S,
                          int64_t chains, double* out) {
  for_each_block(n, S, chains, chains * n * n / 2, out, [&](const int8_t* Sb, int lanes, double* o) {
    // The block's spins as float64 (n x 16 x 8 bytes: 128 KB at n = 1000, L2-resident
    // while every row of J streams past).
    double* Sd = scratch<double>(kSlotSpinWide, static_cast<size_t>(kLanes * n));
    for (int64_t i = 0; i < kLanes * n; ++i) Sd[i] = Sb[i];
    dense_block_energy(n, h, J, Sd, lanes, o);
  });
}

void random_spins(uint64_t seed, uint32_t stream, uint32_t step, uint32_t chain_offset,
                  int64_t chains, int64_t n, int8_t* out) {
  const int n_blocks = static_cast<int>((n + 3) / 4);
#pragma omp parallel if (chains > 1 && parallel_worth(chains * n * 8))
  {
    std::vector<float> u(static_cast<size_t>(4 * n_blocks) + 4);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chains; ++c) {
      philox_uniforms(seed, stream, chain_offset + static_cast<uint32_t>(c), step, 0, n_blocks,
                      u.data());
      int8_t* s = out + c * n;
      for (int64_t i = 0; i < n; ++i) s[i] = u[i] < 0.5f ? int8_t{1} : int8_t{-1};
    }
  }
}

}  // namespace ebm::cpu
