// Hopper backward, dK/dV kernel (sm_90a): flash_bwd_dkdv_kernel's loop on warpgroup MMAs. One
// CTA per (BLOCK_N keys, batch, KV head[, split]), the same grid and outputs; each warpgroup owns
// 64 keys. Per 64-query step: S^T = K Q^T and dP^T = V dO^T from shared memory, P^T and dS^T
// in registers, then dV += P^T dO and dK += dS^T Q with P^T and dS^T as register A operands,
// and dQ += dS K from dS^T staged in shared memory (read M-major), added to the fp32 workspace.
#pragma once

#include <attnjit/bwd_block.cuh>
#include <attnjit/bwd_dkdv_store.cuh>
#include <attnjit/bwd_params.h>
#include <attnjit/bwd_wgmma_traits.cuh>

namespace attnjit {

template <class K>
__global__ void __launch_bounds__(K::kThreads, 1)
    flash_bwd_dkdv_wgmma_kernel(const __grid_constant__ BwdParams p) {
  using T = typename K::T;
  using KTile = typename K::KTile;
  using VTile = typename K::VTile;
  using QTile = typename K::QTile;
  using DoTile = typename K::DoTile;
  using DsTile = typename K::DsTile;
  constexpr int BM = K::kBlockM, MT8 = BM / 8, KQ = BM / 16;
  extern __shared__ __align__(1024) unsigned char smem[];
  const u32 sK = (smem_u32(smem) + 1023) & ~1023u; // (BLOCK_N, Dqk)
  const u32 sV = sK + KTile::kBytes;               // (BLOCK_N, Dv)
  const u32 sQ = sV + VTile::kBytes;               // 2 x (64, Dqk)
  const u32 sDo = sQ + 2 * QTile::kBytes;          // 2 x (64, Dv)
  const u32 sDs = sDo + 2 * DoTile::kBytes;        // (BLOCK_N, 64) dS^T
  const u32 sStats = sDs + DsTile::kBytes;         // 2 x {LSE, D} x 64 fp32
  const float* stats = reinterpret_cast<const float*>(smem + (sStats - smem_u32(smem)));

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, wg = warp / 4;
  const BwdBlock<BM, K::kBlockN, K::kCausal> block(p);
  const int split = block.split, b = block.b, kv_h = block.kv_h, n0 = block.n0, diag = block.diag;
  const int steps = block.steps;

  const unsigned short *k = block.k, *v = block.v;
  KTile::template load_async<K::kThreads>(sK, k, p.k_seq_stride, p.seqlen_k - n0, tid);
  VTile::template load_async<K::kThreads>(sV, v, p.v_seq_stride, p.seqlen_k - n0, tid);

  auto head_of = [&](int step) { return block.head_of(p, step); };
  auto m0_of = [&](int step) { return block.m0_of(step); };
  auto load_step = [&](int step) {
    const int slot = step & 1, h = head_of(step), m0 = m0_of(step);
    const auto* q = static_cast<const unsigned short*>(p.q) + b * p.q_batch_stride +
                    h * p.q_head_stride + m0 * p.q_seq_stride;
    const auto* d_o = static_cast<const unsigned short*>(p.dout) + b * p.do_batch_stride +
                      h * p.do_head_stride + m0 * p.do_seq_stride;
    QTile::template load_async<K::kThreads>(sQ + slot * QTile::kBytes, q, p.q_seq_stride,
                                            p.seqlen_q - m0, tid);
    DoTile::template load_async<K::kThreads>(sDo + slot * DoTile::kBytes, d_o, p.do_seq_stride,
                                             p.seqlen_q - m0, tid);
    load_row_stats_async<BM, K::kThreads>(p, sStats + slot * 2 * BM * 4, b, h, m0, tid);
  };
  if (steps > 0) load_step(0);
  cp_async_commit(); // K, V and step 0 land together

  // Descriptors. K-major operands (this warpgroup's 64 keys of K or V as A; Q or dO as B of
  // S^T, dP^T) step 32 bytes per k16 and a group every 4; N-major ones (Q, dO as B of dK, dV;
  // K as B of dQ; dS^T as dQ's M-major A) step 16 rows (2048 bytes).
  const u32 sK_wg = sK + wg * 64 * 128, sV_wg = sV + wg * 64 * 128;
  auto kmajor = [](u32 tile, int group_bytes, int kk) {
    return wgmma_desc(tile + (kk / 4) * group_bytes + (kk % 4) * 32, 16, 1024);
  };
  auto nmajor = [](u32 tile, int group_bytes, int kk) {
    return wgmma_desc(tile + kk * 16 * 128, group_bytes, 1024);
  };

  const int key0 = warp * 16; // this warp's first key within the block
  float dk[1][K::kDqk / 8][4] = {};
  float dv[1][K::kDv / 8][4] = {};

  for (int step = 0; step < steps; ++step) {
    cp_async_wait<0>();
    fence_proxy_async();
    __syncthreads(); // step's tiles visible; everyone is done with the slot refilled next and sDs
    if (step + 1 < steps) load_step(step + 1);
    cp_async_commit();
    const int slot = step & 1, h = head_of(step), m0 = m0_of(step);
    const u32 sQ_i = sQ + slot * QTile::kBytes, sDo_i = sDo + slot * DoTile::kBytes;
    const float* lse = stats + slot * 2 * BM;
    const float* dsum = lse + BM;

    float s[MT8][4];  // S^T (64 keys of this warpgroup, 64 queries), then P^T
    float dp[MT8][4]; // dP^T, then dS^T
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < K::kDqk / 16; ++kk)
      Wgmma<T, BM>::template ss<0, 0>(s, kmajor(sK_wg, KTile::kGroupBytes, kk),
                                      kmajor(sQ_i, QTile::kGroupBytes, kk), kk > 0);
    wgmma_commit();
#pragma unroll
    for (int kk = 0; kk < K::kDv / 16; ++kk)
      Wgmma<T, BM>::template ss<0, 0>(dp, kmajor(sV_wg, VTile::kGroupBytes, kk),
                                      kmajor(sDo_i, DoTile::kGroupBytes, kk), kk > 0);
    wgmma_commit();
    wgmma_wait<1>(); // S^T done; dP^T may still run

    const bool edge = n0 + K::kBlockN > p.seqlen_k || (K::kCausal && n0 + key0 + 15 > m0 + diag);
    probabilities_t<K::kCausal>(s, p, lse, n0 + key0, m0, diag, edge, lane);
    u32 p_frag[KQ][4], ds_frag[KQ][4]; // A fragments, 16 queries per k-step
#pragma unroll
    for (int kq = 0; kq < KQ; ++kq) {
      p_frag[kq][0] = Dtype<T>::pack(s[2 * kq][0], s[2 * kq][1]);
      p_frag[kq][1] = Dtype<T>::pack(s[2 * kq][2], s[2 * kq][3]);
      p_frag[kq][2] = Dtype<T>::pack(s[2 * kq + 1][0], s[2 * kq + 1][1]);
      p_frag[kq][3] = Dtype<T>::pack(s[2 * kq + 1][2], s[2 * kq + 1][3]);
    }
    wgmma_wait<0>(); // dP^T done
#pragma unroll
    for (int mt = 0; mt < MT8; ++mt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        dp[mt][e] = s[mt][e] * (dp[mt][e] - dsum[mt * 8 + (lane % 4) * 2 + (e % 2)]);
#pragma unroll
    for (int kq = 0; kq < KQ; ++kq) {
      ds_frag[kq][0] = Dtype<T>::pack(dp[2 * kq][0], dp[2 * kq][1]);
      ds_frag[kq][1] = Dtype<T>::pack(dp[2 * kq][2], dp[2 * kq][3]);
      ds_frag[kq][2] = Dtype<T>::pack(dp[2 * kq + 1][0], dp[2 * kq + 1][1]);
      ds_frag[kq][3] = Dtype<T>::pack(dp[2 * kq + 1][2], dp[2 * kq + 1][3]);
    }

    wgmma_fence();
#pragma unroll
    for (int kq = 0; kq < KQ; ++kq) // dV += P^T dO
      Wgmma<T, K::kDv>::template rs<1>(dv[0], p_frag[kq], nmajor(sDo_i, DoTile::kGroupBytes, kq),
                                       true);
#pragma unroll
    for (int kq = 0; kq < KQ; ++kq) // dK += dS^T Q (scaled when written)
      Wgmma<T, K::kDqk>::template rs<1>(dk[0], ds_frag[kq], nmajor(sQ_i, QTile::kGroupBytes, kq),
                                        true);
    wgmma_commit();

    if constexpr (K::kAccumulateDq) {
      // dS^T to shared memory: this thread's rows key0 + lane/4 (+8), query pairs.
#pragma unroll
      for (int kq = 0; kq < KQ; ++kq)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int row = key0 + lane / 4 + (i % 2) * 8,
                    col = kq * 16 + (i / 2) * 8 + (lane % 4) * 2;
          asm volatile(
              "st.shared.u32 [%0], %1;" ::"r"(sDs + DsTile::offset(row, col / 8) + (col % 8) * 2),
              "r"(ds_frag[kq][i]));
        }
      fence_proxy_async();
      __syncthreads(); // all of dS^T
      // dQ (64 queries, this warpgroup's kDqCols columns) = dS K over all BLOCK_N keys.
      float dq[K::kDqCols / 8][4];
      const u32 sK_cols = sK + (wg * K::kDqCols / 64) * KTile::kGroupBytes;
#pragma unroll
      for (int kn = 0; kn < K::kBlockN / 16; ++kn)
        Wgmma<T, K::kDqCols>::template ss<1, 1>(dq, nmajor(sDs, DsTile::kGroupBytes, kn),
                                                nmajor(sK_cols, KTile::kGroupBytes, kn), kn > 0);
      wgmma_commit();
      wgmma_wait<0>();
      float* dq_out = p.dq_accum + ((static_cast<i64>(b) * p.num_heads + h) * p.seqlen_q) * K::kDqk;
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        const int row = m0 + (warp % 4) * 16 + lane / 4 + hf * 8;
        if (row >= p.seqlen_q) continue;
#pragma unroll
        for (int dt = 0; dt < K::kDqCols / 8; ++dt)
          red_add2(dq_out + static_cast<i64>(row) * K::kDqk + wg * K::kDqCols + dt * 8 +
                       (lane % 4) * 2,
                   dq[dt][2 * hf], dq[dt][2 * hf + 1]);
      }
    } else {
      wgmma_wait<0>();
    }
    // dK, dV and the fragments they read stay put until the MMAs above are done.
#pragma unroll
    for (int kq = 0; kq < KQ; ++kq)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        keep_in_register(p_frag[kq][i]);
        keep_in_register(ds_frag[kq][i]);
      }
#pragma unroll
    for (int dt = 0; dt < K::kDqk / 8; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        keep_in_register(dk[0][dt][e]);
#pragma unroll
    for (int dt = 0; dt < K::kDv / 8; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        keep_in_register(dv[0][dt][e]);
  }
  cp_async_wait<0>();
  if (p.kv_splits == 1)
    store_dkdv<T>(p, dk, dv, b, kv_h, n0 + key0, lane);
  else
    store_dkdv_partial(p, dk, dv, split, b, kv_h, n0 + key0, lane);
}

} // namespace attnjit
