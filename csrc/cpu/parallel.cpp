// Thread control for the CPU backend: OpenMP (our kernels) and the OpenBLAS pool (GEMMs)
// are set together so OMP_NUM_THREADS-style control means the same for both.
#include <omp.h>
#include <cblas.h>
#include "cpu/kernels.h"

namespace ebm::cpu {

void set_num_threads(int n) {
  omp_set_num_threads(n);
  scipy_openblas_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

const char* blas_name() { return scipy_openblas_get_config(); }

}  // namespace ebm::cpu
