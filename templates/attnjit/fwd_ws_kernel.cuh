// Warp-specialized Hopper forward (sm_90a). Warpgroup 0 loads: one thread issues TMA copies of
// Q and of each K and V block into a STAGES-slot ring and the copies report on mbarriers;
// warpgroups 1.. compute, 64 query rows each, exactly as the cp.async wgmma kernel does
// (FwdWgmmaRows), but wait on a slot's "full" barrier instead of a CTA barrier and free it on
// its "empty" barrier. No thread that computes issues a load, and no barrier spans the CTA
// inside the loop, so one warpgroup's softmax runs while another's MMAs do.
#pragma once

#include <attnjit/fwd_block.cuh>
#include <attnjit/fwd_epilogue.cuh>
#include <attnjit/fwd_params.h>
#include <attnjit/fwd_wgmma_rows.cuh>
#include <attnjit/fwd_ws_traits.cuh>
#include <attnjit/tma.cuh>

namespace attnjit {

// Waits until the computing warps have freed ring slot `slot` (its empty barrier's phase of
// this pass over the ring), then fills it with one (BLOCK_N, COLS) tile starting at key `row`;
// the copies' bytes complete the slot's full barrier.
template <class Tile, int COLS>
__device__ __forceinline__ void load_slot(u32 ring, const TmaTensor& t, u32 full, u32 empty,
                                          int slot, u32 free_parity, int row, int kv_h, int b) {
  mbarrier_wait(empty + 8 * slot, free_parity);
  mbarrier_arrive_expect_tx(full + 8 * slot, Tile::kBytes);
  tma_load_tile<Tile, COLS>(ring + slot * Tile::kBytes, t, full + 8 * slot, row, kv_h, b);
}

// The loader: Q once, then K_n and V_n for every key block, each into slot n % STAGES once the
// computing warps have freed it (the first pass over the ring waits for nothing).
template <class K>
__device__ __forceinline__ void load_tiles(const FwdTmaParams& tma, u32 sQ, u32 sK, u32 sV,
                                           u32 bars, int m0, int h, int kv_h, int b, int n_blocks) {
  constexpr int S = K::kStages;
  const u32 q_full = bars, k_full = bars + 8, v_full = k_full + 8 * S, k_empty = v_full + 8 * S,
            v_empty = k_empty + 8 * S;
  mbarrier_arrive_expect_tx(q_full, K::QTile::kBytes);
  tma_load_tile<typename K::QTile, K::kDqk>(sQ, tma.q, q_full, m0, h, b);
  for (int n = 0; n < n_blocks; ++n) {
    const int slot = n % S;
    const u32 free_parity = ((n / S) & 1) ^ 1;
    load_slot<typename K::KTile, K::kDqk>(sK, tma.k, k_full, k_empty, slot, free_parity,
                                          n * K::kBlockN, kv_h, b);
    load_slot<typename K::VTile, K::kDv>(sV, tma.v, v_full, v_empty, slot, free_parity,
                                         n * K::kBlockN, kv_h, b);
  }
}

// Turns at the tensor cores for the computing warpgroups (FlashAttention-3's ping-pong): a
// warpgroup issues its MMAs only after the one before it, round-robin, has issued its own, so
// one warpgroup's MMAs run while the other's softmax does, rather than both contending for the
// tensor cores and then both leaving them idle through their softmax. Warpgroup w waits on
// barrier FIRST_ID + w (its own 128 threads plus the 128 of the warpgroup before it, which
// arrive). The last warpgroup opens the first turn and skips its final arrive, so every barrier
// is complete when the CTA exits; every warpgroup takes the same number of turns.
template <int WARPGROUPS, int FIRST_ID> struct MmaTurns {
  int wg;
  __device__ __forceinline__ void open() const {
    if (WARPGROUPS > 1 && wg == WARPGROUPS - 1) named_barrier_arrive(FIRST_ID, 256);
  }
  __device__ __forceinline__ void take() const {
    if (WARPGROUPS > 1) named_barrier_sync(FIRST_ID + wg, 256);
  }
  __device__ __forceinline__ void pass(bool last) const {
    if (WARPGROUPS > 1 && !(last && wg == WARPGROUPS - 1))
      named_barrier_arrive(FIRST_ID + (wg + 1) % WARPGROUPS, 256);
  }
};

template <class K>
__global__ void __launch_bounds__(K::kLaunchThreads, K::Registers::kCtasPerSm)
    flash_fwd_ws_kernel(const __grid_constant__ FwdParams p,
                        const __grid_constant__ FwdTmaParams tma) {
  constexpr int S = K::kStages;
  extern __shared__ __align__(1024) unsigned char smem[];
  const u32 sQ = (smem_u32(smem) + 1023) & ~1023u; // (BLOCK_M, Dqk), later O (BLOCK_M, Dv)
  const u32 sK = sQ + K::kQOSpan;                  // STAGES x (BLOCK_N, Dqk)
  const u32 sV = sK + S * K::KTile::kBytes;        // STAGES x (BLOCK_N, Dv)
  const u32 bars = sV + S * K::VTile::kBytes;      // see FwdWsTraits::kBarrierBytes
  const u32 q_full = bars, k_full = bars + 8, v_full = k_full + 8 * S, k_empty = v_full + 8 * S,
            v_empty = k_empty + 8 * S;

  const int tid = threadIdx.x;
  const FwdBlock<K::kBlockM, K::kBlockN, K::kCausal> block(p);
  const int m0 = block.m0, diag = block.diag, n_blocks = block.n_blocks;

  if (tid == 0) {
    mbarrier_init(q_full, 1);
    for (int slot = 0; slot < S; ++slot) {
      mbarrier_init(k_full + 8 * slot, 1); // the loader's arrive; TMA's bytes complete it
      mbarrier_init(v_full + 8 * slot, 1);
      mbarrier_init(k_empty + 8 * slot, K::kWarps); // one arrive per computing warp
      mbarrier_init(v_empty + 8 * slot, K::kWarps);
    }
    fence_mbarrier_init();
  }
  __syncthreads();

  if (tid < 128) {
    K::Registers::give();
    if (tid == 0) {
      prefetch_tensor_map(tma.q);
      if (n_blocks > 0) { // with no key (seqlen_k = 0) the K and V maps are left empty
        prefetch_tensor_map(tma.k);
        prefetch_tensor_map(tma.v);
      }
      load_tiles<K>(tma, sQ, sK, sV, bars, m0, block.h, block.kv_h, block.b, n_blocks);
    }
    return;
  }
  K::Registers::take();

  const int ctid = tid - 128, lane = ctid % 32, warp = ctid / 32;
  FwdWgmmaRows<K> rows(sQ, sK, sV, warp, lane);
  auto wait_full = [](u32 full, int n) { mbarrier_wait(full + 8 * (n % S), (n / S) & 1); };
  auto release = [lane](u32 empty, int n) {
    if (lane == 0) mbarrier_arrive(empty + 8 * (n % S));
  };

  // IDs 2.. (0 is __syncthreads, 1 the epilogue's ComputeBarrier); n_blocks + 1 turns each.
  const MmaTurns<K::kComputeWarpgroups, 2> turns{warp / 4};
  mbarrier_wait(q_full, 0);
  if (n_blocks > 0) {
    turns.open();
    wait_full(k_full, 0);
    turns.take();
    wgmma_fence();
    rows.issue_s(0);
    turns.pass(false);
    wgmma_wait<0>();
    release(k_empty, 0);
    float rescale[1][2];
    rows.softmax_step(p, 0, m0, diag, rescale);
    rows.pack_p();
  }
  for (int n = 1; n < n_blocks; ++n) {
    wait_full(k_full, n);
    wait_full(v_full, n - 1); // long landed: waiting between the two MMAs would fence them
    turns.take();
    wgmma_fence();
    rows.issue_s(n);
    rows.issue_pv(n - 1);
    turns.pass(false);
    wgmma_wait<1>(); // S_n done; P_{n-1} V_{n-1} may still run
    release(k_empty, n);
    float rescale[1][2];
    rows.softmax_step(p, n, m0, diag, rescale);
    wgmma_wait<0>();
    release(v_empty, n - 1);
    rows.next_p(rescale);
  }
  if (n_blocks > 0) {
    wait_full(v_full, n_blocks - 1);
    turns.take();
    wgmma_fence();
    rows.issue_pv(n_blocks - 1);
    turns.pass(true);
    wgmma_wait<0>();
    rows.hold_registers();
  }

  rows.softmax.finish();
  using ComputeBarrier = NamedBarrier<1, K::kThreads>;
  ComputeBarrier::sync(); // every warpgroup is done with sQ before O is staged there
  write_output<K, ComputeBarrier>(p, rows.o, rows.softmax, sQ, block.b, block.h, m0,
                                  rows.row_in_warp, ctid);
}

} // namespace attnjit
