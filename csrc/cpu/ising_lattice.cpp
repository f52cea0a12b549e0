// Checkerboard Metropolis / heat-bath sweeps of the periodic L x L Ising lattice,
// E = -J sum_<ij> s_i s_j - h sum_i s_i, on many chains.
//
// The kernel keeps each chain colour-separated (int8 [2][L][L/2], colour c = (i+j) % 2),
// so a row of one colour is contiguous and its four neighbours are contiguous rows of the
// other colour: up, down, the same row, and the same row shifted by one (left or right,
// depending on the row's parity). A flip depends only on (s, neighbour sum), ten cases
// whose acceptance probabilities are tabulated once per sweep; sixteen sites at a time
// look theirs up with one permute. Uniforms: half-sweep c of sweep t uses Philox step
// step + 2t + c and the site (i, j) of that colour draws unit i*(L/2) + j/2, so each
// half-sweep consumes exactly one contiguous run of L*L/2 uniforms.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>
#include "common/philox.h"
#include "cpu/kernels.h"
#include "cpu/philox_run.h"
#include "cpu/scratch.h"
#include "cpu/simd.h"

namespace ebm::cpu {

namespace {

struct RowJob {
  const int8_t* up;     // other colour, row i - 1 [H]
  const int8_t* down;   // other colour, row i + 1 [H]
  const int8_t* same;   // other colour, row i [H]
  int8_t* centre;       // this colour, row i [H] (w)
  int64_t H;            // L / 2
  bool shift_left;      // the fourth neighbour of k is same[k - 1] (else same[k + 1])
  const float* u;       // [H] uniforms of the row
  const float* table;   // [16] acceptance (Metropolis) or p(+1) (heat bath)
  int8_t* ext;          // scratch [H + 2]
};

// Flips of one row; returns how many spins changed. Metropolis: flip iff u < T[5 (s > 0) +
// (nb + 4) / 2]. Heat bath: s_new = +1 iff u < T[(nb + 4) / 2].
template <bool kGibbs>
EBM_INLINE int64_t update_row(const RowJob& R) {
  const int64_t H = R.H;
  // The row of the other colour with its periodic ends attached: ext[1 + k] = same[k].
  R.ext[0] = R.same[H - 1];
  std::memcpy(R.ext + 1, R.same, static_cast<size_t>(H));
  R.ext[H + 1] = R.same[0];
  const int8_t* side = R.ext + (R.shift_left ? 0 : 2);
  vf16 T;
  std::memcpy(&T, R.table, sizeof T);
  int64_t flips = 0;
  int64_t k = 0;
  vi16 count = {};
  // Neighbour sums and table indices in int8 lanes (|values| <= 9), one widening for the
  // permute, one narrowing of the flip mask.
  const vb16 one8 = vb16{} + 1, four8 = vb16{} + 4, five8 = vb16{} + 5;
  for (; k + 16 <= H; k += 16) {
    const vb16 nb = load_b16(R.up + k) + load_b16(R.down + k) + load_b16(R.same + k) + load_b16(side + k);
    const vb16 s = load_b16(R.centre + k);
    const vb16 up8 = s > vb16{};  // -1 where s = +1
    const vf16 u = load16(R.u + k);
    vb16 flip8;
    if constexpr (kGibbs) {
      const vf16 p_up = __builtin_shuffle(T, widen16((nb + four8) >> one8));
      flip8 = narrow16(u < p_up) ^ up8;
    } else {
      const vb16 idx = ((nb + four8) >> one8) + (up8 & five8);
      flip8 = narrow16(u < __builtin_shuffle(T, widen16(idx)));
    }
    count -= widen16(flip8);
    store_b16(R.centre + k, flip8 ? -s : s);
  }
  for (int l = 0; l < 16; ++l) flips += count[l];
  for (; k < H; ++k) {
    const int nb = R.up[k] + R.down[k] + R.same[k] + side[k];
    const int s = R.centre[k];
    bool flip;
    if constexpr (kGibbs)
      flip = (R.u[k] < R.table[(nb + 4) >> 1]) != (s > 0);
    else
      flip = R.u[k] < R.table[((nb + 4) >> 1) + (s > 0 ? 5 : 0)];
    if (flip) {
      R.centre[k] = static_cast<int8_t>(-s);
      ++flips;
    }
  }
  return flips;
}

EBM_CLONES int64_t update_row_metropolis(const RowJob& R) { return update_row<false>(R); }
EBM_CLONES int64_t update_row_gibbs(const RowJob& R) { return update_row<true>(R); }

// sum over the colour-0 sites of the row of s * (its four neighbours), and sum of s over
// both colours of the row: every bond touches exactly one colour-0 site.
void row_sums(const int8_t* P, int64_t L, int64_t i, int64_t& bonds, int64_t& magnet) {
  const int64_t H = L / 2;
  const int8_t* c0 = P + i * H;
  const int8_t* other = P + L * H;
  const int8_t* up = other + ((i + L - 1) % L) * H;
  const int8_t* down = other + ((i + 1) % L) * H;
  const int8_t* same = other + i * H;
  const bool shift_left = (i & 1) == 0;  // colour 0, row i: p = i & 1
  int64_t b = 0, m = 0;
  for (int64_t k = 0; k < H; ++k) {
    const int64_t k2 = shift_left ? (k + H - 1) % H : (k + 1) % H;
    b += c0[k] * (up[k] + down[k] + same[k] + same[k2]);
    m += c0[k] + same[k];
  }
  bonds = b;
  magnet = m;
}

}  // namespace

void lattice_sweeps(int8_t* S, int64_t chains, int64_t L, float J, float h, const float* betas,
                    int64_t n_sweeps, bool gibbs, const RngView& rng, int64_t* flips,
                    double* energy, double* magnet) {
  const int64_t H = L / 2, N = L * L;
  std::vector<int8_t> packed(static_cast<size_t>(chains * N));
  std::vector<int64_t> row_flips(static_cast<size_t>(chains * L), 0);
  std::vector<int64_t> row_bonds(static_cast<size_t>(chains * L)), row_mag(static_cast<size_t>(chains * L));
  auto* update = gibbs ? &update_row_gibbs : &update_row_metropolis;
  const int64_t tasks = chains * L;
  const bool par = chains * N >= 4096;  // a half-sweep of 2048 sites already pays for the team
#pragma omp parallel if (par)
  {
    // natural [L][L] -> colour-separated [2][L][H]
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t ch = task / L, i = task % L;
      const int8_t* src = S + ch * N + i * L;
      int8_t* P = packed.data() + ch * N;
      for (int c = 0; c < 2; ++c) {
        const int64_t p = (i + c) & 1;
        int8_t* dst = P + c * L * H + i * H;
        for (int64_t k = 0; k < H; ++k) dst[k] = src[2 * k + p];
      }
    }
    float* u = scratch<float>(kSlotLatticeUniforms, static_cast<size_t>(H + 8));
    int8_t* ext = scratch<int8_t>(kSlotLatticeRow, static_cast<size_t>(H + 2));
    alignas(64) float table[16];
    for (int64_t t = 0; t < n_sweeps; ++t) {
      const double beta = betas[t];
      for (int l = 0; l < 16; ++l) table[l] = 0.0f;
      for (int q = 0; q < 5; ++q) {
        const double field = J * (2.0 * q - 4.0) + h;  // E contribution of s is -s * field
        if (gibbs) {
          table[q] = static_cast<float>(1.0 / (1.0 + std::exp(-2.0 * beta * field)));
        } else {
          // dE of flipping s is 2 s field
          table[q] = static_cast<float>(std::exp(std::min(2.0 * beta * field, 0.0)));        // s = -1
          table[5 + q] = static_cast<float>(std::exp(std::min(-2.0 * beta * field, 0.0)));   // s = +1
        }
      }
      for (int c = 0; c < 2; ++c) {
        const uint32_t step = rng.step + static_cast<uint32_t>(2 * t + c);
#pragma omp for schedule(static)
        for (int64_t task = 0; task < tasks; ++task) {
          const int64_t ch = task / L, i = task % L;
          int8_t* P = packed.data() + ch * N;
          const int8_t* other = P + (1 - c) * L * H;
          const int64_t u0 = i * H;
          philox_uniforms(rng.seed, kStreamAccept, rng.chain_offset + static_cast<uint32_t>(ch), step,
                          static_cast<uint32_t>(u0 / 4), static_cast<int>((u0 % 4 + H + 3) / 4), u);
          const RowJob R{other + ((i + L - 1) % L) * H, other + ((i + 1) % L) * H, other + i * H,
                         P + c * L * H + i * H, H, ((i + c) & 1) == 0, u + u0 % 4, table, ext};
          row_flips[task] += update(R);
        }
      }
      if (energy != nullptr || magnet != nullptr) {
#pragma omp for schedule(static)
        for (int64_t task = 0; task < tasks; ++task)
          row_sums(packed.data() + (task / L) * N, L, task % L, row_bonds[task], row_mag[task]);
#pragma omp single
        for (int64_t ch = 0; ch < chains; ++ch) {
          int64_t b = 0, m = 0;
          for (int64_t i = 0; i < L; ++i) { b += row_bonds[ch * L + i]; m += row_mag[ch * L + i]; }
          if (energy != nullptr) energy[t * chains + ch] = (-J * static_cast<double>(b) - h * static_cast<double>(m)) / N;
          if (magnet != nullptr) magnet[t * chains + ch] = static_cast<double>(m) / N;
        }
      }
    }
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t ch = task / L, i = task % L;
      int8_t* dst = S + ch * N + i * L;
      const int8_t* P = packed.data() + ch * N;
      for (int c = 0; c < 2; ++c) {
        const int64_t p = (i + c) & 1;
        const int8_t* src = P + c * L * H + i * H;
        for (int64_t k = 0; k < H; ++k) dst[2 * k + p] = src[k];
      }
    }
  }
  for (int64_t ch = 0; ch < chains; ++ch) {
    int64_t f = 0;
    for (int64_t i = 0; i < L; ++i) f += row_flips[ch * L + i];
    flips[ch] = f;
  }
}

}  // namespace ebm::cpu
