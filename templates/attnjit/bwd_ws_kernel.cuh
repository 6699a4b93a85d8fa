// Warp-specialized Hopper backward, dK/dV kernel (sm_90a): the wgmma dK/dV kernel's grid, outputs
// and per-step math (BwdWgmmaKeys), with the memory traffic taken off the computing warps.
// Warpgroup 0 moves data: one thread issues TMA copies of this CTA's K and V once and of each
// step's Q and dO into a ring of kStages (2 or 3) slots, and one warp copies the step's LSE and
// D rows; both report on the slot's "full" mbarrier. Warpgroups 1.. compute, 64 keys each, wait
// on "full" and free the slot on its "empty" barrier once their MMAs have read it. Each leaves
// its dQ in shared memory, in MMA fragment order, and goes on; one more loader thread adds it to
// the fp32 workspace (kept in that order) with a bulk reduce (FlashAttention-3's answer to dQ's
// atomics stalling the MMA warps). The only barrier inside the loop spans the computing
// warpgroups: dQ = dS K needs every warpgroup's dS^T.
#pragma once

#include <attnjit/bwd_block.cuh>
#include <attnjit/bwd_dkdv_store.cuh>
#include <attnjit/bwd_params.h>
#include <attnjit/bwd_wgmma_keys.cuh>
#include <attnjit/bwd_ws_traits.cuh>
#include <attnjit/tma.cuh>

