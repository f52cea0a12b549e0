// ctypes entry points of csrc/cuda/rbm.cu (see shim.h); the arguments of the
// cuda_rbm_* bindings in csrc/bindings.cpp.
#include "cuda/cuda_api.h"
#include "shims/shim.h"

using ebm::cuda::Precision;

extern "C" const char* emu_rbm_gibbs(const float* W, const float* b, const float* c, int64_t n_v,
                                     int64_t n_h, float beta, float* V, float* H, int64_t rows,
                                     int64_t k, uint64_t seed, uint32_t step, int precision) {
  return emu::guard([&] {
    const ebm::cuda::RbmDeviceParams P{W, b, c, n_v, n_h};
    ebm::RngView r;
    r.seed = seed;
    r.step = step;
    ebm::cuda::rbm_gibbs(P, beta, V, H, rows, k, r, 0, static_cast<Precision>(precision));
  });
}

extern "C" const char* emu_rbm_cd_update(const float* W, const float* b, const float* c,
                                         int64_t n_v, int64_t n_h, const float* V0, int64_t B0,
                                         float* chain, int64_t Bc, float* P0, float* H, float* Vk,
                                         float* Pk, float* Pv, const float* vW, const float* vb,
                                         const float* vc, float* W_out, float* b_out, float* c_out,
                                         float* vW_out, float* vb_out, float* vc_out, float lr,
                                         float momentum, float decay, int gradient_only,
                                         uint32_t* stats, double* recon, int64_t k, uint64_t seed,
                                         uint32_t step, int precision) {
  return emu::guard([&] {
    const ebm::cuda::RbmDeviceParams P{W, b, c, n_v, n_h};
    ebm::cuda::RbmCdBuffers buf;
    buf.V0 = V0; buf.B0 = B0; buf.chain = chain; buf.Bc = Bc;
    buf.P0 = P0; buf.H = H; buf.Vk = Vk; buf.Pk = Pk; buf.Pv = Pv;
    ebm::cuda::RbmCdUpdate up;
    up.vW = vW; up.vb = vb; up.vc = vc;
    up.W_out = W_out; up.b_out = b_out; up.c_out = c_out;
    up.vW_out = vW_out; up.vb_out = vb_out; up.vc_out = vc_out;
    up.learning_rate = lr; up.momentum = momentum; up.weight_decay = decay;
    up.gradient_only = gradient_only != 0;
    up.stats = stats; up.recon = recon;
    ebm::RngView r;
    r.seed = seed;
    r.step = step;
    ebm::cuda::rbm_cd_update(P, buf, up, k, r, 0, static_cast<Precision>(precision));
  });
}

extern "C" const char* emu_rbm_scores(const float* W, const float* b, const float* c, int64_t n_v,
                                      int64_t n_h, const float* V, int64_t rows, float* Z,
                                      double* out, int pll) {
  return emu::guard([&] {
    const ebm::cuda::RbmDeviceParams P{W, b, c, n_v, n_h};
    if (pll)
      ebm::cuda::rbm_pseudo_log_likelihood(P, V, rows, Z, out, 0);
    else
      ebm::cuda::rbm_free_energy(P, V, rows, Z, out, 0);
  });
}
