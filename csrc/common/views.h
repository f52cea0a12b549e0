// Plain structs of raw pointers and sizes handed from bindings.cpp to the kernels.
// No framework types here: the same views serve the CPU and the CUDA kernels.
// All matrices are row-major float32; shapes in the comments, (w) = written.
#pragma once
#include <cstdint>

namespace ebm {

// Where a kernel draws its uniforms: (seed, stream, chain = chain_offset + row, step, unit).
struct RngView {
  uint64_t seed = 0;
  uint32_t step = 0;          // advanced by the caller (one per Gibbs step)
  uint32_t chain_offset = 0;  // chain index of row 0
};

// One RBM layer seen from its input side: out = act(beta * X . M + bias).
// For v -> h, M = W [n_v, n_h]; for h -> v, M = W^T [n_h, n_v] (the cached transpose),
// so both directions read M row by row (row i = the weights leaving input unit i).
struct LayerView {
  const float* M = nullptr;     // [n_in, n_out]
  const float* bias = nullptr;  // [n_out]
  int64_t n_in = 0;
  int64_t n_out = 0;
  const float* table = nullptr;  // prebuilt build_layer_tables(M) (subset + signed), or null
};

// A batch of layer states.
struct BatchView {
  const float* X = nullptr;  // [rows, n_in]
  int64_t rows = 0;
  bool binary = false;       // every entry is exactly 0 or 1: the gather kernel applies
};

// The parameters of a Bernoulli-Bernoulli RBM, with the transpose kept beside W.
struct RbmView {
  float* W = nullptr;    // [n_v, n_h] (w on update)
  float* WT = nullptr;   // [n_h, n_v] (w on update), always equal to W^T
  float* b = nullptr;    // [n_v] visible bias (w on update)
  float* c = nullptr;    // [n_h] hidden bias (w on update)
  int64_t n_visible = 0;
  int64_t n_hidden = 0;

  LayerView to_hidden() const { return LayerView{W, c, n_visible, n_hidden, nullptr}; }
  LayerView to_visible() const { return LayerView{WT, b, n_hidden, n_visible, nullptr}; }
};

// Momentum buffers of the RBM parameters (same shapes as W, b, c).
struct VelocityView {
  float* W = nullptr;  // [n_v, n_h] (w)
  float* b = nullptr;  // [n_v] (w)
  float* c = nullptr;  // [n_h] (w)
};

struct TrainHyper {
  float learning_rate = 0.05f;
  float momentum = 0.0f;
  float weight_decay = 0.0f;
};

// A coupling graph of +-1 spins in dimod's sign: E(s) = sum_i h_i s_i + sum_{i<j} J_ij s_i s_j.
// The local field g_i = h_i + sum_j J_ij s_j gives the cost of a flip: dE = -2 s_i g_i.
// J is held symmetric (J_ij = J_ji, zero diagonal), dense or as CSR.
struct IsingView {
  int64_t n = 0;
  const float* h = nullptr;          // [n]
  const float* J = nullptr;          // [n, n] dense, or null for CSR
  const int64_t* indptr = nullptr;   // [n + 1] CSR rows (both triangles, no diagonal)
  const int32_t* indices = nullptr;  // [nnz]
  const float* data = nullptr;       // [nnz]
};

// What one call of the spin-chain kernel does: sweep t uses beta = betas[t] and Philox
// step = rng.step + t.
struct SweepPlan {
  const float* betas = nullptr;       // [n_sweeps]
  int64_t n_sweeps = 0;
  bool gibbs = false;                 // heat-bath acceptance, else Metropolis
  bool random_order = false;          // n sites drawn with replacement per sweep, else 0..n-1
  const uint8_t* clamped = nullptr;   // [n] 1 = the spin never moves, or null
  // The caller proved float32 field arithmetic exact (h, J multiples of one power of two,
  // every |h_i| + sum_j |J_ij| within 2^24 of it): incremental fields never drift, so the
  // periodic refresh is skipped (it would recompute the same bits).
  bool exact_fields = false;
};

}  // namespace ebm
