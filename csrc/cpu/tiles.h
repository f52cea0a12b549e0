// Tile primitives shared by the CPU kernels (defined in rbm_layer.cpp).
#pragma once
#include <cstdint>

namespace ebm::cpu {

// acc[0..width) = sum over k < nnz of M[idx[k], j0 .. j0+width), M row-major [m_rows, ld],
// idx ascending, width <= kTile; acc must hold kTile floats (lanes past width are
// scratch). With add, the sum is added to acc's first width floats instead. This is X.M for a binary row of X (idx = its ones) and V^T.P for a column of
// a binary V (idx = the rows where it is one).
void sum_rows_tile(const float* M, int64_t ld, int64_t m_rows, const int32_t* idx, int64_t nnz,
                   int64_t j0, int width, float* acc, bool add = false);

// Positions of the nonzeros of x[0..n) into idx (which needs n slots); returns how many.
int64_t nonzero_positions(const float* x, int64_t n, int32_t* idx);

}  // namespace ebm::cpu