namespace attnjit {

// One step's Q and dO rows, by TMA; rows past Sq arrive as zeros.
template <class K>
__device__ __forceinline__ void load_q_do(const BwdTmaParams& tma, u32 sQ_i, u32 sDo_i, u32 full,
                                          int m0, int h, int b) {
  mbarrier_arrive_expect_tx(full, K::QTile::kBytes + K::DoTile::kBytes);
  tma_load_tile<typename K::QTile, K::kDqk>(sQ_i, tma.q, full, m0, h, b);
  tma_load_tile<typename K::DoTile, K::kDv>(sDo_i, tma.dout, full, m0, h, b);
}

// One step's LSE and D rows by one warp, 64 + 64 floats: rows past Sq read as 0 (their P is 0
// whatever LSE says). Every lane arrives on `full` once its stores are done.
template <int BLOCK_M>
__device__ __forceinline__ void load_row_stats(const BwdParams& p, float* dst, u32 full, int b,
                                               int h, int m0, int lane) {
  const i64 row0 = (static_cast<i64>(b) * p.num_heads + h) * p.seqlen_q + m0;
#pragma unroll
  for (int i = lane; i < 2 * BLOCK_M; i += 32) {
    const int r = i % BLOCK_M;
    dst[i] = m0 + r < p.seqlen_q ? (i < BLOCK_M ? p.lse : p.dsum)[row0 + r] : 0.f;
  }
  mbarrier_arrive(full);
}

// This CTA's dQ additions have landed (waited for): one more CTA done for its (batch, KV head),
// so the dQ conversion may take that head's rows while other CTAs still run.
__device__ __forceinline__ void mark_dq_landed(const BwdParams& p, int b, int kv_h) {
  fence_proxy_async_global();
  add_release(p.kv_done + b * p.num_kv_heads + kv_h, 1);
}

template <class K>
__global__ void __launch_bounds__(K::kLaunchThreads, K::Registers::kCtasPerSm)
    flash_bwd_dkdv_ws_kernel(const __grid_constant__ BwdParams p,
                             const __grid_constant__ BwdTmaParams tma) {
  using T = typename K::T;
  using QTile = typename K::QTile;
  using DoTile = typename K::DoTile;
  constexpr int S = K::kStages, BM = K::kBlockM;
  extern __shared__ __align__(1024) unsigned char smem[];
  const u32 sK = (smem_u32(smem) + 1023) & ~1023u; // (BLOCK_N, Dqk)
  const u32 sV = sK + K::KTile::kBytes;            // (BLOCK_N, Dv)
  const u32 sQ = sV + K::VTile::kBytes;            // S x (64, Dqk)
  const u32 sDo = sQ + S * QTile::kBytes;          // S x (64, Dv)
  const u32 sDs = sDo + S * DoTile::kBytes;        // 2 x (BLOCK_N, 64) dS^T
  const u32 sDq = sDs + 2 * K::DsTile::kBytes;     // warpgroups x (64, kDqCols) fp32
  const u32 sStats = sDq + K::kDqBytes;            // S x {LSE, D} x 64 fp32
  const u32 bars = sStats + S * 2 * BM * 4;        // see BwdWsTraits::kBarrierBytes
  const u32 kv_full = bars, full = bars + 8, empty = full + 8 * S, dq_full = empty + 8 * S,
            dq_empty = dq_full + 8 * K::kWarpgroups;
  constexpr int kDqTileBytes = 64 * K::kDqCols * 4;
  float* stats = reinterpret_cast<float*>(smem + (sStats - smem_u32(smem)));

  const int tid = threadIdx.x;
  const BwdBlock<BM, K::kBlockN, K::kCausal> block(p);
  const int b = block.b, kv_h = block.kv_h, n0 = block.n0, steps = block.steps;

  if (tid == 0) {
    mbarrier_init(kv_full, 1);
    for (int slot = 0; slot < S; ++slot) {
      mbarrier_init(full + 8 * slot, 1 + 32);     // the TMA thread's arrive, one per stats lane
      mbarrier_init(empty + 8 * slot, K::kWarps); // one arrive per computing warp
    }
    for (int wg = 0; wg < K::kWarpgroups; ++wg) {
      mbarrier_init(dq_full + 8 * wg, 128); // every thread of the warpgroup, once stored
      mbarrier_init(dq_empty + 8 * wg, 1);  // the reducing thread, once TMA has read it
    }
    fence_mbarrier_init();
  }
  __syncthreads();

  if (tid < 128) {
    K::Registers::give();
    // Launched to overlap the D pre-pass: K, V, Q and dO predate it, so the TMA thread starts at
    // once; the warps reading D or adding to the dQ accumulator wait for it. (Every CTA waits,
    // so this kernel finishing means the pre-pass has: the kernels after it rely on that.) The
    // next kernel may launch only after the wait, so that the dQ conversion, which reads
    // kv_done while this kernel runs, never sees the counters before the pre-pass zeroed them.
    if (tid >= 32) {
      wait_for_prior_kernels();
      allow_next_kernel();
    }
    if (steps == 0) { // nothing waits for K and V
      if (K::kAccumulateDq && tid == 64) mark_dq_landed(p, b, kv_h);
      return;
    }
    auto wait_free = [&](int step) { mbarrier_wait(empty + 8 * (step % S), ((step / S) & 1) ^ 1); };
    if (tid == 0) {
      prefetch_tensor_map(tma.q);
      prefetch_tensor_map(tma.dout);
      mbarrier_arrive_expect_tx(kv_full, K::KTile::kBytes + K::VTile::kBytes);
      tma_load_tile<typename K::KTile, K::kDqk>(sK, tma.k, kv_full, n0, kv_h, b);
      tma_load_tile<typename K::VTile, K::kDv>(sV, tma.v, kv_full, n0, kv_h, b);
      for (int step = 0; step < steps; ++step) {
        wait_free(step);
        const int slot = step % S;
        load_q_do<K>(tma, sQ + slot * QTile::kBytes, sDo + slot * DoTile::kBytes, full + 8 * slot,
                     block.m0_of(step), block.head_of(p, step), b);
      }
    } else if (tid / 32 == 1) {
      for (int step = 0; step < steps; ++step) {
        wait_free(step);
        const int slot = step % S;
        load_row_stats<BM>(p, stats + slot * 2 * BM, full + 8 * slot, b, block.head_of(p, step),
                           block.m0_of(step), tid % 32);
      }
    } else if (K::kAccumulateDq && tid == 64) {
      const int m_blocks = (p.seqlen_q + 63) / 64;
      for (int step = 0; step < steps; ++step) {
        const i64 bh = b * p.num_heads + block.head_of(p, step);
        // This step's tiles of the workspace, one per dQ slice; over own keys, every
        // warpgroup's partial sum goes to the one tile.
        float* dst = p.dq_accum + (bh * m_blocks + block.m0_of(step) / 64) * 64 * K::kDqk;
        for (int wg = 0; wg < K::kWarpgroups; ++wg) {
          mbarrier_wait(dq_full + 8 * wg, step & 1);
          const int slice = K::kDqOverOwnKeys ? 0 : wg;
          bulk_reduce_add_f32(dst + slice * 64 * K::kDqCols, sDq + wg * kDqTileBytes, kDqTileBytes);
          bulk_commit_group();
          bulk_wait_group_read<0>();
          mbarrier_arrive(dq_empty + 8 * wg);
        }
      }
      bulk_wait_group<0>(); // the additions land before the CTA's shared memory goes away
      mark_dq_landed(p, b, kv_h);
    }
    return;
  }
  K::Registers::take();

  const int ctid = tid - 128, lane = ctid % 32, warp = ctid / 32, wg = warp / 4;
  BwdWgmmaKeys<K> keys(sK, sV, warp, lane);
  if (steps > 0) {
    mbarrier_wait(kv_full, 0);
    keys.load_kv_fragments();
  }
  for (int step = 0; step < steps; ++step) {
    const int slot = step % S;
    mbarrier_wait(full + 8 * slot, (step / S) & 1);
    const float* lse = stats + slot * 2 * BM;
    keys.template step<NamedBarrier<1, K::kThreads>>(
        p, sQ + slot * QTile::kBytes, sDo + slot * DoTile::kBytes, lse, lse + BM,
        sDs + (step & 1) * K::DsTile::kBytes, n0, block.m0_of(step), block.diag,
        [&] {
          if (lane == 0) mbarrier_arrive(empty + 8 * slot);
        },
        [&](const float(&dq)[K::kDqCols / 8][4]) {
          mbarrier_wait(dq_empty + 8 * wg, (step & 1) ^ 1); // last step's dQ has been read
          keys.store_dq(sDq + wg * kDqTileBytes, dq);
          fence_proxy_async(); // visible to the TMA reduce
          mbarrier_arrive(dq_full + 8 * wg);
        });
  }
  if (p.kv_splits == 1)
    store_dkdv<T>(p, keys.dk, keys.dv, b, kv_h, n0 + keys.key0, lane);
  else
    store_dkdv_partial(p, keys.dk, keys.dv, block.split, b, kv_h, n0 + keys.key0, lane);
}

} // namespace attnjit
