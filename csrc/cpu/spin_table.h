// Fields h + s.J of +-1 spin states from a sign-symmetric subset table ("method of four
// Russians" for spins): spins are taken four at a time, and for each group of four rows
// of J the table holds the 8 signed sums whose fourth spin is -1; the other 8 codes are
// their negations (flipping all four spins negates the sum). A state's field row is then
// n/4 table rows added with a sign, instead of an n x n product: 4x fewer vector adds
// than a GEMM's FMAs, at any density (spins have no zeros to skip).
//
// The table is stored in column panels of `width` floats ([panel][8 groups][width],
// contiguous), sized so a panel (~512 KB) stays in L2 while the rows of a tile of states
// read it: rows of a row-major table sit 4n bytes apart and would fall into a few L2 sets.
#pragma once
#include <cstdint>

namespace ebm::cpu {

struct SpinTableShape {
  int64_t n = 0;       // spins (rows and columns of J)
  int64_t groups = 0;  // ceil(n / 4)
  int64_t rows = 0;    // 8 groups: table rows per panel
  int64_t width = 0;   // columns per panel: 16..128, a multiple of 16
  int64_t panels = 0;  // ceil(n / width)
  int64_t floats() const { return panels * rows * width; }
};

SpinTableShape spin_table_shape(int64_t n);

// T [shape.floats()] from J [n, n] (row-major, row i = the couplings of spin i; the
// columns past n in the last panel and the rows of a partial last group are zeros).
void build_spin_table(const float* J, const SpinTableShape& s, float* T);

// F [rows, ldf] = h + S.J for +-1 int8 spin rows S [rows, n] (a spin > 0 counts as +1,
// anything else as -1). idx: scratch of rows * groups int32. Single-threaded (callers run
// it per task); every element is summed in the same fixed order.
void spin_fields(const float* T, const SpinTableShape& s, const float* h, const int8_t* S,
                 int64_t rows, float* F, int64_t ldf, int32_t* idx);

}  // namespace ebm::cpu
