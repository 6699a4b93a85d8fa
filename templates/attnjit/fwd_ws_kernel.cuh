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

  mbarrier_wait(q_full, 0);
  if (n_blocks > 0) {
    wait_full(k_full, 0);
    wgmma_fence();
    rows.issue_s(0);
    wgmma_wait<0>();
    release(k_empty, 0);
    float rescale[1][2];
    rows.softmax_step(p, 0, m0, diag, rescale);
    rows.pack_p();
  }
  for (int n = 1; n < n_blocks; ++n) {
    wait_full(k_full, n);
    wait_full(v_full, n - 1); // long landed: waiting between the two MMAs would fence them
    wgmma_fence();
    rows.issue_s(n);
    rows.issue_pv(n - 1);
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
    wgmma_fence();
    rows.issue_pv(n_blocks - 1);
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
