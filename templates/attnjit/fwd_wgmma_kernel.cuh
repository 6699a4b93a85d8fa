// Hopper forward (sm_90a): the FlashAttention-2 loop on warpgroup MMAs. One CTA per
// (BLOCK_M query rows, batch, head); each warpgroup owns 64 rows; K and V stream through a
// STAGES-slot cp.async ring. Q, K and V sit in 128-byte
// swizzled shared memory and feed wgmma through descriptors; P goes back in from registers.
// Step n issues S_n = Q K_n^T and then O += P_{n-1} V_{n-1}, so the softmax of S_n runs while
// the tensor cores still work on P_{n-1} V_{n-1} (FlashAttention-3's intra-warpgroup overlap).
#pragma once

#include <attnjit/fwd_block.cuh>
#include <attnjit/fwd_epilogue.cuh>
#include <attnjit/fwd_params.h>
#include <attnjit/fwd_wgmma_rows.cuh>
#include <attnjit/fwd_wgmma_traits.cuh>

namespace attnjit {

template <class K>
__global__ void __launch_bounds__(K::kThreads, 1)
    flash_fwd_wgmma_kernel(const __grid_constant__ FwdParams p) {
  using QTile = typename K::QTile;
  using KTile = typename K::KTile;
  using VTile = typename K::VTile;

  extern __shared__ __align__(1024) unsigned char smem[];
  const u32 sQ = (smem_u32(smem) + 1023) & ~1023u; // (BLOCK_M, Dqk), later O (BLOCK_M, Dv)
  const u32 sK = sQ + K::kQOSpan;                  // STAGES x (BLOCK_N, Dqk)
  const u32 sV = sK + K::kStages * KTile::kBytes;  // STAGES x (BLOCK_N, Dv)

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const FwdBlock<K::kBlockM, K::kBlockN, K::kCausal> block(p);
  const int b = block.b, h = block.h, m0 = block.m0, diag = block.diag, n_blocks = block.n_blocks;
  const unsigned short *q = block.q, *k = block.k, *v = block.v;

  // Commit group g holds K_g and V_{g-1} (group 0 also Q): what step g reads first.
  auto load_group = [&](int g) {
    if (g < n_blocks)
      KTile::template load_async<K::kThreads>(sK + (g % K::kStages) * KTile::kBytes,
                                              k + g * K::kBlockN * p.k_seq_stride, p.k_seq_stride,
                                              p.seqlen_k - g * K::kBlockN, tid);
    if (g >= 1 && g - 1 < n_blocks)
      VTile::template load_async<K::kThreads>(
          sV + ((g - 1) % K::kStages) * VTile::kBytes, v + (g - 1) * K::kBlockN * p.v_seq_stride,
          p.v_seq_stride, p.seqlen_k - (g - 1) * K::kBlockN, tid);
    cp_async_commit();
  };
  // Waits for groups up to the one STAGES - 2 behind the newest, then makes what cp.async wrote
  // visible to every warpgroup's wgmma.
  auto landed = [] {
    cp_async_wait<K::kStages - 2>();
    fence_proxy_async();
    __syncthreads();
  };

  FwdWgmmaRows<K> rows(sQ, sK, sV, warp, lane);

  // Slots: K_n and V_n in n % STAGES. Step n, behind its barrier, loads group n + STAGES - 1:
  // K over K_{n-1} (whose S finished in step n-1) and V over V_{n-2} (whose P V finished there).
  QTile::template load_async<K::kThreads>(sQ, q, p.q_seq_stride, p.seqlen_q - m0, tid);
#pragma unroll
  for (int g = 0; g < K::kStages - 1; ++g)
    load_group(g);
  if (n_blocks > 0) {
    landed(); // Q, K_0
    load_group(K::kStages - 1);
    wgmma_fence();
    rows.issue_s(0);
    wgmma_wait<0>();
    float rescale[1][2];
    rows.softmax_step(p, 0, m0, diag, rescale);
    rows.pack_p();
  }
  for (int n = 1; n < n_blocks; ++n) {
    landed(); // K_n and V_{n-1}
    load_group(n + K::kStages - 1);
    wgmma_fence();
    rows.issue_s(n);
    rows.issue_pv(n - 1);
    wgmma_wait<1>(); // S_n done; P_{n-1} V_{n-1} may still run
    float rescale[1][2];
    rows.softmax_step(p, n, m0, diag, rescale);
    wgmma_wait<0>();
    rows.next_p(rescale);
  }
  if (n_blocks > 0) {
    cp_async_wait<0>(); // V_last
    fence_proxy_async();
    __syncthreads();
    wgmma_fence();
    rows.issue_pv(n_blocks - 1);
    wgmma_wait<0>();
    rows.hold_registers();
  }

  rows.softmax.finish();
  cp_async_wait<0>();
  __syncthreads(); // every warpgroup is done with sQ before O is staged there
  write_output<K>(p, rows.o, rows.softmax, sQ, b, h, m0, rows.row_in_warp, tid);
}

} // namespace attnjit
