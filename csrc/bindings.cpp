// The only file that knows pybind11: checks every array (dtype, contiguity, shape),
// builds the plain views of common/views.h, releases the GIL and calls the CPU kernels
// (the CUDA backend is reached the same way once it exists). Friendly, argument-naming
// errors come from the Python layer; the checks here keep a direct call of _core from
// ever reaching a kernel with a wrong buffer.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <vector>
#include <limits>
#include <string>
#include <memory>

#include "common/philox.h"
#include "common/views.h"
#include "cpu/kernels.h"
#include "cpu/spin_table.h"
#include "cpu/philox_run.h"
#include "common/mcmc_views.h"
#include "cpu/mcmc_chains.h"
#include "cuda/cuda_api.h"

// `py` is pybind11 with one change: py::gil_scoped_release, which every kernel call in
// this file goes through, also applies the thread count of set_num_threads to the
// calling thread (OpenMP keeps that count per thread; see cpu/parallel.cpp).
namespace py {
using namespace pybind11;  // NOLINT: this namespace stands for pybind11
struct gil_scoped_release : pybind11::gil_scoped_release {
  gil_scoped_release() { ebm::cpu::sync_num_threads(); }
};
}  // namespace py
using F32 = py::array_t<float, py::array::c_style>;
using F64 = py::array_t<double, py::array::c_style>;
using I8 = py::array_t<int8_t, py::array::c_style>;
using I32 = py::array_t<int32_t, py::array::c_style>;
using I64 = py::array_t<int64_t, py::array::c_style>;
using U8 = py::array_t<uint8_t, py::array::c_style>;

namespace {

// The const char* form keeps a literal message from becoming a std::string (a malloc and
// a free) on every call: the per-element checks of CSR indices ran it 40,000 times per
// call on the sparse benchmark, ~1 ms.
void require(bool ok, const char* msg) {
  if (!ok) throw py::value_error(msg);
}
// A message built from pieces only when the check fails: check_2d and friends assembled
// theirs (several allocations) on every call.
#define EBM_REQUIRE(ok, msg)                  \
  do {                                        \
    if (!(ok)) throw py::value_error(msg);    \
  } while (0)

void check_2d(const F32& a, const char* name, int64_t rows, int64_t cols) {
  EBM_REQUIRE(a.ndim() == 2, std::string(name) + " must be 2-D");
  EBM_REQUIRE((rows < 0 || a.shape(0) == rows) && (cols < 0 || a.shape(1) == cols),
          std::string(name) + " has shape (" + std::to_string(a.shape(0)) + ", " +
              std::to_string(a.shape(1)) + "), expected (" +
              (rows < 0 ? std::string("*") : std::to_string(rows)) + ", " +
              (cols < 0 ? std::string("*") : std::to_string(cols)) + ")");
}

void check_1d(const F32& a, const char* name, int64_t n) {
  EBM_REQUIRE(a.ndim() == 1 && a.shape(0) == n,
          std::string(name) + " must have shape (" + std::to_string(n) + ",)");
}

uint32_t check_u32(int64_t v, const char* name) {
  EBM_REQUIRE(v >= 0 && v <= static_cast<int64_t>(std::numeric_limits<uint32_t>::max()),
          std::string(name) + " must be in [0, 2**32)");
  return static_cast<uint32_t>(v);
}

// W [n_v, n_h], WT [n_h, n_v], b [n_v], c [n_h]; written only by the update kernels.
ebm::RbmView rbm_view(F32& W, F32& WT, F32& b, F32& c, bool writable) {
  check_2d(W, "W", -1, -1);
  const int64_t n_v = W.shape(0), n_h = W.shape(1);
  check_2d(WT, "WT", n_h, n_v);
  check_1d(b, "b", n_v);
  check_1d(c, "c", n_h);
  ebm::RbmView P;
  if (writable) {
    P.W = W.mutable_data(); P.WT = WT.mutable_data();
    P.b = b.mutable_data(); P.c = c.mutable_data();
  } else {
    P.W = const_cast<float*>(W.data()); P.WT = const_cast<float*>(WT.data());
    P.b = const_cast<float*>(b.data()); P.c = const_cast<float*>(c.data());
  }
  P.n_visible = n_v;
  P.n_hidden = n_h;
  return P;
}

// rows: chains chain_offset .. chain_offset + rows - 1 must all be distinct 32-bit indices.
#if defined(EBMFAST_WITH_CUDA)
ebm::cuda::Precision cuda_precision(int p) {
  require(p == 0 || p == 1, "precision must be 0 (fp32) or 1 (tf32)");
  return p == 1 ? ebm::cuda::Precision::kTf32 : ebm::cuda::Precision::kFp32;
}

template <class T>
T* dptr(uintptr_t p) {
  return reinterpret_cast<T*>(p);
}
#endif

ebm::RngView rng_view(uint64_t seed, int64_t step, int64_t chain_offset, int64_t rows) {
  check_u32(chain_offset + std::max<int64_t>(rows, 1) - 1, "chain_offset + rows - 1");
  ebm::RngView r;
  r.seed = seed;
  r.step = check_u32(step, "step");
  r.chain_offset = check_u32(chain_offset, "chain_offset");
  return r;
}

// The rows (chains) x units of one Philox stream that philox_uniforms / random_spins draw.
ebm::RngView stream_rows(uint64_t seed, int64_t stream, int64_t step, int64_t n_chains,
                         int64_t n_units, int64_t chain_offset) {
  require(n_chains >= 0 && n_units >= 0, "n_chains and n_units must be >= 0");
  const ebm::RngView r = rng_view(seed, step, chain_offset, n_chains);
  check_u32(stream, "stream");
  check_u32(n_units + 3, "n_units");
  return r;
}

F32 new_f32(int64_t rows, int64_t cols) { return F32({rows, cols}); }

// Rows of subset_table(M) for an M of shape (n_in, n_out): the subset table, then the
// signed table.
int64_t layer_tables_rows(int64_t n_in, int64_t n_out) {
  return ebm::cpu::subset_table_rows(n_in) + ebm::cpu::signed_table_rows(n_in, n_out);
}

}  // namespace

