// Reusable per-thread scratch buffers for the CPU kernels: a kernel call asks for slot
// k of at least n elements and gets memory that is neither zeroed nor freed, so a hot
// loop of calls does no allocation and no page faults after the first.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>

namespace ebm::cpu {

// One slot per live buffer of a kernel call (slots of different element types are
// separate pools). A kernel must not hold a slot across a call that uses the same one.
enum Slot : int {
  kSlotRowIndex = 0,   // layer_forward: positions of the ones of each row (per OpenMP thread)
  kSlotGemm,           // layer_forward: sgemm output of the real-valued path
  kSlotPh0,            // cd_update: p(h | data)
  kSlotHidden,         // cd_update: hidden samples
  kSlotChain,          // cd_update: CD chain visibles
  kSlotPhk,            // cd_update: p(h | chain)
  kSlotDenseGrad,      // cd_update: V0^T p(h|V0) for real-valued data
  kSlotChainLists,     // cd_update: column lists of the chain visibles
  kSlotDataLists,      // cd_update: column lists of binary data
  kSlotRecon,          // cd_update: mean-field reconstruction
  kSlotSums,           // cd_update: float64 column sums
  kSlotBiasGrad,       // cd_update: bias gradients
  kSlotField,          // scores: hidden field
  kSlotRowErr,         // cd_update: per-row reconstruction error
  kSlotTable,          // layer_update: subset-sum table of M
  kSlotTable2,         // layer_update: subset-sum table of the second neighbour's M
  kSlotTableVH,        // gibbs_chains: table of W (v -> h)
  kSlotTableHV,        // gibbs_chains: table of W^T (h -> v)
  kSlotStepStats,      // cd_update: per-block largest |W|, |velocity|
  kSlotRowPositions,   // cd_update: positions of the ones per row (column_lists)
  kSlotPairDiff,       // cd_update: ph0 - phk for paired CD rows
  kSlotPairLists,      // cd_update: per-unit both/only lists (per OpenMP thread)
  kSlotSpinBlock,      // ising_chains: spins of 16 chains, site-major
  kSlotFieldBlock,     // ising_chains: their local fields
  kSlotSpinFloat,      // ising_chains (field refresh), bm_step (lazy fields): spins as floats
  kSlotSpinWide,       // ising_energies: a block's spins as int32 (CSR) or float64 (dense)
  kSlotLatticeUniforms, // ising_lattice: uniforms of one row (per OpenMP thread)
  kSlotLatticeRow,     // ising_lattice: a neighbour row with its periodic ends
  kSlotRecallSpins,    // hopfield_recall: a tile of cues as floats (per OpenMP thread)
  kSlotRecallFields,   // hopfield_recall: their fields, lane-major blocks
  kSlotRecallPicks,    // hopfield_recall: the tile's spin-table picks (per OpenMP thread)
  kSlotSpinTable,      // hopfield_recall: the spin table of J built by the call (shared)
  kSlotBmCouplings,    // bm_step: J and h of the Ising form (float32, shared)
  kSlotBmBase,         // bm_step: h + J s over the clamped units, one block (per OpenMP thread)
  kSlotBmMasks,        // bm_step: the final states as bit masks, 16 chains per uint16 (shared)
  kSlotBmCounts,       // bm_step: pair counts (int32, shared), a gradient row (double, per thread)
  kSlotBmFractions,    // bm_step: count / rows for every count (shared)
  kSlotCount
};

// Buffers start on a cache line: the kernels read and write them in 64-byte vectors, and
// with new[]'s 16-byte alignment every such access could straddle two lines (how a
// buffer happened to fall varied from process to process: the BM epoch took 5.9 or 7.5 ms
// depending on the run). Whole lines also keep two threads' buffers off a shared line.
constexpr std::size_t kScratchAlign = 64;

struct AlignedFree {
  void operator()(void* p) const { ::operator delete[](p, std::align_val_t{kScratchAlign}); }
};

template <class T>
T* scratch(int slot, std::size_t n) {
  static_assert(std::is_trivially_default_constructible_v<T> && std::is_trivially_destructible_v<T>,
                "scratch holds plain numbers");
  constexpr int kSlots = kSlotCount;
  struct Pool {
    std::unique_ptr<T[], AlignedFree> buf[kSlots];
    std::size_t cap[kSlots] = {};
  };
  thread_local Pool pool;
  if (n == 0) n = 1;
  if (pool.cap[slot] < n) {
    pool.buf[slot].reset();  // free first: peak memory is one buffer, not two
    // rounded up to whole lines; std::bad_alloc -> MemoryError in Python
    const std::size_t bytes = (n * sizeof(T) + kScratchAlign - 1) / kScratchAlign * kScratchAlign;
    pool.buf[slot].reset(static_cast<T*>(::operator new[](bytes, std::align_val_t{kScratchAlign})));
    pool.cap[slot] = n;
  }
  return pool.buf[slot].get();
}

}  // namespace ebm::cpu
