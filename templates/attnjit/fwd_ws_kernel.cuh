// Warp-specialized Hopper forward (sm_90a). Warpgroup 0 loads: one thread issues TMA copies of
// Q and of each K and V block into a STAGES-slot ring and the copies report on mbarriers;
// warpgroups 1.. compute, 64 query rows each, exactly as the cp.async wgmma kernel does
// (FwdWgmmaRows), but wait on a slot's "full" barrier instead of a CTA barrier and free it on
// its "empty" barrier. No thread that computes issues a load, and no barrier spans the CTA
// inside the loop, so one warpgroup's softmax runs while another's MMAs do.
//
// A CTA walks tiles blockIdx.x, blockIdx.x + gridDim.x, ... (one when the grid has a CTA per
// tile). The ring and Q's barriers carry on from tile to tile, so the loader fetches the next
// tile's Q and first K/V blocks while the computing warpgroups still finish this one.
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

// Where the ring's and Q's mbarriers are, after the tiles (FwdWsTraits::kBarrierBytes).
template <int STAGES> struct FwdWsBarriers {
  u32 q_full, q_empty, k_full, v_full, k_empty, v_empty; // K/V: one barrier per slot, 8 B apart
  __device__ __forceinline__ explicit FwdWsBarriers(u32 base)
      : q_full(base), q_empty(base + 8), k_full(base + 16), v_full(k_full + 8 * STAGES),
        k_empty(v_full + 8 * STAGES), v_empty(k_empty + 8 * STAGES) {}
};

// The loader: per tile, Q once the computing warps have let go of the last one, then K_n and V_n
// for every key block into slot step % STAGES, `step` counting this CTA's key blocks over all
// its tiles, once the computing warps have freed the slot (the first pass waits for nothing).
template <class K>
__device__ __forceinline__ void load_tiles(const FwdParams& p, const FwdTmaParams& tma, u32 sQ,
                                           u32 sK, u32 sV, const FwdWsBarriers<K::kStages>& bar) {
  constexpr int S = K::kStages;
  const int tiles = p.num_m_blocks * p.batch * p.num_heads;
  int step = 0;
  for (int tile = blockIdx.x, j = 0; tile < tiles; tile += gridDim.x, ++j) {
    const FwdBlock<K::kBlockM, K::kBlockN, K::kCausal> block(p, tile);
    if (j > 0) mbarrier_wait(bar.q_empty, (j - 1) & 1);
    mbarrier_arrive_expect_tx(bar.q_full, K::QTile::kBytes);
    tma_load_tile<typename K::QTile, K::kDqk>(sQ, tma.q, bar.q_full, block.m0, block.h, block.b);
    for (int n = 0; n < block.n_blocks; ++n, ++step) {
      const int slot = step % S;
      const u32 free_parity = ((step / S) & 1) ^ 1;
      load_slot<typename K::KTile, K::kDqk>(sK, tma.k, bar.k_full, bar.k_empty, slot, free_parity,
                                            n * K::kBlockN, block.kv_h, block.b);
      load_slot<typename K::VTile, K::kDv>(sV, tma.v, bar.v_full, bar.v_empty, slot, free_parity,
                                           n * K::kBlockN, block.kv_h, block.b);
    }
    if (!K::kWalkTiles) break;
  }
}

