// Thread control for the CPU backend: OpenMP (our kernels) and the OpenBLAS pool (GEMMs)
// are set together so OMP_NUM_THREADS-style control means the same for both.
#include <omp.h>
#include <algorithm>
#include <atomic>
#include <cblas.h>
#include "cpu/kernels.h"
#include "cpu/simd.h"

namespace {
// Keep the BLAS single-threaded from the moment the module loads.
const bool kBlasSingleThreaded = [] { scipy_openblas_set_num_threads(1); return true; }();
}  // namespace

namespace ebm::cpu {

// OpenMP keeps the thread count per thread (omp_set_num_threads sets the caller's own
// ICV), so a count set from one Python thread would not reach kernels called from
// another. The count asked for is kept here, with a generation number, and every kernel
// call applies it to its own thread first (sync_num_threads, from bindings.cpp).
namespace {
std::atomic<int> g_num_threads{0};         // 0: never set, OpenMP's default
std::atomic<unsigned> g_threads_generation{0};
}  // namespace

void sync_num_threads() {
  thread_local unsigned seen = 0;
  const unsigned gen = g_threads_generation.load(std::memory_order_acquire);
  if (gen == seen) return;
  seen = gen;
  const int n = g_num_threads.load(std::memory_order_relaxed);
  if (n > 0) omp_set_num_threads(n);
}

// The BLAS always runs single-threaded inside our OpenMP teams (see gemm_block): two
// thread pools spinning on the same cores slowed small GEMMs down tenfold.
void set_num_threads(int n) {
  g_num_threads.store(n, std::memory_order_relaxed);
  g_threads_generation.fetch_add(1, std::memory_order_acq_rel);
  sync_num_threads();
  scipy_openblas_set_num_threads(1);
}

void gemm_block(bool trans_a, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
                int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (accumulate) return;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) C[i * ldc + j] = 0.0f;
    return;
  }
  scipy_cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans,
                    static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k),
                    alpha, A, static_cast<blasint>(lda), B, static_cast<blasint>(ldb), accumulate ? 1.0f : 0.0f, C,
                    static_cast<blasint>(ldc));
}

void gemm_rows_parallel(bool trans_a, int64_t m, int64_t n, int64_t k, float alpha,
                        const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                        int64_t ldc) {
  const int64_t n_blocks = ceil_div(m, kGemmRows);
#pragma omp parallel for schedule(dynamic, 1) if (parallel_worth(m * n * k))
  for (int64_t blk = 0; blk < n_blocks; ++blk) {
    const int64_t r0 = blk * kGemmRows, r1 = std::min(m, r0 + kGemmRows);
    // Row r of op(A): row r of A, or column r of A when transposed.
    const float* a = trans_a ? A + r0 : A + r0 * lda;
    gemm_block(trans_a, r1 - r0, n, k, alpha, a, lda, B, ldb, C + r0 * ldc, ldc);
  }
}

int get_num_threads() {
  sync_num_threads();
  return omp_get_max_threads();
}

const char* blas_name() { return scipy_openblas_get_config(); }

}  // namespace ebm::cpu
