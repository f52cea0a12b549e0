// ctypes entry point of csrc/cuda/layer_update.cu (see shim.h).
#include "cuda/cuda_api.h"
#include "shims/shim.h"

extern "C" const char* emu_layer_update(const float* X1, const float* M1, int64_t n1,
                                        const float* X2, const float* M2, int64_t n2,
                                        const float* bias, int64_t rows, int64_t n_out, float beta,
                                        float* field, float* prob, float* sample,
                                        uint32_t stream_id, uint64_t seed, uint32_t step,
                                        uint32_t chain_offset, int transposed1, int transposed2,
                                        int precision) {
  return emu::guard([&] {
    const ebm::cuda::LayerInput in1{X1, M1, n1, transposed1 != 0}, in2{X2, M2, n2, transposed2 != 0};
    const ebm::cuda::LayerOutputsCuda out{field, prob, sample};
    ebm::RngView r;
    r.seed = seed;
    r.step = step;
    r.chain_offset = chain_offset;
    ebm::cuda::layer_update(in1, in2, bias, rows, n_out, beta, out, stream_id, r, 0,
                            static_cast<ebm::cuda::Precision>(precision));
  });
}

extern "C" const char* emu_set_tile_policy(int policy) {
  return emu::guard([&] { ebm::cuda::set_gemm_tile_policy(policy); });
}