// One Boltzmann-machine update (bm_step), or with batch_size > 0 a sequence of them
// (bm_steps). Returns (updates accepted, the output set holding the last accepted state:
// 0 = the *_out arrays, 1 = spare, -1 = none).
std::pair<int64_t, int> bm_call(F64 W, F64 b, F64 vW, F64 vb, U8 data, I64 rows,
                                std::optional<F64> chains, uint64_t seed, int64_t clamped_step,
                                int clamped_sweeps, int64_t free_step, int free_sweeps,
                                int64_t restart_chain_offset, std::optional<py::tuple> hyper,
                                F64 W_out, F64 b_out, std::optional<F64> vW_out,
                                std::optional<F64> vb_out, std::optional<F64> chains_out,
                                std::optional<I8> clamped_out, std::optional<I8> free_out,
                                int64_t batch_size, std::optional<py::tuple> spare) {
  require(W.ndim() == 2 && W.shape(0) == W.shape(1) && W.shape(0) >= 1,
      "W must be a square (n, n) array with n >= 1");
  const int64_t n = W.shape(0);
  auto vec = [&](const F64& a, const char* name) {
    EBM_REQUIRE(a.ndim() == 1 && a.shape(0) == n, std::string(name) + " must have shape (n,)");
  };
  auto mat = [&](const F64& a, const char* name, int64_t r) {
    EBM_REQUIRE(a.ndim() == 2 && a.shape(0) == r && a.shape(1) == n,
        std::string(name) + " must have shape (" + std::to_string(r) + ", n)");
  };
  vec(b, "b");
  require(data.ndim() == 2 && data.shape(1) >= 1 && data.shape(1) <= n,
      "data must have shape (rows, n_observed) with 1 <= n_observed <= n");
  const int64_t n_obs = data.shape(1);
  require(rows.ndim() == 1 && rows.shape(0) >= 1, "rows must be a non-empty 1-D array");
  const int64_t n_rows = rows.shape(0);
  for (int64_t r = 0; r < n_rows; ++r)
    require(rows.data()[r] >= 0 && rows.data()[r] < data.shape(0), "rows must index data");
  require(clamped_sweeps >= 0 && free_sweeps >= 1, "clamped_sweeps >= 0 and free_sweeps >= 1");
  require(clamped_sweeps == 0 || n_obs < n, "clamped sweeps need hidden units");
  ebm::cpu::BmSchedule sch;
  sch.seed = seed;
  sch.clamped_step = check_u32(clamped_step, "clamped_step");
  check_u32(clamped_step + clamped_sweeps, "clamped_step + clamped_sweeps");
  sch.clamped_sweeps = clamped_sweeps;
  sch.free_step = check_u32(free_step, "free_step");
  check_u32(free_step + free_sweeps, "free_step + free_sweeps");
  sch.free_sweeps = free_sweeps;
  sch.restart_chain_offset = check_u32(restart_chain_offset, "restart_chain_offset");
  const int64_t n_chains = chains ? chains->shape(0) : 0;
  const int64_t n_free = chains ? n_chains : n_rows;
  check_u32(std::max(n_rows, n_free) - 1, "chains - 1");
  if (!chains) check_u32(restart_chain_offset + n_rows - 1, "restart_chain_offset + rows - 1");
  ebm::cpu::BmModel M;
  M.n = n;
  M.W = W.data();
  M.b = b.data();
  ebm::cpu::BmBatch batch;
  batch.n_observed = n_obs;
  batch.data = data.data();
  batch.rows = rows.data();
  batch.n_rows = n_rows;
  auto writable = [](auto& a, const char* name) {
    EBM_REQUIRE(a.writeable(), std::string(name) + " must be writeable");
    return a.mutable_data();
  };
  if (chains) {
    require(chains->ndim() == 2 && chains->shape(0) >= 1, "chains must have shape (n_chains, n)");
    mat(*chains, "chains", n_chains);
    batch.chains = chains->data();
    batch.n_chains = n_chains;
    if (chains_out) {
      mat(*chains_out, "chains_out", n_chains);
      batch.chains_out = writable(*chains_out, "chains_out");
    }
  }
  if (clamped_out) {
    require(clamped_out->ndim() == 2 && clamped_out->shape(0) == n_rows && clamped_out->shape(1) == n,
        "clamped_out must have shape (rows, n)");
    batch.clamped_out = writable(*clamped_out, "clamped_out");
  }
  if (free_out) {
    require(free_out->ndim() == 2 && free_out->shape(0) == n_free && free_out->shape(1) == n,
        "free_out must have shape (free chains, n)");
    batch.free_out = writable(*free_out, "free_out");
  }
  mat(W_out, "W_out", n);
  vec(b_out, "b_out");
  ebm::cpu::BmOut out;
  out.W = writable(W_out, "W_out");
  out.b = writable(b_out, "b_out");
  ebm::cpu::BmHyper hp;
  if (hyper) {
    require(hyper->size() == 4, "hyper must be (learning_rate, momentum, weight_decay, symmetric)");
    hp.learning_rate = (*hyper)[0].cast<double>();
    hp.momentum = (*hyper)[1].cast<double>();
    hp.weight_decay = (*hyper)[2].cast<double>();
    hp.symmetric = (*hyper)[3].cast<bool>();
    // symmetric is a promise that W = W^T and vW = vW^T (bm.py checks both once per
    // fit; updates keep them so)
    mat(vW, "vW", n);
    vec(vb, "vb");
    M.vW = vW.data();
    M.vb = vb.data();
    require(vW_out && vb_out, "the update needs vW_out and vb_out");
    mat(*vW_out, "vW_out", n);
    vec(*vb_out, "vb_out");
    out.vW = writable(*vW_out, "vW_out");
    out.vb = writable(*vb_out, "vb_out");
  }
  // Outputs never alias inputs (a rejected update must leave the inputs as they were).
  const void* ins[] = {W.data(), b.data(), vW.data(), vb.data(), chains ? chains->data() : nullptr};
  const void* outs[] = {out.W, out.b, out.vW, out.vb, batch.chains_out};
  for (const void* o : outs)
      for (const void* i : ins) require(o == nullptr || o != i, "outputs must not share memory with inputs");
  if (batch_size <= 0) {
    bool ok;
    {
      py::gil_scoped_release nogil;
      ok = ebm::cpu::bm_step(M, batch, sch, hyper ? &hp : nullptr, out);
    }
    return std::pair<int64_t, int>(ok ? 1 : 0, ok ? 0 : -1);
  }
  // Several mini-batches of `batch_size` consecutive entries of rows, each one update
  // reading the state the previous one wrote: set 0 = the *_out arrays, set 1 =
  // spare, used in turn (batch k writes set k % 2), so the inputs are never written
  // and a rejected update still leaves the last accepted state in the other set.
  require(hyper.has_value() && spare.has_value() && spare->size() == 5,
      "several batches need hyper and spare = (W, b, vW, vb, chains or None)");
  require(!clamped_out && !free_out, "clamped_out / free_out take one batch");
  // exactly float64 C arrays: a cast would convert into a copy, and the writes would be lost
  auto spare_array = [&](int k) {
    require(py::isinstance<F64>((*spare)[k]), "spare arrays must be C-contiguous float64");
    return (*spare)[k].cast<F64>();
  };
  F64 sW = spare_array(0), sb = spare_array(1), svW = spare_array(2), svb = spare_array(3);
  mat(sW, "spare W", n);
  vec(sb, "spare b");
  mat(svW, "spare vW", n);
  vec(svb, "spare vb");
  ebm::cpu::BmOut out2;
  out2.W = writable(sW, "spare W");
  out2.b = writable(sb, "spare b");
  out2.vW = writable(svW, "spare vW");
  out2.vb = writable(svb, "spare vb");
  double* chains2 = nullptr;
  std::optional<F64> sch2;
  if (chains) {
    require(!(*spare)[4].is_none() && batch.chains_out != nullptr,
        "persistent chains need chains_out and a spare chains array");
    sch2 = spare_array(4);
    mat(*sch2, "spare chains", n_chains);
    chains2 = writable(*sch2, "spare chains");
  }
  const void* outs2[] = {out2.W, out2.b, out2.vW, out2.vb, chains2};
  for (const void* o : outs2)
      for (const void* i : ins) require(o == nullptr || o != i, "outputs must not share memory with inputs");
  for (const void* o : outs2)
      for (const void* p : outs) require(o == nullptr || o != p, "spare must not share memory with the outputs");
  const int64_t n_batches = (n_rows + batch_size - 1) / batch_size;
  const int64_t per_batch = static_cast<int64_t>(clamped_sweeps) + free_sweeps;
  require(free_step == clamped_step + clamped_sweeps, "free_step must be clamped_step + clamped_sweeps");
  check_u32(clamped_step + n_batches * per_batch, "the step after the last batch");
  if (!chains) check_u32(restart_chain_offset + batch_size - 1, "restart_chain_offset + batch_size - 1");
  const ebm::cpu::BmOut sets[2] = {out, out2};
  double* chain_sets[2] = {batch.chains_out, chains2};
  int64_t done = 0;
  {
    py::gil_scoped_release nogil;
    ebm::cpu::BmModel Mk = M;
    ebm::cpu::BmBatch bk = batch;
    ebm::cpu::BmSchedule sk = sch;
    for (; done < n_batches; ++done) {
      const int64_t r0 = done * batch_size;
      bk.rows = batch.rows + r0;
      bk.n_rows = std::min(batch_size, n_rows - r0);
      sk.clamped_step = static_cast<uint32_t>(clamped_step + done * per_batch);
      sk.free_step = sk.clamped_step + static_cast<uint32_t>(clamped_sweeps);
      bk.chains_out = chain_sets[done % 2];
      if (!ebm::cpu::bm_step(Mk, bk, sk, &hp, sets[done % 2])) break;
      const ebm::cpu::BmOut& w = sets[done % 2];  // the next batch reads this one's state
      Mk.W = w.W;
      Mk.b = w.b;
      Mk.vW = w.vW;
      Mk.vb = w.vb;
      if (chains) bk.chains = chain_sets[done % 2];
    }
  }
  return std::pair<int64_t, int>(done, done == 0 ? -1 : static_cast<int>((done - 1) % 2));
}