// Turns at the tensor cores for the computing warpgroups (FlashAttention-3's ping-pong): a
// warpgroup issues its MMAs only after the one before it, round-robin, has issued its own, so
// one warpgroup's MMAs run while the other's softmax does, rather than both contending for the
// tensor cores and then both leaving them idle through their softmax. Warpgroup w waits on
// barrier FIRST_ID + w (its own 128 threads plus the 128 of the warpgroup before it, which
// arrive). Per tile, the last warpgroup opens the first turn and skips its final arrive, so
// every barrier is complete between tiles; every warpgroup takes the same number of turns.
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
  const u32 sQ = (smem_u32(smem) + 1023) & ~1023u;          // (BLOCK_M, Dqk)
  const u32 sK = sQ + K::kQOSpan;                           // STAGES x (BLOCK_N, Dqk)
  const u32 sV = sK + S * K::KTile::kBytes;                 // STAGES x (BLOCK_N, Dv)
  const u32 sO = K::kOwnO ? sV + S * K::VTile::kBytes : sQ; // (BLOCK_M, Dv) on its way out
  const FwdWsBarriers<S> bar(sV + S * K::VTile::kBytes + (K::kOwnO ? K::kOSpan : 0));

  const int tid = threadIdx.x;
  if (tid == 0) {
    mbarrier_init(bar.q_full, 1);          // the loader's arrive; TMA's bytes complete it
    mbarrier_init(bar.q_empty, K::kWarps); // one arrive per computing warp
    for (int slot = 0; slot < S; ++slot) {
      mbarrier_init(bar.k_full + 8 * slot, 1);
      mbarrier_init(bar.v_full + 8 * slot, 1);
      mbarrier_init(bar.k_empty + 8 * slot, K::kWarps);
      mbarrier_init(bar.v_empty + 8 * slot, K::kWarps);
    }
    fence_mbarrier_init();
  }
  __syncthreads();

  if (tid < 128) {
    K::Registers::give();
    if (tid == 0) {
      prefetch_tensor_map(tma.q);
      if (!K::kOwnO) prefetch_tensor_map(tma.o);
      if (p.seqlen_k > 0) { // with no key the K and V maps are left empty
        prefetch_tensor_map(tma.k);
        prefetch_tensor_map(tma.v);
      }
      load_tiles<K>(p, tma, sQ, sK, sV, bar);
    }
    return;
  }
  K::Registers::take();

  const int ctid = tid - 128, lane = ctid % 32, warp = ctid / 32;
  // Ring step `step`: slot step % S, in its (step / S)-th pass.
  auto wait_full = [](u32 full, int step) { mbarrier_wait(full + 8 * (step % S), (step / S) & 1); };
  auto release = [lane](u32 empty, int step) {
    if (lane == 0) mbarrier_arrive(empty + 8 * (step % S));
  };
  // IDs 2.. (0 is __syncthreads, 1 the ComputeBarrier); n_blocks + 1 turns a tile.
  const MmaTurns<K::kComputeWarpgroups, 2> turns{warp / 4};
  constexpr int kEpilogueBarrier = 2 + K::kComputeWarpgroups; // one per warpgroup, after the turns'
  using ComputeBarrier = NamedBarrier<1, K::kThreads>;
  const int tiles = p.num_m_blocks * p.batch * p.num_heads;
  int step0 = 0; // ring steps of this CTA's earlier tiles
  for (int tile = blockIdx.x, j = 0; tile < tiles; tile += gridDim.x, ++j) {
    const FwdBlock<K::kBlockM, K::kBlockN, K::kCausal> block(p, tile);
    const int m0 = block.m0, diag = block.diag, n_blocks = block.n_blocks;
    FwdWgmmaRows<K> rows(sQ, sK, sV, warp, lane);

    mbarrier_wait(bar.q_full, j & 1);
    if (n_blocks > 0) {
      turns.open();
      wait_full(bar.k_full, step0);
      turns.take();
      wgmma_fence();
      rows.issue_s(step0);
      turns.pass(false);
      wgmma_wait<0>();
      release(bar.k_empty, step0);
      float rescale[1][2];
      rows.softmax_step(p, 0, m0, diag, rescale);
      rows.pack_p();
    }
    for (int n = 1; n < n_blocks; ++n) {
      const int step = step0 + n;
      wait_full(bar.k_full, step);
      wait_full(bar.v_full, step - 1); // long landed: waiting between the MMAs would fence them
      turns.take();
      wgmma_fence();
      rows.issue_s(step);
      rows.issue_pv(step - 1);
      turns.pass(false);
      wgmma_wait<1>(); // S_n done; P_{n-1} V_{n-1} may still run
      release(bar.k_empty, step);
      float rescale[1][2];
      rows.softmax_step(p, n, m0, diag, rescale);
      wgmma_wait<0>();
      release(bar.v_empty, step - 1);
      rows.next_p(rescale);
    }
    // Every S MMA is done: the loader may bring the next tile's Q, unless O is staged there.
    if (K::kOwnO && lane == 0) mbarrier_arrive(bar.q_empty);
    if (n_blocks > 0) {
      const int last = step0 + n_blocks - 1;
      wait_full(bar.v_full, last);
      turns.take();
      wgmma_fence();
      rows.issue_pv(last);
      turns.pass(true);
      wgmma_wait<0>();
      release(bar.v_empty, last);
      rows.hold_registers();
    }
    step0 += n_blocks;

    rows.softmax.finish();
    if constexpr (K::kOwnO) {
      // Every warpgroup is done with sO (the last tile's O) before O is staged. This barrier
      // also lines the warpgroups up for the next tile's turns: each warpgroup writing its
      // own rows alone, with or without the turns carried across tiles, measured 2-3% slower
      // at d128 and 2-6% at 192/128 (docs/PERF.md, session 9).
      ComputeBarrier::sync();
      stage_output<K>(p, rows.o, rows.softmax, sO, block.b, block.h, m0, rows.row_in_warp, lane);
      ComputeBarrier::sync();
      store_o_tile<typename K::OTile, K::kBlockM, K::kThreads>(p, sO, block.b, block.h, m0, ctid);
    } else {
      // O is staged in this warpgroup's own Q rows (OTmaTile's 64-row slice of each column
      // group is the same bytes as QTile's), which only its own MMAs read, and one of its
      // threads stores them with TMA: the next tile's Q may land as soon as TMA has read them
      // (192/128 S2048 H128: 656-658 vs 650 TFLOP/s with the warps' own stores, d256 -0.5%;
      // session 10), and no barrier spans the warpgroups (d256: 624 vs 602 with one, session 9).
      const int own = kEpilogueBarrier + warp / 4; // over this warpgroup
      named_barrier_sync(own, 128);                // this warpgroup's MMAs are done with its Q rows
      stage_output<K, typename K::OTmaTile>(p, rows.o, rows.softmax, sO, block.b, block.h, m0,
                                            rows.row_in_warp, lane);
      fence_proxy_async(); // the staged rows are visible to TMA
      named_barrier_sync(own, 128);
      if (ctid % 128 == 0) {
        const int row0 = (warp / 4) * 64;
        tma_store_tile<typename K::OTmaTile, K::kDv>(tma.o, sO, row0, m0 + row0, block.h, block.b);
        bulk_commit_group();
        bulk_wait_group_read<0>();
        mbarrier_arrive(bar.q_empty, 4); // for the warpgroup's four warps (FwdWsTraits)
      }
    }
    if (!K::kWalkTiles) break;
  }
  if (!K::kOwnO && ctid % 128 == 0) bulk_wait_group<0>(); // the TMA stores have landed
}

} // namespace attnjit
