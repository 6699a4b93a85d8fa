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
#include <attnjit/fwd_softmax.cuh>
#include <attnjit/fwd_wgmma_traits.cuh>

namespace attnjit {

template <class K>
__global__ void __launch_bounds__(K::kThreads, 1)
    flash_fwd_wgmma_kernel(const __grid_constant__ FwdParams p) {
  using T = typename K::T;
  using QTile = typename K::QTile;
  using KTile = typename K::KTile;
  using VTile = typename K::VTile;
  constexpr int NT = K::kNTiles, DT = K::kDTiles;

  extern __shared__ __align__(1024) unsigned char smem[];
  const u32 sQ = (smem_u32(smem) + 1023) & ~1023u; // (BLOCK_M, Dqk), later O (BLOCK_M, Dv)
  const u32 sK = sQ + K::kQOSpan;                  // STAGES x (BLOCK_N, Dqk)
  const u32 sV = sK + K::kStages * KTile::kBytes;  // STAGES x (BLOCK_N, Dv)

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, warpgroup = warp / 4;
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

  // This warpgroup's 64 rows of Q; K and V tiles whole. K-major operands step 32 bytes per k16
  // within a 128-byte row and a whole group every 4 steps; V steps 16 rows (2048 bytes).
  const u32 sQ_wg = sQ + warpgroup * 64 * 128;
  auto q_desc = [&](int kk) {
    return wgmma_desc(sQ_wg + (kk / 4) * QTile::kGroupBytes + (kk % 4) * 32, 16, 1024);
  };
  auto k_desc = [&](int n, int kk) {
    return wgmma_desc(sK + (n % K::kStages) * KTile::kBytes + (kk / 4) * KTile::kGroupBytes +
                          (kk % 4) * 32,
                      16, 1024);
  };
  auto v_desc = [&](int n, int kp) {
    return wgmma_desc(sV + (n % K::kStages) * VTile::kBytes + kp * 16 * 128, VTile::kGroupBytes,
                      1024);
  };

  const int row_in_warp = warp * 16; // first of this warp's 16 rows within the block
  float o[1][DT][4] = {};            // (16, Dv) per warp, MMA C layout
  float s[1][NT][4];                 // S_n, then P_n in fp32
  u32 pf[K::kPSteps][4];             // P_{n-1}, A fragments of P V
  OnlineSoftmax<1> softmax;
  softmax.init();

  auto issue_s = [&](int n) {
#pragma unroll
    for (int kk = 0; kk < K::kKSteps; ++kk)
      Wgmma<T, K::kBlockN>::template ss<0, 0>(s[0], q_desc(kk), k_desc(n, kk), kk > 0);
    wgmma_commit();
  };
  auto issue_pv = [&](int n) {
#pragma unroll
    for (int kp = 0; kp < K::kPSteps; ++kp)
      Wgmma<T, K::kDv>::template rs<1>(o[0], pf[kp], v_desc(n, kp), true);
    wgmma_commit();
  };
  // Masks S_n (keys past seqlen_k; above the diagonal when causal), turns it into P_n and
  // returns each row's rescale factor for O. Only edge blocks pay for the mask.
  auto softmax_step = [&](int n, float(&rescale)[1][2]) {
    const int n0 = n * K::kBlockN;
    const bool edge = n0 + K::kBlockN > p.seqlen_k ||
                      (K::kCausal && n0 + K::kBlockN - 1 > m0 + row_in_warp + diag);
    if (edge) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int row = m0 + row_in_warp + lane / 4 + (e / 2) * 8;
          const int key = n0 + nt * 8 + (lane % 4) * 2 + (e % 2);
          if (key >= p.seqlen_k || (K::kCausal && key > row + diag)) s[0][nt][e] = neg_inf();
        }
    }
    softmax.update(s, p.softmax_scale_log2, rescale);
  };
  auto pack_p = [&] {
#pragma unroll
    for (int kp = 0; kp < K::kPSteps; ++kp) {
      pf[kp][0] = Dtype<T>::pack(s[0][2 * kp][0], s[0][2 * kp][1]);
      pf[kp][1] = Dtype<T>::pack(s[0][2 * kp][2], s[0][2 * kp][3]);
      pf[kp][2] = Dtype<T>::pack(s[0][2 * kp + 1][0], s[0][2 * kp + 1][1]);
      pf[kp][3] = Dtype<T>::pack(s[0][2 * kp + 1][2], s[0][2 * kp + 1][3]);
    }
  };
  auto fence_accumulators = [&] {
#pragma unroll
    for (int dt = 0; dt < DT; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        keep_in_register(o[0][dt][e]);
  };

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
    issue_s(0);
    wgmma_wait<0>();
    float rescale[1][2];
    softmax_step(0, rescale);
    pack_p();
  }
  for (int n = 1; n < n_blocks; ++n) {
    landed(); // K_n and V_{n-1}
    load_group(n + K::kStages - 1);
    wgmma_fence();
    issue_s(n);
    issue_pv(n - 1);
    wgmma_wait<1>(); // S_n done; P_{n-1} V_{n-1} may still run
    float rescale[1][2];
    softmax_step(n, rescale);
    wgmma_wait<0>();
    fence_accumulators();
#pragma unroll
    for (int kp = 0; kp < K::kPSteps; ++kp)
#pragma unroll
      for (int i = 0; i < 4; ++i)
        keep_in_register(pf[kp][i]);
#pragma unroll
    for (int dt = 0; dt < DT; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        o[0][dt][e] *= rescale[0][e / 2];
    pack_p();
  }
  if (n_blocks > 0) {
    cp_async_wait<0>(); // V_last
    fence_proxy_async();
    __syncthreads();
    wgmma_fence();
    issue_pv(n_blocks - 1);
    wgmma_wait<0>();
    fence_accumulators();
  }

  softmax.finish();
  cp_async_wait<0>();
  __syncthreads(); // every warpgroup is done with sQ before O is staged there
  write_output<K>(p, o, softmax, sQ, b, h, m0, row_in_warp, tid);
}

} // namespace attnjit