PYBIND11_MODULE(_core, m) {
  m.doc() = "ebmfast compiled kernels (CPU: C++/OpenMP + BLAS; CUDA when built with it)";

  // ---------------------------------------------------------------- build facts
  m.attr("__version__") = EBMFAST_VERSION;
#ifdef EBMFAST_WITH_CUDA
  m.attr("cuda_compiled") = true;
  m.attr("cuda_archs") = EBMFAST_CUDA_ARCHS;
  m.def("cuda_device_count", &ebm::cuda::device_count);
  m.def("cuda_device_name", &ebm::cuda::device_name, py::arg("index") = 0);
  m.def("cuda_runtime_version", &ebm::cuda::runtime_version);
  m.def("cuda_compute_capability", &ebm::cuda::current_compute_capability,
        "10 * major + minor of the current device (0 when unknown).");
  // Spin chains / lattice on device buffers (pointers as integers, from CuPy; the Python
  // layer has checked shapes, dtypes and devices).
  m.def("cuda_ising_chains",
        [](uintptr_t h, uintptr_t J, uintptr_t indptr, uintptr_t indices, uintptr_t data, int64_t n,
           uintptr_t betas, int64_t n_sweeps, bool gibbs, bool random_order, uintptr_t clamped,
           uintptr_t St, uintptr_t F, int64_t chains, uint64_t seed, int64_t step,
           int64_t chain_offset, uintptr_t flips, uintptr_t trace, uintptr_t stream) {
          require(n >= 1 && chains >= 0 && n_sweeps >= 0, "bad sizes");
          const ebm::RngView r = rng_view(seed, step, chain_offset, chains);
          check_u32(step + n_sweeps, "step + n_sweeps");
          ebm::IsingView P;
          P.n = n;
          P.h = reinterpret_cast<const float*>(h);
          P.J = reinterpret_cast<const float*>(J);
          P.indptr = reinterpret_cast<const int64_t*>(indptr);
          P.indices = reinterpret_cast<const int32_t*>(indices);
          P.data = reinterpret_cast<const float*>(data);
          require(P.J != nullptr || (P.indptr && P.indices && P.data), "give J or a CSR");
          ebm::SweepPlan plan;
          plan.betas = reinterpret_cast<const float*>(betas);
          plan.n_sweeps = n_sweeps;
          plan.gibbs = gibbs;
          plan.random_order = random_order;
          plan.clamped = reinterpret_cast<const uint8_t*>(clamped);
          py::gil_scoped_release nogil;
          ebm::cuda::ising_chains(P, plan, reinterpret_cast<int8_t*>(St), reinterpret_cast<float*>(F),
                                  chains, r, reinterpret_cast<int64_t*>(flips),
                                  reinterpret_cast<double*>(trace), stream);
        });
  m.def("cuda_hopfield_recall",
        [](uintptr_t W, uintptr_t b, uintptr_t St, uintptr_t F, int64_t n, int64_t cues,
           int max_sweeps, bool random_order, uint64_t seed, int64_t step, uintptr_t sweeps,
           uintptr_t converged, uintptr_t stream) {
          require(n >= 1 && cues >= 0 && max_sweeps >= 0, "bad recall sizes");
          check_u32(step + max_sweeps, "step + max_sweeps");
          check_u32(cues, "cues");
          py::gil_scoped_release nogil;
          ebm::cuda::hopfield_recall(reinterpret_cast<const float*>(W), reinterpret_cast<const float*>(b),
                                     reinterpret_cast<int8_t*>(St), reinterpret_cast<float*>(F), n, cues,
                                     max_sweeps, random_order, seed, static_cast<uint32_t>(step),
                                     reinterpret_cast<int32_t*>(sweeps),
                                     reinterpret_cast<uint8_t*>(converged), stream);
        });
  m.def("cuda_lattice_sweeps",
        [](uintptr_t S, int64_t chains, int64_t L, float J, float h, F32 betas, bool gibbs,
           uint64_t seed, int64_t step, int64_t chain_offset, uintptr_t flips, uintptr_t bonds,
           uintptr_t magnet, uintptr_t stream) {
          require(L >= 2 && L % 2 == 0 && chains >= 0, "bad lattice sizes");
          require(betas.ndim() == 1, "betas must be 1-D");
          const ebm::RngView r = rng_view(seed, step, chain_offset, chains);
          check_u32(step + 2 * betas.shape(0), "step + 2 n_sweeps");
          const float* b = betas.data();
          py::gil_scoped_release nogil;
          ebm::cuda::lattice_sweeps(reinterpret_cast<int8_t*>(S), chains, L, J, h, b, betas.shape(0),
                                    gibbs, r, reinterpret_cast<unsigned long long*>(flips),
                                    reinterpret_cast<long long*>(bonds),
                                    reinterpret_cast<long long*>(magnet), stream);
        });
  // The shared layer update (DBN/DBM/RBM on the GPU); python/ebmfast/_layer_cuda.py checks
  // the CuPy arrays (dtype, contiguity, shapes, device, no output overlapping an input).
  m.def("cuda_layer_update",
        [](uintptr_t X1, uintptr_t M1, int64_t n1, uintptr_t X2, uintptr_t M2, int64_t n2,
           uintptr_t bias, int64_t rows, int64_t n_out, float beta, uintptr_t field,
           uintptr_t prob, uintptr_t sample, int64_t stream_id, uint64_t seed, int64_t step,
           int64_t chain_offset, uintptr_t cuda_stream, bool m1_transposed, bool m2_transposed,
           int precision) {
          require(rows >= 0 && n_out >= 0 && n1 >= 0 && n2 >= 0, "bad layer sizes");
          const bool work = rows > 0 && n_out > 0;
          require(!work || (bias != 0 && (n1 == 0 || (X1 != 0 && M1 != 0))),
                  "X1, M1 and bias must be device pointers");
          require((X2 == 0) == (M2 == 0), "give both X2 and M2, or neither");
          require(X2 != 0 || n2 == 0, "n2 must be 0 without a second neighbour");
          const ebm::RngView r = rng_view(seed, step, chain_offset, rows);
          const uint32_t st = check_u32(stream_id, "stream");
          check_u32(n_out + 3, "n_out");  // the unit index of the last column's Philox block
          const ebm::cuda::LayerInput in1{reinterpret_cast<const float*>(X1),
                                          reinterpret_cast<const float*>(M1), n1, m1_transposed};
          const ebm::cuda::LayerInput in2{reinterpret_cast<const float*>(X2),
                                          reinterpret_cast<const float*>(M2), n2, m2_transposed};
          const ebm::cuda::Precision prec = cuda_precision(precision);
          const ebm::cuda::LayerOutputsCuda out{reinterpret_cast<float*>(field),
                                                reinterpret_cast<float*>(prob),
                                                reinterpret_cast<float*>(sample)};
          py::gil_scoped_release nogil;
          ebm::cuda::layer_update(in1, in2, reinterpret_cast<const float*>(bias), rows, n_out, beta,
                                  out, st, r, cuda_stream, prec);
        },
        py::arg("X1"), py::arg("M1"), py::arg("n1"), py::arg("X2"), py::arg("M2"), py::arg("n2"),
        py::arg("bias"), py::arg("rows"), py::arg("n_out"), py::arg("beta"), py::arg("field"),
        py::arg("prob"), py::arg("sample"), py::arg("stream_id"), py::arg("seed"), py::arg("step"),
        py::arg("chain_offset"), py::arg("cuda_stream"), py::arg("m1_transposed") = false,
        py::arg("m2_transposed") = false, py::arg("precision") = 0,
        "z = beta * (X1.M1 + X2.M2) + bias -> field / sigmoid / Bernoulli samples on device "
        "buffers (pointers as integers, 0 = absent); X2 = M2 = 0 with n2 = 0 for one neighbour.");
  m.def("cuda_set_tile_policy",
        [](int policy) {
          require(policy >= 0 && policy <= 2, "policy must be 0 (by size), 1 (64x64) or 2 (128x128)");
          ebm::cuda::set_gemm_tile_policy(policy);
        },
        py::arg("policy"), "Test hook: which GEMM tile the CUDA launchers use (process-wide).");
  m.def("cuda_summarize",
        [](uintptr_t x, int64_t n, uintptr_t out, uintptr_t cuda_stream) {
          require(n >= 0 && n < (int64_t{1} << 32), "n must be in [0, 2**32)");
          require(out != 0 && (n == 0 || x != 0), "missing device buffer");
          py::gil_scoped_release nogil;
          ebm::cuda::summarize(dptr<const float>(x), n, dptr<uint32_t>(out), cuda_stream);
        },
        py::arg("x"), py::arg("n"), py::arg("out"), py::arg("cuda_stream"),
        "Non-finite count, non-binary count, max and min keys of a float32 device array.");
  // The RBM on the GPU (csrc/cuda/rbm.cu); python/ebmfast/_rbm_cuda.py checks the CuPy
  // arrays and allocates every buffer (pointers as integers) from CuPy's pool.
  m.def("cuda_rbm_gibbs",
        [](uintptr_t W, uintptr_t b, uintptr_t c, int64_t n_v, int64_t n_h, float beta, uintptr_t V,
           uintptr_t H, int64_t rows, int64_t k, uint64_t seed, int64_t step, int64_t chain_offset,
           uintptr_t cuda_stream, int precision) {
          require(n_v >= 1 && n_h >= 1 && rows >= 0 && k >= 0, "bad RBM sizes");
          const ebm::RngView r = rng_view(seed, step, chain_offset, rows);
          check_u32(step + k, "step + k");
          check_u32(std::max(n_v, n_h) + 3, "layer width");
          const ebm::cuda::RbmDeviceParams P{dptr<const float>(W), dptr<const float>(b),
                                             dptr<const float>(c), n_v, n_h};
          const ebm::cuda::Precision prec = cuda_precision(precision);
          py::gil_scoped_release nogil;
          ebm::cuda::rbm_gibbs(P, beta, dptr<float>(V), dptr<float>(H), rows, k, r, cuda_stream, prec);
        },
        py::arg("W"), py::arg("b"), py::arg("c"), py::arg("n_v"), py::arg("n_h"), py::arg("beta"),
        py::arg("V"), py::arg("H"), py::arg("rows"), py::arg("k"), py::arg("seed"), py::arg("step"),
        py::arg("chain_offset"), py::arg("cuda_stream"), py::arg("precision"),
        "k block-Gibbs steps of V [rows, n_v] in place on the GPU (H [rows, n_h] scratch).");
  m.def("cuda_rbm_cd_update",
        [](uintptr_t W, uintptr_t b, uintptr_t c, int64_t n_v, int64_t n_h, uintptr_t V0, int64_t B0,
           uintptr_t chain, int64_t Bc, uintptr_t P0, uintptr_t H, uintptr_t Vk, uintptr_t Pk,
           uintptr_t Pv, uintptr_t vW, uintptr_t vb, uintptr_t vc, uintptr_t W_out,
           uintptr_t b_out, uintptr_t c_out, uintptr_t vW_out, uintptr_t vb_out, uintptr_t vc_out,
           float lr, float momentum, float decay, bool gradient_only, uintptr_t stats,
           uintptr_t recon, int64_t k, uint64_t seed, int64_t step, uintptr_t cuda_stream,
           int precision) {
          require(n_v >= 1 && n_h >= 1 && B0 >= 1 && k >= 1, "bad RBM sizes");
          require(chain == 0 ? Bc == 0 : Bc >= 1, "Bc must be 0 without chains, >= 1 with them");
          const ebm::RngView r = rng_view(seed, step, 0, std::max(B0, Bc));
          check_u32(step + k, "step + k");
          check_u32(std::max(n_v, n_h) + 3, "layer width");
          require(W && b && c && V0 && P0 && H && Pk && W_out && b_out && c_out,
                  "missing device buffer");
          require(chain != 0 || Vk != 0, "CD needs the Vk buffer");
          require(recon == 0 || Pv != 0, "recon needs the Pv buffer");
          require(gradient_only || (vW && vb && vc && vW_out && vb_out && vc_out && stats),
                  "missing velocity or stats buffer");
          const ebm::cuda::RbmDeviceParams P{dptr<const float>(W), dptr<const float>(b),
                                             dptr<const float>(c), n_v, n_h};
          ebm::cuda::RbmCdBuffers buf;
          buf.V0 = dptr<const float>(V0);
          buf.B0 = B0;
          buf.chain = dptr<float>(chain);
          buf.Bc = Bc;
          buf.P0 = dptr<float>(P0);
          buf.H = dptr<float>(H);
          buf.Vk = dptr<float>(Vk);
          buf.Pk = dptr<float>(Pk);
          buf.Pv = dptr<float>(Pv);
          ebm::cuda::RbmCdUpdate up;
          up.vW = dptr<const float>(vW);
          up.vb = dptr<const float>(vb);
          up.vc = dptr<const float>(vc);
          up.W_out = dptr<float>(W_out);
          up.b_out = dptr<float>(b_out);
          up.c_out = dptr<float>(c_out);
          up.vW_out = dptr<float>(vW_out);
          up.vb_out = dptr<float>(vb_out);
          up.vc_out = dptr<float>(vc_out);
          up.learning_rate = lr;
          up.momentum = momentum;
          up.weight_decay = decay;
          up.gradient_only = gradient_only;
          up.stats = dptr<uint32_t>(stats);
          up.recon = dptr<double>(recon);
          const ebm::cuda::Precision prec = cuda_precision(precision);
          py::gil_scoped_release nogil;
          ebm::cuda::rbm_cd_update(P, buf, up, k, r, cuda_stream, prec);
        },
        py::arg("W"), py::arg("b"), py::arg("c"), py::arg("n_v"), py::arg("n_h"), py::arg("V0"),
        py::arg("B0"), py::arg("chain"), py::arg("Bc"), py::arg("P0"), py::arg("H"), py::arg("Vk"),
        py::arg("Pk"), py::arg("Pv"), py::arg("vW"), py::arg("vb"), py::arg("vc"), py::arg("W_out"),
        py::arg("b_out"), py::arg("c_out"), py::arg("vW_out"), py::arg("vb_out"),
        py::arg("vc_out"), py::arg("learning_rate"), py::arg("momentum"),
        py::arg("weight_decay"), py::arg("gradient_only"), py::arg("stats"), py::arg("recon"),
        py::arg("k"), py::arg("seed"), py::arg("step"), py::arg("cuda_stream"),
        py::arg("precision"),
        "One CD-k / PCD-k update (or gradient) of an RBM on device buffers.");
  m.def("cuda_rbm_free_energy",
        [](uintptr_t W, uintptr_t b, uintptr_t c, int64_t n_v, int64_t n_h, uintptr_t V,
           int64_t rows, uintptr_t Z, uintptr_t out, bool pseudo_log_likelihood,
           uintptr_t cuda_stream) {
          require(n_v >= 1 && n_h >= 1 && rows >= 0, "bad RBM sizes");
          require(rows == 0 || (W && b && c && V && Z && out), "missing device buffer");
          const ebm::cuda::RbmDeviceParams P{dptr<const float>(W), dptr<const float>(b),
                                             dptr<const float>(c), n_v, n_h};
          py::gil_scoped_release nogil;
          if (pseudo_log_likelihood)
            ebm::cuda::rbm_pseudo_log_likelihood(P, dptr<const float>(V), rows, dptr<float>(Z),
                                                 dptr<double>(out), cuda_stream);
          else
            ebm::cuda::rbm_free_energy(P, dptr<const float>(V), rows, dptr<float>(Z),
                                       dptr<double>(out), cuda_stream);
        },
        py::arg("W"), py::arg("b"), py::arg("c"), py::arg("n_v"), py::arg("n_h"), py::arg("V"),
        py::arg("rows"), py::arg("Z"), py::arg("out"), py::arg("pseudo_log_likelihood"),
        py::arg("cuda_stream"),
        "Free energy (or the full pseudo-log-likelihood) per row, float64, on the GPU.");
#else
  m.attr("cuda_compiled") = false;
  m.attr("cuda_archs") = "";
  m.def("cuda_device_count", []() { return 0; });
  m.def("cuda_device_name", [](int) { return std::string(); }, py::arg("index") = 0);
  m.def("cuda_runtime_version", []() { return 0; });
  m.def("cuda_compute_capability", []() { return 0; });
#endif
  m.def("set_num_threads", [](int n) {
    require(n >= 1, "n_threads must be >= 1");
    ebm::cpu::set_num_threads(n);
  });
  m.def("get_num_threads", &ebm::cpu::get_num_threads);
  m.def("blas_config", []() { return std::string(ebm::cpu::blas_name()); });

  // ---------------------------------------------------------------- Philox
  m.def("philox4x32_10",
        [](std::array<uint32_t, 4> ctr, std::array<uint32_t, 2> key) {
          const ebm::PhiloxBlock b = ebm::philox4x32_10(ctr[0], ctr[1], ctr[2], ctr[3], key[0], key[1]);
          return std::array<uint32_t, 4>{b.x[0], b.x[1], b.x[2], b.x[3]};
        },
        py::arg("counter"), py::arg("key"), "One Philox4x32-10 block: counter (4 words), key (2 words).");
  m.def("philox_uniforms",
        [](uint64_t seed, int64_t stream, int64_t step, int64_t n_chains, int64_t n_units,
           int64_t chain_offset) {
          const ebm::RngView r = stream_rows(seed, stream, step, n_chains, n_units, chain_offset);
          const uint32_t st = static_cast<uint32_t>(stream);
          F32 out = new_f32(n_chains, n_units);
          float* o = out.mutable_data();
          {
            py::gil_scoped_release nogil;
            std::vector<float> row(static_cast<size_t>(4 * ((n_units + 3) / 4)) + 4);
            for (int64_t ch = 0; ch < n_chains; ++ch) {
              ebm::cpu::philox_uniforms(r.seed, st, r.chain_offset + static_cast<uint32_t>(ch),
                                        r.step, 0, static_cast<int>((n_units + 3) / 4), row.data());
              std::copy(row.begin(), row.begin() + n_units, o + ch * n_units);
            }
          }
          return out;
        },
        py::arg("seed"), py::arg("stream"), py::arg("step"), py::arg("n_chains"),
        py::arg("n_units"), py::arg("chain_offset") = 0,
        "Uniforms u[chain, unit] of the shared stream, as the CPU kernels draw them.");

  m.def("philox_uniforms_impl",
        [](int impl, uint64_t seed, int64_t stream, int64_t step, int64_t n_units) -> py::object {
          require(impl >= 0 && impl <= 2, "impl must be 0 (portable), 1 (avx2) or 2 (avx512)");
          require(n_units >= 0 && n_units < (int64_t{1} << 30), "n_units out of range");
          const uint32_t st = check_u32(stream, "stream"), sp = check_u32(step, "step");
          const int n_blocks = static_cast<int>((n_units + 3) / 4);
          std::vector<float> buf(static_cast<size_t>(4 * n_blocks) + 4);
          if (!ebm::cpu::philox_uniforms_with(static_cast<ebm::cpu::PhiloxImpl>(impl), seed, st, 0,
                                              sp, 0, n_blocks, buf.data()))
            return py::none();
          F32 out({n_units});
          std::copy(buf.begin(), buf.begin() + n_units, out.mutable_data());
          return out;
        },
        py::arg("impl"), py::arg("seed"), py::arg("stream"), py::arg("step"), py::arg("n_units"),
        "Uniforms of chain 0 from one named CPU implementation (None if unsupported here).");

  // ---------------------------------------------------------------- RBM layer kernels
  m.def("layer_forward",
        [](F32 X, F32 M, F32 bias, float beta, bool binary, bool want_field, bool want_prob,
           bool want_sample, int64_t stream, uint64_t seed, int64_t step, int64_t chain_offset) {
          check_2d(M, "M", -1, -1);
          check_2d(X, "X", -1, M.shape(0));
          check_1d(bias, "bias", M.shape(1));
          const ebm::RngView r = rng_view(seed, step, chain_offset, X.shape(0));
          const uint32_t st = check_u32(stream, "stream");
          const int64_t rows = X.shape(0), n_out = M.shape(1);
          py::object field = py::none(), prob = py::none(), sample = py::none();
          ebm::cpu::LayerOutputs out;
          if (want_field) { F32 a = new_f32(rows, n_out); out.field = a.mutable_data(); field = a; }
          if (want_prob) { F32 a = new_f32(rows, n_out); out.prob = a.mutable_data(); prob = a; }
          if (want_sample) { F32 a = new_f32(rows, n_out); out.sample = a.mutable_data(); sample = a; }
          const ebm::BatchView xv{X.data(), rows, binary};
          const ebm::LayerView L{M.data(), bias.data(), M.shape(0), n_out};
          {
            py::gil_scoped_release nogil;
            ebm::cpu::layer_forward(xv, L, beta, out, st, r);
          }
          return py::make_tuple(field, prob, sample);
        },
        py::arg("X"), py::arg("M"), py::arg("bias"), py::arg("beta"), py::arg("binary"),
        py::arg("want_field"), py::arg("want_prob"), py::arg("want_sample"), py::arg("stream"),
        py::arg("seed"), py::arg("step"), py::arg("chain_offset") = 0,
        "z = beta * X.M + bias -> (field, sigmoid(z), Bernoulli samples); unwanted outputs are None.");

  m.def("layer_update",
        [](F32 X, F32 M, F32 bias, float beta, bool binary, std::optional<F32> X2,
           std::optional<F32> M2, bool binary2, bool want_field, bool want_prob, bool want_sample,
           int64_t stream, uint64_t seed, int64_t step, int64_t chain_offset,
           std::optional<F32> table, std::optional<F32> table2, std::optional<F32> out_prob,
           std::optional<F32> out_sample) {
          check_2d(M, "M", -1, -1);
          check_2d(X, "X", -1, M.shape(0));
          const int64_t rows = X.shape(0), n_out = M.shape(1);
          check_1d(bias, "bias", n_out);
          require(X2.has_value() == M2.has_value(), "give X2 and M2 together");
          const bool two = X2.has_value();
          if (two) {
            check_2d(*M2, "M2", -1, n_out);
            check_2d(*X2, "X2", rows, M2->shape(0));
          }
          const ebm::RngView r = rng_view(seed, step, chain_offset, rows);
          const uint32_t st = check_u32(stream, "stream");
          ebm::LayerView L{M.data(), bias.data(), M.shape(0), n_out};
          ebm::LayerView L2;
          if (table) {  // subset_table(M) of exactly this M (binary X only)
            require(binary, "table given for a real-valued X");
            check_2d(*table, "table", layer_tables_rows(L.n_in, n_out), n_out);
            L.table = table->data();
          }
          if (two) {
            L2 = ebm::LayerView{M2->data(), bias.data(), M2->shape(0), n_out};
            if (table2) {
              require(binary2, "table2 given for a real-valued X2");
              check_2d(*table2, "table2", layer_tables_rows(L2.n_in, n_out), n_out);
              L2.table = table2->data();
            }
          } else {
            require(!table2, "table2 given without X2");
          }
          py::object field = py::none(), prob = py::none(), sample = py::none();
          ebm::cpu::LayerOutputs out;
          if (want_field) { F32 a = new_f32(rows, n_out); out.field = a.mutable_data(); field = a; }
          if (want_prob) {
            F32 a = out_prob ? *out_prob : new_f32(rows, n_out);
            check_2d(a, "out_prob", rows, n_out);
            out.prob = a.mutable_data();
            prob = a;
          }
          if (want_sample) {
            F32 a = out_sample ? *out_sample : new_f32(rows, n_out);
            check_2d(a, "out_sample", rows, n_out);
            out.sample = a.mutable_data();
            sample = a;
          }
          // An output must not overlap an input it is computed from.
          for (const float* o : {out.field, out.prob, out.sample}) {
            if (!o) continue;
            require(o != X.data() && (!two || o != X2->data()), "an output aliases an input");
          }
          const ebm::BatchView xv{X.data(), rows, binary};
          ebm::BatchView xv2;
          if (two) xv2 = ebm::BatchView{X2->data(), rows, binary2};
          {
            py::gil_scoped_release nogil;
            ebm::cpu::layer_update(xv, L, two ? &xv2 : nullptr, two ? &L2 : nullptr, beta, out,
                                   st, r);
          }
          return py::make_tuple(field, prob, sample);
        },
        py::arg("X"), py::arg("M"), py::arg("bias"), py::arg("beta"), py::arg("binary"),
        py::arg("X2") = py::none(), py::arg("M2") = py::none(), py::arg("binary2") = false,
        py::arg("want_field") = false, py::arg("want_prob") = false,
        py::arg("want_sample") = false, py::arg("stream") = 0, py::arg("seed") = 0,
        py::arg("step") = 0, py::arg("chain_offset") = 0, py::arg("table") = py::none(),
        py::arg("table2") = py::none(), py::arg("out_prob") = py::none(),
        py::arg("out_sample") = py::none(),
        "The shared layer update from one or two neighbours: z = beta * (X.M + X2.M2) + bias "
        "-> (field, sigmoid(z), Bernoulli samples); binary inputs take the gather/table "
        "kernel (tables = subset_table(M) prebuilt), others sgemm. Unwanted outputs are None.");

  m.def("subset_table",
        [](F32 M) {
          check_2d(M, "M", -1, -1);
          const int64_t n_in = M.shape(0), n_out = M.shape(1);
          F32 T = new_f32(layer_tables_rows(n_in, n_out), n_out);
          const float* m_ptr = M.data();
          float* t_ptr = T.mutable_data();
          {
            py::gil_scoped_release nogil;
            ebm::cpu::build_layer_tables(m_ptr, n_in, n_out, t_ptr);
          }
          return T;
        },
        py::arg("M"), "The tables of M for the binary layer kernels, subset sums then signed sums "
        "(see gibbs(tables=), layer_update(table=)).");

  m.def("gibbs",
        [](F32 W, F32 WT, F32 b, F32 c, F32 V, std::optional<F32> V_out, int k, float beta,
           uint64_t seed, int64_t step, int64_t chain_offset, std::optional<py::tuple> tables) {
          const ebm::RbmView P = rbm_view(W, WT, b, c, false);
          ebm::LayerView vh = P.to_hidden(), hv = P.to_visible();
          if (tables) {  // (subset_table(W), subset_table(WT)) of exactly these weights
            require(tables->size() == 2, "tables must be (table of W, table of WT)");
            F32 tvh = (*tables)[0].cast<F32>(), thv = (*tables)[1].cast<F32>();
            check_2d(tvh, "tables[0]", layer_tables_rows(P.n_visible, P.n_hidden), P.n_hidden);
            check_2d(thv, "tables[1]", layer_tables_rows(P.n_hidden, P.n_visible), P.n_visible);
            vh.table = tvh.data();
            hv.table = thv.data();
          }
          check_2d(V, "V", -1, P.n_visible);
          require(k >= 0, "k must be >= 0");
          const ebm::RngView r = rng_view(seed, step, chain_offset, V.shape(0));
          check_u32(step + k, "step + k");
          const int64_t rows = V.shape(0);
          F32 out = V_out ? *V_out : V;  // in place unless an output is given
          check_2d(out, "V_out", rows, P.n_visible);
          F32 H = new_f32(rows, P.n_hidden);
          const float* v_in = V.data();
          float* v_out = out.mutable_data();
          float* h = H.mutable_data();
          {
            py::gil_scoped_release nogil;
            ebm::cpu::gibbs_chains(vh, hv, beta, v_in, v_out, h, rows, k, r);
          }
          return H;
        },
        py::arg("W"), py::arg("WT"), py::arg("b"), py::arg("c"), py::arg("V"), py::arg("V_out"),
        py::arg("k"), py::arg("beta"), py::arg("seed"), py::arg("step"), py::arg("chain_offset") = 0,
        py::arg("tables") = py::none(),
        "k block-Gibbs steps from binary chains V into V_out (None: V in place); returns the "
        "last hidden sample. `tables` = (subset_table(W), subset_table(WT)) skips rebuilding them.");

  m.def("cd_update",
        [](F32 W, F32 WT, F32 b, F32 c, F32 vW, F32 vb, F32 vc, F32 V0, bool v0_binary,
           std::optional<F32> chain, int k, float lr, float momentum, float weight_decay,
           uint64_t seed, int64_t step, bool gradient_only, bool want_recon,
           std::optional<py::tuple> out) {
          ebm::RbmView P = rbm_view(W, WT, b, c, false);
          check_2d(V0, "V0", -1, P.n_visible);
          require(V0.shape(0) >= 1, "V0 must have at least one row");
          require(k >= 1, "k must be >= 1");
          const ebm::RngView r = rng_view(seed, step, 0,
                                          std::max<int64_t>(V0.shape(0), chain ? chain->shape(0) : 0));
          check_u32(step + k, "step + k");
          // Column lists index the ones of a batch with 32-bit offsets.
          require(V0.shape(0) * P.n_visible < (int64_t{1} << 31) &&
                      (!chain || chain->shape(0) * P.n_visible < (int64_t{1} << 31)),
                  "batch too large: rows * n_visible must be < 2**31 (use smaller batches)");
          ebm::cpu::CdBatch batch_view;
          batch_view.V0 = V0.data();
          batch_view.n_data = V0.shape(0);
          batch_view.v0_binary = v0_binary;
          batch_view.k = k;
          if (chain) {
            check_2d(*chain, "chain", -1, P.n_visible);
            require(chain->shape(0) >= 1, "chain must have at least one row");
            batch_view.chain = chain->mutable_data();
            batch_view.n_chain = chain->shape(0);
          }
          ebm::VelocityView vel;
          ebm::RbmView P_out;
          ebm::VelocityView vel_out;
          ebm::TrainHyper hyper{lr, momentum, weight_decay};
          py::object grads = py::none();
          ebm::cpu::GradView g;
          if (gradient_only) {
            F32 dW = new_f32(P.n_visible, P.n_hidden);
            F32 db({P.n_visible}), dc({P.n_hidden});
            g.W = dW.mutable_data(); g.b = db.mutable_data(); g.c = dc.mutable_data();
            grads = py::make_tuple(dW, db, dc);
          } else {
            check_2d(vW, "vW", P.n_visible, P.n_hidden);
            check_1d(vb, "vb", P.n_visible);
            check_1d(vc, "vc", P.n_hidden);
            vel = ebm::VelocityView{const_cast<float*>(vW.data()), const_cast<float*>(vb.data()),
                                    const_cast<float*>(vc.data())};
            if (out) {  // (W, WT, b, c, vW, vb, vc) to write instead of the inputs
              require(out->size() == 7, "out must hold (W, WT, b, c, vW, vb, vc)");
              F32 oW = (*out)[0].cast<F32>(), oWT = (*out)[1].cast<F32>(), ob = (*out)[2].cast<F32>(),
                  oc = (*out)[3].cast<F32>(), ovW = (*out)[4].cast<F32>(), ovb = (*out)[5].cast<F32>(),
                  ovc = (*out)[6].cast<F32>();
              P_out = rbm_view(oW, oWT, ob, oc, true);
              require(P_out.n_visible == P.n_visible && P_out.n_hidden == P.n_hidden,
                      "out arrays must match the parameters' shapes");
              check_2d(ovW, "out vW", P.n_visible, P.n_hidden);
              check_1d(ovb, "out vb", P.n_visible);
              check_1d(ovc, "out vc", P.n_hidden);
              vel_out = ebm::VelocityView{ovW.mutable_data(), ovb.mutable_data(), ovc.mutable_data()};
            } else {
              P_out = rbm_view(W, WT, b, c, true);
              vel_out = ebm::VelocityView{vW.mutable_data(), vb.mutable_data(), vc.mutable_data()};
            }
          }
          ebm::cpu::CdResult res;
          {
            py::gil_scoped_release nogil;
            res = ebm::cpu::cd_update(P, vel, hyper, batch_view, r, gradient_only ? &g : nullptr,
                                      &P_out, &vel_out, want_recon);
          }
          return py::make_tuple(grads, res.recon, res.finite, res.max_abs_param,
                                res.max_abs_velocity);
        },
        py::arg("W"), py::arg("WT"), py::arg("b"), py::arg("c"), py::arg("vW"), py::arg("vb"),
        py::arg("vc"), py::arg("V0"), py::arg("v0_binary"), py::arg("chain"), py::arg("k"),
        py::arg("learning_rate"), py::arg("momentum"), py::arg("weight_decay"), py::arg("seed"),
        py::arg("step"), py::arg("gradient_only"), py::arg("want_recon"), py::arg("out") = py::none(),
        "One CD-k (chain=None) or PCD-k update; returns ((dW, db, dc) or None, recon_error, "
        "finite, max |param|, max |velocity|). The update goes to `out` = (W, WT, b, c, vW, "
        "vb, vc) when given, else in place.");

  // --- continuous chains (mcmc)
  // Energy parameters come as a dict of float32 arrays / floats (ebmfast.energies builds
  // it); every array is checked against d here so no kernel reads out of bounds.
  struct McmcEnergy {
    ebm::EnergyView v;
    std::vector<F32> keep;  // the arrays the view points into
  };
  auto mcmc_energy_view = [](int kind, int64_t d, const py::dict& prm) {
    require(kind >= 0 && kind <= 5, "energy kind must be in 0..5");
    require(d >= 1, "d must be >= 1");
    auto e = std::make_shared<McmcEnergy>();
    ebm::EnergyView& v = e->v;
    v.kind = static_cast<ebm::EnergyKind>(kind);
    v.d = d;
    auto arr = [&](const char* key, std::vector<int64_t> shape) -> const float* {
      EBM_REQUIRE(prm.contains(key), std::string("energy parameter '") + key + "' is missing");
      F32 a = prm[key].cast<F32>();
      EBM_REQUIRE(a.ndim() == static_cast<py::ssize_t>(shape.size()),
              std::string("energy parameter '") + key + "' has the wrong number of dimensions");
      for (size_t i = 0; i < shape.size(); ++i)
        EBM_REQUIRE(shape[i] < 0 || a.shape(i) == shape[i],
                std::string("energy parameter '") + key + "' has the wrong shape");
      e->keep.push_back(a);
      return a.data();
    };
    auto num = [&](const char* key, float dflt) {
      return prm.contains(key) ? prm[key].cast<float>() : dflt;
    };
    switch (v.kind) {
      case ebm::EnergyKind::kGaussianDiag:
        v.mean = arr("mean", {d}); v.precision = arr("precision", {d}); break;
      case ebm::EnergyKind::kGaussianFull:
        v.mean = arr("mean", {d}); v.precision = arr("precision", {d, d}); break;
      case ebm::EnergyKind::kMixture: {
        v.log_coef = arr("log_coef", {-1});
        v.k = e->keep.back().shape(0);
        require(v.k >= 1, "mixture needs at least one component");
        v.means = arr("means", {v.k, d}); v.inv_var = arr("inv_var", {v.k, d});
        break;
      }
      case ebm::EnergyKind::kDoubleWell: v.a = num("a", 1.0f); break;
      case ebm::EnergyKind::kRosenbrock:
        require(d >= 2, "Rosenbrock needs d >= 2");
        v.a = num("a", 1.0f); v.b_coef = num("b", 100.0f); v.inv_scale = num("inv_scale", 1.0f);
        break;
      case ebm::EnergyKind::kRbmFree: {
        v.c = arr("c", {-1});
        v.n_hidden = e->keep.back().shape(0);
        v.W = arr("W", {d, v.n_hidden}); v.b = arr("b", {d});
        v.a = num("a", 0.0f);  // confinement
        break;
      }
    }
    return e;
  };

  m.def("mcmc_run_chunk",
        [mcmc_energy_view](int kind, py::dict params, int sampler, F32 x, F32 eps,
                           std::optional<py::array_t<int64_t, py::array::c_style>> n_accept,
                           int64_t n_steps, uint64_t seed, int64_t step, int64_t chain_offset,
                           bool adapt, int64_t adapt_index, float target_accept,
                           std::optional<py::array_t<float, py::array::c_style>> samples,
                           std::optional<F64> energies, int64_t thin) {
          check_2d(x, "x", -1, -1);
          const int64_t n = x.shape(0), d = x.shape(1);
          auto E = mcmc_energy_view(kind, d, params);
          check_1d(eps, "eps", n);
          require(sampler >= 0 && sampler <= 2, "sampler must be 0 (rwmh), 1 (mala) or 2 (ula)");
          require(n_steps >= 0 && thin >= 1 && adapt_index >= 0, "n_steps >= 0, thin >= 1, adapt_index >= 0");
          const ebm::RngView r = rng_view(seed, step, chain_offset, n);
          check_u32(step + std::max<int64_t>(n_steps, 1) - 1, "step + n_steps - 1");
          ebm::ChainsView C{x.mutable_data(), eps.mutable_data(), nullptr, n, d};
          if (n_accept) {
            require(n_accept->ndim() == 1 && n_accept->shape(0) == n, "n_accept must have shape (n_chains,)");
            C.n_accept = n_accept->mutable_data();
          }
          ebm::ChunkPlan P;
          P.sampler = static_cast<ebm::SamplerKind>(sampler);
          P.n_steps = n_steps; P.seed = r.seed; P.step = r.step; P.chain_offset = r.chain_offset;
          P.adapt = adapt; P.adapt_index = adapt_index; P.target_accept = target_accept;
          P.thin = thin;
          if (samples) {
            require(samples->ndim() == 3 && samples->shape(0) == n_steps / thin &&
                        samples->shape(1) == n && samples->shape(2) == d,
                    "samples must have shape (n_steps // thin, n_chains, d)");
            P.samples = samples->mutable_data();
          }
          if (energies) {
            require(samples.has_value(), "energies are recorded only together with samples");
            require(energies->ndim() == 2 && energies->shape(0) == n_steps / thin &&
                        energies->shape(1) == n,
                    "energies must have shape (n_steps // thin, n_chains)");
            P.energies = energies->mutable_data();
          }
          {
            py::gil_scoped_release nogil;
            ebm::cpu::mcmc_run_chunk(E->v, C, P);
          }
        },
        py::arg("kind"), py::arg("params"), py::arg("sampler"), py::arg("x"), py::arg("eps"),
        py::arg("n_accept"), py::arg("n_steps"), py::arg("seed"), py::arg("step"),
        py::arg("chain_offset"), py::arg("adapt"), py::arg("adapt_index"),
        py::arg("target_accept"), py::arg("samples"), py::arg("energies"), py::arg("thin"),
        "One chunk of RWMH/MALA/ULA steps of chains x (in place, float32) on a built-in energy; "
        "records every thin-th state into samples/energies when given.");

  m.def("mcmc_energy",
        [mcmc_energy_view](int kind, py::dict params, F32 X) {
          check_2d(X, "X", -1, -1);
          const int64_t n = X.shape(0), d = X.shape(1);
          auto E = mcmc_energy_view(kind, d, params);
          F32 e({n}), g = new_f32(n, d);
          const float* xp = X.data();
          float* ep = e.mutable_data();
          float* gp = g.mutable_data();
          {
            py::gil_scoped_release nogil;
            ebm::cpu::mcmc_energy(E->v, xp, n, ep, gp);
          }
          return py::make_tuple(e, g);
        },
        py::arg("kind"), py::arg("params"), py::arg("X"),
        "(E(x) [n], grad E(x) [n, d]) of a built-in energy, float32, as the chain kernels compute them.");

#ifdef EBMFAST_WITH_CUDA
  m.def("mcmc_run_chunk_cuda",
        [](int kind, py::dict params, int sampler, uintptr_t x, uintptr_t eps, uintptr_t n_accept,
           int64_t n_chains, int64_t d, int64_t n_steps, uint64_t seed, int64_t step,
           int64_t chain_offset, bool adapt, int64_t adapt_index, float target_accept,
           uintptr_t samples, uintptr_t energies, int64_t thin, uintptr_t scratch,
           uintptr_t stream) {
          // Device pointers as integers (ebmfast.mcmc checks every CuPy array's shape,
          // dtype and contiguity); params hold device pointers + sizes (see energies.py).
          require(kind >= 0 && kind <= 5 && sampler >= 0 && sampler <= 2, "bad kind/sampler");
          require(n_chains >= 0 && d >= 1 && n_steps >= 0 && thin >= 1, "bad sizes");
          const ebm::RngView r = rng_view(seed, step, chain_offset, n_chains);
          check_u32(step + std::max<int64_t>(n_steps, 1) - 1, "step + n_steps - 1");
          ebm::EnergyView v;
          v.kind = static_cast<ebm::EnergyKind>(kind);
          v.d = d;
          auto ptr = [&](const char* key) -> const float* {
            return params.contains(key)
                       ? reinterpret_cast<const float*>(params[key].cast<uintptr_t>())
                       : nullptr;
          };
          v.mean = ptr("mean"); v.precision = ptr("precision"); v.log_coef = ptr("log_coef");
          v.means = ptr("means"); v.inv_var = ptr("inv_var"); v.W = ptr("W"); v.b = ptr("b");
          v.c = ptr("c");
          v.k = params.contains("k") ? params["k"].cast<int64_t>() : 0;
          v.n_hidden = params.contains("n_hidden") ? params["n_hidden"].cast<int64_t>() : 0;
          v.a = params.contains("a") ? params["a"].cast<float>() : 1.0f;
          v.b_coef = params.contains("b_coef") ? params["b_coef"].cast<float>() : 100.0f;
          v.inv_scale = params.contains("inv_scale") ? params["inv_scale"].cast<float>() : 1.0f;
          ebm::ChainsView C{reinterpret_cast<float*>(x), reinterpret_cast<float*>(eps),
                            reinterpret_cast<int64_t*>(n_accept), n_chains, d};
          ebm::ChunkPlan P;
          P.sampler = static_cast<ebm::SamplerKind>(sampler);
          P.n_steps = n_steps; P.seed = r.seed; P.step = r.step; P.chain_offset = r.chain_offset;
          P.adapt = adapt; P.adapt_index = adapt_index; P.target_accept = target_accept;
          P.thin = thin;
          P.samples = reinterpret_cast<float*>(samples);
          P.energies = reinterpret_cast<double*>(energies);
          py::gil_scoped_release nogil;
          ebm::cuda::mcmc_run_chunk(v, C, P, reinterpret_cast<float*>(scratch), stream);
        },
        py::arg("kind"), py::arg("params"), py::arg("sampler"), py::arg("x"), py::arg("eps"),
        py::arg("n_accept"), py::arg("n_chains"), py::arg("d"), py::arg("n_steps"), py::arg("seed"),
        py::arg("step"), py::arg("chain_offset"), py::arg("adapt"), py::arg("adapt_index"),
        py::arg("target_accept"), py::arg("samples"), py::arg("energies"), py::arg("thin"),
        py::arg("scratch"), py::arg("stream"));
  m.def("mcmc_cuda_scratch_floats",
        [](int kind, int64_t d, int64_t k, int64_t n_hidden, int64_t n_chains) {
          ebm::EnergyView v;
          v.kind = static_cast<ebm::EnergyKind>(kind);
          v.d = d; v.k = k; v.n_hidden = n_hidden;
          return ebm::cuda::mcmc_scratch_floats(v, n_chains);
        },
        py::arg("kind"), py::arg("d"), py::arg("k"), py::arg("n_hidden"), py::arg("n_chains"));
#endif
  // --- end continuous chains (mcmc)

  m.def("summarize",
        [](F32 X) {
          const float* x = X.data();
          const int64_t n = X.size();
          ebm::cpu::ValueSummary sm;
          {
            py::gil_scoped_release nogil;
            sm = ebm::cpu::summarize(x, n);
          }
          return py::make_tuple(sm.finite, sm.binary, sm.min, sm.max);
        },
        py::arg("X"), "(all finite, all in {0, 1}, min, max) of a float32 array in one pass.");

  m.def("transpose",
        [](F32 W, F32 WT) {
          check_2d(W, "W", -1, -1);
          check_2d(WT, "WT", W.shape(1), W.shape(0));
          const float* w = W.data();
          float* wt = WT.mutable_data();
          py::gil_scoped_release nogil;
          ebm::cpu::transpose(w, wt, W.shape(0), W.shape(1));
        },
        py::arg("W"), py::arg("WT"));

  auto score = [](auto kernel) {
    return [kernel](F32 W, F32 WT, F32 b, F32 c, F32 V, bool binary) {
      const ebm::RbmView P = rbm_view(W, WT, b, c, false);
      check_2d(V, "V", -1, P.n_visible);
      F64 out(V.shape(0));
      double* o = out.mutable_data();
      const ebm::BatchView vv{V.data(), V.shape(0), binary};
      {
        py::gil_scoped_release nogil;
        kernel(P, vv, o);
      }
      return out;
    };
  };
  m.def("free_energy", score(&ebm::cpu::free_energy), py::arg("W"), py::arg("WT"), py::arg("b"),
        py::arg("c"), py::arg("V"), py::arg("binary"), "F(v) per row, float64.");
  m.def("pseudo_log_likelihood", score(&ebm::cpu::pseudo_log_likelihood), py::arg("W"),
        py::arg("WT"), py::arg("b"), py::arg("c"), py::arg("V"), py::arg("binary"),
        "sum_i log p(v_i | v_-i) per row (binary V), float64.");
  // --- spin chains (ising)
  m.def("ising_chains",
        [](F32 h, std::optional<F32> J, std::optional<I64> indptr, std::optional<I32> indices,
           std::optional<F32> data, F32 betas, bool gibbs, bool random_order,
           std::optional<U8> clamped, I8 S, uint64_t seed, int64_t step, int64_t chain_offset,
           bool trace, std::optional<F32> fields, bool fields_given, bool exact_fields) {
          require(h.ndim() == 1, "h must be 1-D");
          const int64_t n = h.shape(0);
          require(n >= 1, "the model needs at least one spin");
          require(S.ndim() == 2 && S.shape(1) == n, "S must have shape (chains, n)");
          require(S.writeable(), "S must be writeable");
          const int64_t chains = S.shape(0);
          require(betas.ndim() == 1, "betas must be 1-D");
          const int64_t n_sweeps = betas.shape(0);
          ebm::IsingView P;
          P.n = n;
          P.h = h.data();
          if (J) {
            check_2d(*J, "J", n, n);
            P.J = J->data();
          } else {
            require(indptr && indices && data, "give J, or indptr, indices and data (CSR)");
            require(indptr->ndim() == 1 && indptr->shape(0) == n + 1, "indptr must have shape (n + 1,)");
            const int64_t* ip = indptr->data();
            const int64_t nnz = indices->ndim() == 1 ? indices->shape(0) : -1;
            require(nnz >= 0 && data->ndim() == 1 && data->shape(0) == nnz,
                    "indices and data must be 1-D of the same length");
            require(ip[0] == 0 && ip[n] == nnz, "indptr must run from 0 to nnz");
            for (int64_t i = 0; i < n; ++i) require(ip[i] <= ip[i + 1], "indptr must not decrease");
            const int32_t* ix = indices->data();
            for (int64_t k = 0; k < nnz; ++k) require(ix[k] >= 0 && ix[k] < n, "indices must lie in [0, n)");
            P.indptr = ip;
            P.indices = ix;
            P.data = data->data();
          }
          ebm::SweepPlan plan;
          plan.betas = betas.data();
          plan.n_sweeps = n_sweeps;
          plan.gibbs = gibbs;
          plan.random_order = random_order;
          plan.exact_fields = exact_fields;
          if (clamped) {
            require(clamped->ndim() == 1 && clamped->shape(0) == n, "clamped must have shape (n,)");
            plan.clamped = clamped->data();
          }
          const ebm::RngView r = rng_view(seed, step, chain_offset, chains);
          check_u32(step + n_sweeps, "step + n_sweeps");
          I64 flips(chains);
          std::optional<F64> energies;
          if (trace) energies = F64({n_sweeps, chains});
          float* fl = nullptr;
          if (fields) {
            require(fields->ndim() == 2 && fields->shape(0) == chains && fields->shape(1) == n,
                    "fields must have shape (chains, n)");
            require(fields->writeable(), "fields must be writeable");
            fl = fields->mutable_data();
          }
          int8_t* s = S.mutable_data();
          int64_t* f = flips.mutable_data();
          double* e = trace ? energies->mutable_data() : nullptr;
          {
            py::gil_scoped_release nogil;
            ebm::cpu::ising_chains(P, plan, s, chains, r, f, e, fl, fields_given && fl != nullptr);
          }
          return py::make_tuple(flips, energies ? py::object(*energies) : py::object(py::none()));
        },
        py::arg("h"), py::arg("J"), py::arg("indptr"), py::arg("indices"), py::arg("data"),
        py::arg("betas"), py::arg("gibbs"), py::arg("random_order"), py::arg("clamped"),
        py::arg("S").noconvert(), py::arg("seed"), py::arg("step"), py::arg("chain_offset") = 0,
        py::arg("trace") = false, py::arg("fields").noconvert() = py::none(),
        py::arg("fields_given") = false, py::arg("exact_fields") = false,
        "Sweeps of single-spin updates on the chains S (int8 +-1, in place). J dense symmetric "
        "(zero diagonal) or CSR (indptr int64, indices int32, data) of both triangles. `fields` "
        "(float32 [chains, n]) carries the local fields from one call to the next. "
        "`exact_fields`: the caller guarantees float32 field sums are exact (skips the periodic "
        "refresh). Returns (flips per chain, energy after each sweep [n_sweeps, chains] or None).");
  m.def("bm_step",
        [](F64 W, F64 b, F64 vW, F64 vb, U8 data, I64 rows, std::optional<F64> chains,
           uint64_t seed, int64_t clamped_step, int clamped_sweeps, int64_t free_step,
           int free_sweeps, int64_t restart_chain_offset, std::optional<py::tuple> hyper,
           F64 W_out, F64 b_out, std::optional<F64> vW_out, std::optional<F64> vb_out,
           std::optional<F64> chains_out, std::optional<I8> clamped_out, std::optional<I8> free_out) {
          return bm_call(W, b, vW, vb, data, rows, chains, seed, clamped_step, clamped_sweeps,
                         free_step, free_sweeps, restart_chain_offset, hyper, W_out, b_out, vW_out,
                         vb_out, chains_out, clamped_out, free_out, 0, std::nullopt).first == 1;
        },
        py::arg("W"), py::arg("b"), py::arg("vW"), py::arg("vb"), py::arg("data"), py::arg("rows"),
        py::arg("chains"), py::arg("seed"), py::arg("clamped_step"), py::arg("clamped_sweeps"),
        py::arg("free_step"), py::arg("free_sweeps"), py::arg("restart_chain_offset"),
        py::arg("hyper"), py::arg("W_out").noconvert(), py::arg("b_out").noconvert(),
        py::arg("vW_out").noconvert() = py::none(), py::arg("vb_out").noconvert() = py::none(),
        py::arg("chains_out").noconvert() = py::none(), py::arg("clamped_out").noconvert() = py::none(),
        py::arg("free_out").noconvert() = py::none(),
        "One Boltzmann-machine update (both phases, statistics, momentum / weight-decay step) "
        "in one call; see kernels.h bm_step. hyper = (learning_rate, momentum, weight_decay, "
        "symmetric: W and vW are symmetric), "
        "or None: W_out, b_out receive the gradient. Returns False when the update was "
        "rejected (non-finite or too large parameters).");
  m.def("bm_steps",
        [](F64 W, F64 b, F64 vW, F64 vb, U8 data, I64 order, int64_t batch_size,
           std::optional<F64> chains, uint64_t seed, int64_t step, int clamped_sweeps,
           int free_sweeps, int64_t restart_chain_offset, py::tuple hyper, py::tuple out,
           py::tuple spare) {
          require(batch_size >= 1, "batch_size must be >= 1");
          require(out.size() == 5, "out must be (W, b, vW, vb, chains or None)");
          auto arr = [&](int k) -> F64 {
            require(py::isinstance<F64>(out[k]), "out arrays must be C-contiguous float64");
            return out[k].cast<F64>();
          };
          std::optional<F64> chains_out;
          if (!out[4].is_none()) chains_out = arr(4);
          return bm_call(W, b, vW, vb, data, order, chains, seed, step, clamped_sweeps,
                         step + clamped_sweeps, free_sweeps, restart_chain_offset, hyper, arr(0),
                         arr(1), arr(2), arr(3), chains_out, std::nullopt, std::nullopt, batch_size,
                         spare);
        },
        py::arg("W"), py::arg("b"), py::arg("vW"), py::arg("vb"), py::arg("data"), py::arg("order"),
        py::arg("batch_size"), py::arg("chains"), py::arg("seed"), py::arg("step"),
        py::arg("clamped_sweeps"), py::arg("free_sweeps"), py::arg("restart_chain_offset"),
        py::arg("hyper"), py::arg("out"), py::arg("spare"),
        "The updates of consecutive mini-batches order[k*batch_size:(k+1)*batch_size] in one "
        "call, as bm_step one after another (batch k at Philox step step + k (clamped_sweeps "
        "+ free_sweeps)). out and spare = (W, b, vW, vb, chains or None) take the states in "
        "turn; the inputs are never written. Returns (updates accepted, 0 if the last accepted "
        "state is in out, 1 if in spare, -1 if none was): it stops at the first rejected one.");
  m.def("gram",
        [](F32 Y) {
          require(Y.ndim() == 2, "Y must be 2-D");
          const int64_t rows = Y.shape(0), n = Y.shape(1);
          F32 out = new_f32(n, n);
          const float* y = Y.data();
          float* o = out.mutable_data();
          {
            py::gil_scoped_release nogil;
            ebm::cpu::gemm_block(true, n, n, rows, 1.0f, y, n, y, n, o, n);
          }
          return out;
        },
        py::arg("Y"),
        "Y^T Y (float32) through the module's own single-threaded BLAS: no thread pool "
        "left spinning beside the OpenMP kernels.");

  m.def("enumerate_log_partition",
        [](F32 M, F64 lin, F32 other) {
          check_2d(M, "M", -1, -1);
          const int64_t n = M.shape(0), m_out = M.shape(1);
          require(n >= 1 && n <= 40, "M must have 1..40 rows (2**rows states)");
          require(lin.ndim() == 1 && lin.shape(0) == n, "lin must have M.shape[0] entries");
          check_1d(other, "other", m_out);
          const float* mp = M.data();
          const double* lp = lin.data();
          const float* op = other.data();
          double out;
          {
            py::gil_scoped_release nogil;
            out = ebm::cpu::enumerate_log_partition(mp, lp, op, static_cast<int>(n), m_out);
          }
          return out;
        },
        py::arg("M"), py::arg("lin"), py::arg("other"),
        "log sum_s exp(lin.s + sum_j softplus(other_j + (s.M)_j)) over s in {0,1}^rows(M).");

  m.def("matmul",
        [](F32 A, F32 B) {
          require(A.ndim() == 2 && B.ndim() == 2 && A.shape(1) == B.shape(0),
                  "matmul needs A (m, k) and B (k, n)");
          const int64_t m_ = A.shape(0), k = A.shape(1), n = B.shape(1);
          F32 out = new_f32(m_, n);
          const float *a = A.data(), *b = B.data();
          float* o = out.mutable_data();
          {
            py::gil_scoped_release nogil;
            ebm::cpu::gemm_rows_parallel(false, m_, n, k, 1.0f, a, k, b, n, o, n);
          }
          return out;
        },
        py::arg("A"), py::arg("B"),
        "A @ B (float32) with the module's BLAS in fixed row blocks over the OpenMP team: "
        "no NumPy thread pool left spinning beside the kernels, same result for any thread count.");

  m.def("ising_energies_csr",
        [](F64 h, I64 indptr, I32 indices, F64 data, I8 S) {
          require(h.ndim() == 1, "h must be 1-D");
          const int64_t n = h.shape(0);
          require(indptr.ndim() == 1 && indptr.shape(0) == n + 1, "indptr must have shape (n + 1,)");
          const int64_t nnz = indices.ndim() == 1 ? indices.shape(0) : -1;
          require(nnz >= 0 && data.ndim() == 1 && data.shape(0) == nnz, "indices and data must be 1-D of one length");
          const int64_t* ip = indptr.data();
          require(ip[0] == 0 && ip[n] == nnz, "indptr must run from 0 to nnz");
          for (int64_t i = 0; i < n; ++i) require(ip[i] <= ip[i + 1], "indptr must not decrease");
          const int32_t* ix = indices.data();
          for (int64_t k = 0; k < nnz; ++k) require(ix[k] >= 0 && ix[k] < n, "indices must lie in [0, n)");
          require(S.ndim() == 2 && S.shape(1) == n, "S must have shape (chains, n)");
          F64 out(S.shape(0));
          double* o = out.mutable_data();
          const double *hp = h.data(), *dp = data.data();
          const int8_t* sp = S.data();
          const int64_t chains = S.shape(0);
          {
            py::gil_scoped_release nogil;
            ebm::cpu::ising_energies_csr(n, hp, ip, ix, dp, sp, chains, o);
          }
          return out;
        },
        py::arg("h"), py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("S"),
        "Exact float64 energies h.s + sum_{i<j} J_ij s_i s_j of int8 spins S (CSR of both triangles).");
  m.def("ising_energies_dense",
        [](F64 h, F64 J, I8 S) {
          require(h.ndim() == 1, "h must be 1-D");
          const int64_t n = h.shape(0);
          require(J.ndim() == 2 && J.shape(0) == n && J.shape(1) == n, "J must have shape (n, n)");
          require(S.ndim() == 2 && S.shape(1) == n, "S must have shape (chains, n)");
          const int64_t chains = S.shape(0);
          F64 out(chains);
          double* o = out.mutable_data();
          const double *hp = h.data(), *jp = J.data();
          const int8_t* sp = S.data();
          {
            py::gil_scoped_release nogil;
            ebm::cpu::ising_energies_dense(n, hp, jp, sp, chains, o);
          }
          return out;
        },
        py::arg("h"), py::arg("J"), py::arg("S"),
        "Exact float64 energies h.s + sum_{i<j} J_ij s_i s_j of int8 spins S (J symmetric; "
        "its upper triangle is read).");
  m.def("random_spins",
        [](uint64_t seed, int64_t stream, int64_t step, int64_t n_chains, int64_t n_units,
           int64_t chain_offset) {
          const ebm::RngView r = stream_rows(seed, stream, step, n_chains, n_units, chain_offset);
          const uint32_t st = static_cast<uint32_t>(stream);
          I8 out({n_chains, n_units});
          int8_t* o = out.mutable_data();
          {
            py::gil_scoped_release nogil;
            ebm::cpu::random_spins(r.seed, st, r.step, r.chain_offset, n_chains, n_units, o);
          }
          return out;
        },
        py::arg("seed"), py::arg("stream"), py::arg("step"), py::arg("n_chains"),
        py::arg("n_units"), py::arg("chain_offset") = 0,
        "+-1 spins s[chain, unit] = +1 iff philox_uniforms(...)[chain, unit] < 1/2 (int8).");
  m.def("csr_from_pairs",
        [](int64_t n, I64 i, I64 j, F64 v) {
          require(n >= 1, "n must be >= 1");
          require(i.ndim() == 1 && j.ndim() == 1 && v.ndim() == 1 && i.shape(0) == j.shape(0) &&
                      v.shape(0) == i.shape(0), "i, j and v must be 1-D of one length");
          const int64_t m = i.shape(0);
          const int64_t *ip = i.data(), *jp = j.data();
          for (int64_t k = 0; k < m; ++k)
            require(ip[k] >= 0 && ip[k] < n && jp[k] >= 0 && jp[k] < n && ip[k] != jp[k],
                    "pairs must index distinct spins in [0, n)");
          I64 indptr(n + 1);
          I32 indices(2 * m);
          F64 data(2 * m);
          int64_t nnz = 0;
          {
            py::gil_scoped_release nogil;
            nnz = ebm::cpu::csr_from_pairs(n, m, ip, jp, v.data(), indptr.mutable_data(),
                                           indices.mutable_data(), data.mutable_data());
          }
          py::slice keep(0, nnz, 1);
          return py::make_tuple(indptr, indices[keep], data[keep]);
        },
        py::arg("n"), py::arg("i"), py::arg("j"), py::arg("v"),
        "Symmetric CSR (indptr int64, indices int32, data float64) of pair couplings: both "
        "triangles, columns ascending, duplicate pairs summed, zero sums dropped.");
  m.def("pairs_from_dict",
        [](py::dict J, int64_t n) -> py::object {
          // A dimod-style {(i, j): J_ij} as arrays, at C speed (np.array(list(J.keys())) alone
          // took 1.5 ms for 15,000 pairs). None for anything but plain (int, int) -> finite
          // real within float32 with 0 <= i, j < n and i != j: the caller's NumPy path then
          // reports what is wrong.
          const int64_t m = static_cast<int64_t>(PyDict_Size(J.ptr()));
          I64 ii(m), jj(m);
          F64 vv(m);
          int64_t* ip = ii.mutable_data();
          int64_t* jp = jj.mutable_data();
          double* vp = vv.mutable_data();
          PyObject *key, *value;
          Py_ssize_t pos = 0;
          int64_t k = 0;
          while (PyDict_Next(J.ptr(), &pos, &key, &value)) {
            if (!PyTuple_Check(key) || PyTuple_GET_SIZE(key) != 2) return py::none();
            PyObject* a = PyTuple_GET_ITEM(key, 0);
            PyObject* b = PyTuple_GET_ITEM(key, 1);
            if (!PyLong_CheckExact(a) || !PyLong_CheckExact(b)) return py::none();
            const long long x = PyLong_AsLongLong(a), y = PyLong_AsLongLong(b);
            double v = 0.0;
            if (PyFloat_Check(value)) v = PyFloat_AS_DOUBLE(value);
            else if (PyLong_CheckExact(value)) v = PyLong_AsDouble(value);
            else return py::none();
            if (PyErr_Occurred() || x < 0 || y < 0 || x >= n || y >= n || x == y) {
              PyErr_Clear();  // an overflowing int sets an error: the NumPy path reports it
              return py::none();
            }
            if (!(std::fabs(v) <= static_cast<double>(std::numeric_limits<float>::max()))) return py::none();
            ip[k] = x;
            jp[k] = y;
            vp[k] = v;
            ++k;
          }
          if (k != m) return py::none();
          return py::make_tuple(ii, jj, vv);
        },
        py::arg("J"), py::arg("n"),
        "(i, j, v) arrays of a dict {(i, j): v} of int pairs in [0, n) and float values, or None.");

  // --- Hopfield
  m.def("spin_table",
        [](F32 J) {
          check_2d(J, "J", -1, -1);
          const int64_t n = J.shape(0);
          require(n >= 1 && J.shape(1) == n, "J must be square (n, n) with n >= 1");
          const ebm::cpu::SpinTableShape shape = ebm::cpu::spin_table_shape(n);
          F32 T(std::vector<py::ssize_t>{static_cast<py::ssize_t>(shape.floats())});
          const float* j_ptr = J.data();
          float* t_ptr = T.mutable_data();
          {
            py::gil_scoped_release nogil;
            ebm::cpu::build_spin_table(j_ptr, shape, t_ptr);
          }
          return T;
        },
        py::arg("J"),
        "Sign-symmetric subset table of the couplings J (n, n) for +-1 spin fields "
        "(hopfield_recall(table=)); a flat float32 array.");

  m.def("hopfield_recall",
        [](F32 W, F32 b, I8 S, int64_t max_sweeps, bool random_order, uint64_t seed, int64_t step,
           int64_t chain_offset, std::optional<F32> table) {
          check_2d(W, "W", -1, -1);
          const int64_t n = W.shape(0);
          require(n >= 1 && W.shape(1) == n, "W must be square (n, n) with n >= 1");
          check_1d(b, "b", n);
          if (table)  // spin_table(W) of exactly this W
            check_1d(*table, "table", ebm::cpu::spin_table_shape(n).floats());
          const float* t_ptr = table ? table->data() : nullptr;
          require(S.ndim() == 2 && S.shape(1) == n, "S must have shape (cues, n)");
          require(S.writeable(), "S must be writeable");
          require(max_sweeps >= 0, "max_sweeps must be >= 0");
          const int64_t cues = S.shape(0);
          // Padding lanes of the last block draw chains up to the next multiple of 16.
          const ebm::RngView r = rng_view(seed, step, chain_offset, (cues + 15) / 16 * 16);
          check_u32(step + max_sweeps, "step + max_sweeps");
          ebm::IsingView P;
          P.n = n;
          P.h = b.data();
          P.J = W.data();
          I32 sweeps(cues);
          U8 converged(cues);
          int8_t* s = S.mutable_data();
          int32_t* sw = sweeps.mutable_data();
          uint8_t* cv = converged.mutable_data();
          {
            py::gil_scoped_release nogil;
            ebm::cpu::hopfield_recall(P, s, cues, max_sweeps, random_order, r, sw, cv, t_ptr);
          }
          return py::make_tuple(sweeps, converged);
        },
        py::arg("W"), py::arg("b"), py::arg("S").noconvert(), py::arg("max_sweeps"),
        py::arg("random_order"), py::arg("seed"), py::arg("step"), py::arg("chain_offset") = 0,
        py::arg("table") = py::none(),
        "Asynchronous Hopfield recall of the cues S (int8 +-1 [cues, n], in place) under "
        "z = W y + b (W float32 symmetric, zero diagonal); cue c draws chain chain_offset + c. "
        "Returns (sweeps int32, converged uint8) per cue.");

  m.def("lattice_sweeps",
        [](I8 S, float J, float h, F32 betas, bool gibbs, uint64_t seed, int64_t step,
           int64_t chain_offset, bool trace) {
          require(S.ndim() == 3 && S.shape(1) == S.shape(2), "S must have shape (chains, L, L)");
          require(S.writeable(), "S must be writeable");
          const int64_t chains = S.shape(0), L = S.shape(1);
          require(L >= 2 && L % 2 == 0, "L must be even and >= 2");
          require(betas.ndim() == 1, "betas must be 1-D");
          const int64_t n_sweeps = betas.shape(0);
          const ebm::RngView r = rng_view(seed, step, chain_offset, chains);
          check_u32(step + 2 * n_sweeps, "step + 2 n_sweeps");
          check_u32(L * L / 2 + 4, "L * L / 2");
          I64 flips(chains);
          std::optional<F64> energy, magnet;
          if (trace) {
            energy = F64({n_sweeps, chains});
            magnet = F64({n_sweeps, chains});
          }
          int8_t* s = S.mutable_data();
          int64_t* f = flips.mutable_data();
          double* e = trace ? energy->mutable_data() : nullptr;
          double* mg = trace ? magnet->mutable_data() : nullptr;
          const float* b = betas.data();
          {
            py::gil_scoped_release nogil;
            ebm::cpu::lattice_sweeps(s, chains, L, J, h, b, n_sweeps, gibbs, r, f, e, mg);
          }
          auto opt = [](std::optional<F64>& a) { return a ? py::object(*a) : py::object(py::none()); };
          return py::make_tuple(flips, opt(energy), opt(magnet));
        },
        py::arg("S").noconvert(), py::arg("J"), py::arg("h"), py::arg("betas"), py::arg("gibbs"),
        py::arg("seed"), py::arg("step"), py::arg("chain_offset") = 0, py::arg("trace") = false,
        "Checkerboard sweeps of the periodic L x L lattices S (int8 +-1, in place). Returns "
        "(flips per chain, energy per spin [n_sweeps, chains] or None, magnetisation per spin "
        "or None).");
}
