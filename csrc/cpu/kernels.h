// Declarations of the CPU (C++/OpenMP) kernels. Callers (bindings.cpp) have validated
// every shape and released the GIL; the kernels trust their views.
#pragma once
#include <algorithm>
#include <cstdint>
#include "common/views.h"

namespace ebm::cpu {

// --- threads (parallel.cpp)
void set_num_threads(int n);  // OpenMP and the BLAS pool together, for every thread
int get_num_threads();
void sync_num_threads();      // apply the count of set_num_threads to the calling thread
const char* blas_name();
// C [m, n] = alpha * op(A) . B with op(A) [m, k] (A itself [k, m] when trans_a), one
// single-threaded sgemm on the calling thread; k == 0 gives zeros. With accumulate, C +=
// alpha * op(A) . B instead.
void gemm_block(bool trans_a, int64_t m, int64_t n, int64_t k, float alpha, const float* A,
                int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc,
                bool accumulate = false);
// The same with the rows of C cut into fixed blocks shared out over the OpenMP team.
void gemm_rows_parallel(bool trans_a, int64_t m, int64_t n, int64_t k, float alpha,
                        const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                        int64_t ldc);

// --- one layer (rbm_layer.cpp)
// z = beta * X.M + bias per output unit; writes any of field = z, prob = sigmoid(z),
// sample = 1[u < prob] with u from (rng.seed, stream, rng.chain_offset + row, rng.step,
// unit). Null outputs are skipped. Binary X takes the gather kernel (sum of the rows of
// M selected by the ones of X), otherwise one BLAS sgemm; the epilogue is fused either way.
struct LayerOutputs {
  float* field = nullptr;   // [rows, n_out] (w)
  float* prob = nullptr;    // [rows, n_out] (w)
  float* sample = nullptr;  // [rows, n_out] (w)
};
void layer_forward(const BatchView& X, const LayerView& L, float beta, const LayerOutputs& out,
                   uint32_t stream, const RngView& rng);
// The shared "update layer l from its neighbours" (RBM directions, DBN passes, DBM Gibbs
// and mean field): z = beta * (X.L.M + X2.L2->M) + L.bias, outputs as layer_forward.
// X2/L2 null is the one-neighbour case (= layer_forward). Binary when both inputs are
// (each picks gather or table on its own, its own prebuilt table if given), else one
// sgemm per input; the first input's sum comes first, so results are thread-independent.
void layer_update(const BatchView& X, const LayerView& L, const BatchView* X2,
                  const LayerView* L2, float beta, const LayerOutputs& out, uint32_t stream,
                  const RngView& rng);

// Subset-sum table of M [n_in, n_out] for the binary kernels: T [subset_table_rows(n_in),
// n_out], row 16 g + s = sum of rows 4g + b of M over the bits b of s.
inline int64_t subset_table_rows(int64_t n_in) { return 16 * ((n_in + 3) / 4); }
void build_subset_table(const float* M, int64_t n_in, int64_t n_out, float* T);
// Signed table of M for dense binary inputs (x.M = C + sum over every group of four units of
// +- one row, x = (1 + s) / 2): [signed_table_rows(n_in, n_out), n_out], row 8 g + c =
// 1/2 sum_b (bit b of c ? +1 : -1) M[4g + b] for c < 8, then row 8 ceil(n_in / 4) = C =
// 1/2 sum_i M[i], then zero rows: at least 15 floats, so whole 16-float vectors read past a
// tile's width (in the last rows, or in C) stay inside the table.
inline int64_t signed_table_rows(int64_t n_in, int64_t n_out) {
  return 8 * ((n_in + 3) / 4) + 1 + std::max<int64_t>(1, (15 + n_out - 1) / std::max<int64_t>(n_out, 1));
}
void build_signed_table(const float* M, int64_t n_in, int64_t n_out, float* T);
// The prebuilt tables of a layer (LayerView::table): the subset table, then the signed table.
inline int64_t layer_tables_floats(int64_t n_in, int64_t n_out) {
  return (subset_table_rows(n_in) + signed_table_rows(n_in, n_out)) * n_out;
}
void build_layer_tables(const float* M, int64_t n_in, int64_t n_out, float* T);

// k block-Gibbs steps v -> h -> v from binary chains V_in [rows, n_v] into V_out (which
// may be V_in); H [rows, n_h] receives the last hidden sample. Step t uses rng.step + t
// for both streams.
void gibbs_chains(const LayerView& to_hidden, const LayerView& to_visible, float beta,
                  const float* V_in, float* V_out, float* H, int64_t rows, int k,
                  const RngView& rng);

// --- training (rbm_train.cpp)
struct CdBatch {
  const float* V0 = nullptr;  // [n_data, n_v] data batch, values in [0, 1]
  int64_t n_data = 0;
  bool v0_binary = false;
  float* chain = nullptr;     // [n_chain, n_v] (w) PCD persistent chains, or null for CD
  int64_t n_chain = 0;
  int k = 1;
};
struct GradView {
  float* W = nullptr;  // [n_v, n_h] (w)
  float* b = nullptr;  // [n_v] (w)
  float* c = nullptr;  // [n_h] (w)
};
struct CdResult {
  double recon;  // mean-field reconstruction error (mean over the batch of the squared
                 // error summed over units) when asked for, else NaN
  bool finite;   // every updated parameter is finite
  float max_abs_param = 0.0f;     // largest |W|, |b|, |c| written (update path)
  float max_abs_velocity = 0.0f;  // largest |velocity| written (update path)
};
// One CD-k (chain == null) or PCD-k update. With grad != null the gradient
// <v h>_data - <v h>_model is written there and nothing else changes; otherwise the
// momentum/weight-decay update of (P, vel) is written to (P_out, vel_out) - which may
// alias them, or be a second buffer so that a non-finite result can be dropped - in one
// pass over W that also writes WT. Consumes steps rng.step .. +k-1; PCD chains advance
// in place.
CdResult cd_update(const RbmView& P, const VelocityView& vel, const TrainHyper& hyper,
                   const CdBatch& batch, const RngView& rng, const GradView* grad,
                   const RbmView* P_out, const VelocityView* vel_out, bool want_recon);

// --- input checks (inspect.cpp)
struct ValueSummary {
  bool finite = true;   // no NaN or inf
  bool binary = true;   // every value exactly 0 or 1
  float min = 0.0f, max = 0.0f;  // over finite values (n > 0)
};
ValueSummary summarize(const float* x, int64_t n);

// Blocked transpose: WT [n_h, n_v] = W^T.
void transpose(const float* W, float* WT, int64_t n_v, int64_t n_h);

// --- scores (rbm_score.cpp)
// F(v) = -b.v - sum_j softplus(c_j + (vW)_j), float64 out [rows].
void free_energy(const RbmView& P, const BatchView& V, double* out);
// log sum over s in {0,1}^n of exp(lin.s + sum_j softplus(other_j + (s.M)_j)), M [n, m]:
// log Z of an RBM enumerated over one layer (s), the other summed out. States are walked
// in Gray-code order (one row of M added per state, the field rebuilt every 64 states),
// float32 fields and softplus, float64 scores and log-sum-exp; fixed blocks, so the result
// does not depend on the thread count.
double enumerate_log_partition(const float* M, const double* lin, const float* other, int n,
                               int64_t m);
// Full pseudo-log-likelihood sum_i log p(v_i | v_-i) per row, binary V, float64 out [rows].
void pseudo_log_likelihood(const RbmView& P, const BatchView& V, double* out);

// --- spin chains (ising_chains.cpp)
// Sweeps of single-site Metropolis or heat-bath updates on `chains` independent chains
// S [chains, n] (+-1, in place). Sequential order: site i of sweep t draws unit i of
// kStreamAccept at (chain, step + t). Random order: position k draws its site from unit k
// of kStreamProposal (floor(u n)) and its acceptance from unit k of kStreamAccept.
// flips [chains] (w): spins changed. energy_trace [n_sweeps, chains] (w, or null): the
// energy after each sweep (from the float32 fields). fields [chains, n] (rw, or null): the
// local fields h + J s, read at the start when fields_given (else computed) and written at
// the end, so that a run cut into calls equals one call (the fields are recomputed from
// scratch every 32 steps, on the absolute step).
void ising_chains(const IsingView& P, const SweepPlan& plan, int8_t* S, int64_t chains,
                  const RngView& rng, int64_t* flips, double* energy_trace, float* fields,
                  bool fields_given);

// Exact float64 energies h.s + sum_{i<j} J_ij s_i s_j of the chains S [chains, n] with
// float64 couplings in CSR (both triangles) or dense symmetric J [n, n] (only its upper
// triangle is read); out [chains] (w). (ising_energies.cpp)
void ising_energies_csr(int64_t n, const double* h, const int64_t* indptr, const int32_t* indices,
                        const double* data, const int8_t* S, int64_t chains, double* out);
void ising_energies_dense(int64_t n, const double* h, const double* J, const int8_t* S,
                          int64_t chains, double* out);

// Symmetric CSR of the m pair couplings (i[k], j[k], v[k]) (0 <= i, j < n, i != j): both
// triangles, columns ascending per row, duplicate pairs summed, zero sums dropped.
// indptr [n + 1], indices and data [2 m] (w); returns nnz. (sparse_couplings.cpp)
int64_t csr_from_pairs(int64_t n, int64_t m, const int64_t* i, const int64_t* j, const double* v,
                       int64_t* indptr, int32_t* indices, double* data);

// out [chains, n] (w): spin i of chain c is +1 iff its uniform of the stream (seed, stream,
// chain_offset + c, step, unit i) is below 1/2, else -1.
void random_spins(uint64_t seed, uint32_t stream, uint32_t step, uint32_t chain_offset,
                  int64_t chains, int64_t n, int8_t* out);

// --- Boltzmann-machine training (bm_train.cpp)
// A {0,1} BM of n units (visible, label, hidden; the first n_observed are the data's) with
// E(y) = -1/2 y^T W y - b^T y, sampled in its Ising form J = -W/4, h = -b/2 - sum_j W_ij/4
// (W symmetric).
struct BmModel {
  int64_t n = 0;
  const double* W = nullptr;   // [n, n]
  const double* b = nullptr;   // [n]
  const double* vW = nullptr;  // [n, n] velocity (update only)
  const double* vb = nullptr;  // [n]
};
struct BmBatch {
  int64_t n_observed = 0;
  const uint8_t* data = nullptr;   // [*, n_observed] {0,1} observed units of the data set
  const int64_t* rows = nullptr;   // [n_rows] the batch: row indices into data
  int64_t n_rows = 0;
  const double* chains = nullptr;  // [n_chains, n] {0,1} persistent chains (read), or null:
                                   // the free phase restarts at the batch (n_rows chains)
  double* chains_out = nullptr;    // [n_chains, n] (w, or null) the chains after the free phase
  int64_t n_chains = 0;
  int8_t* clamped_out = nullptr;   // [n_rows, n] (w, or null) clamped-phase states, +-1
  int8_t* free_out = nullptr;      // [free chains, n] (w, or null) free-phase states, +-1
};
// Philox use, that of bm.py's composition of ising_chains calls: clamped row r starts its
// hidden units from unit i of kStreamInit at (chain r, clamped_step) (u < 0.5: on) and
// sweeps t = 0..clamped_sweeps-1 at (chain r, clamped_step + t); restarted free chain r
// starts from kStreamInit at (restart_chain_offset + r, free_step); free chain c sweeps at
// (chain c, free_step + t). Sequential heat-bath sweeps, unit i = site i of kStreamAccept.
struct BmSchedule {
  uint64_t seed = 0;
  uint32_t clamped_step = 0;
  int clamped_sweeps = 0;
  uint32_t free_step = 0;
  int free_sweeps = 0;
  uint32_t restart_chain_offset = 0;
};
struct BmHyper {
  double learning_rate = 0.0, momentum = 0.0, weight_decay = 0.0;
  bool symmetric = false;  // W and vW are symmetric (then so are the new ones): the update
                           // reads rows only
};
struct BmOut {
  double* W = nullptr;   // [n, n] (w) the new W, or the gradient dW without hyper
  double* b = nullptr;   // [n] (w) the new b, or db
  double* vW = nullptr;  // [n, n] (w) update only
  double* vb = nullptr;  // [n] (w)
};
// One update: both phases, the gradient dW = <y y^T>_clamped - <y y^T>_free (zero
// diagonal), db = <y>_clamped - <y>_free, and with hyper the update velocity = momentum *
// velocity + lr * (grad - weight_decay * W) (no decay on b), W += velocity, W = (W + W^T)/2
// with a zero diagonal. Outputs must not alias inputs. Returns false (outputs then
// meaningless) when the new parameters are not finite or |W| n or |b| reach 1e37 (the
// float32 Ising form would overflow); without hyper, true.
bool bm_step(const BmModel& M, const BmBatch& batch, const BmSchedule& sch, const BmHyper* hyper,
             const BmOut& out);

// --- Hopfield recall (hopfield_recall.cpp)
// Deterministic asynchronous recall of the cues S [cues, n] (+-1 int8, in place) under
// z = J s + h with P.J dense symmetric (zero diagonal): y_i <- sign(z_i), unchanged where
// z_i = 0. Sequential order visits 0..n-1; random order makes n visits per sweep, visit k
// of sweep t going to site floor(u n) with u = unit k of kStreamProposal at (chain_offset +
// cue, rng.step + t). Before each sweep, cues at a fixed point stop: sweeps [cues] (w) =
// sweeps run before the fixed point (max_sweeps if none), converged [cues] (w) 1 or 0.
// The first fields come from spin_fields (spin_table.h) with `table` (built from P.J by
// build_spin_table; null: built here when the call has enough cues to repay it, else one
// sgemm per tile).
void hopfield_recall(const IsingView& P, int8_t* S, int64_t cues, int64_t max_sweeps,
                     bool random_order, const RngView& rng, int32_t* sweeps, uint8_t* converged,
                     const float* table = nullptr);

// --- 2-D lattice (ising_lattice.cpp)
// Checkerboard sweeps of S [chains, L, L] (+-1 int8, in place, L even) for E = -J sum_<ij>
// s_i s_j - h sum s_i. Half-sweep c (colour (i + j) % 2 == c) of sweep t uses step
// rng.step + 2t + c, and site (i, j) of it unit i*(L/2) + j/2 of kStreamAccept. flips
// [chains] (w); energy and magnet [n_sweeps, chains] per spin after each sweep (w, or null).
void lattice_sweeps(int8_t* S, int64_t chains, int64_t L, float J, float h, const float* betas,
                    int64_t n_sweeps, bool gibbs, const RngView& rng, int64_t* flips,
                    double* energy, double* magnet);

}  // namespace ebm::cpu
