// FlashAttention-2-style backward, dK/dV kernel: one CTA per (BLOCK_N keys, batch, KV head).
// K and V stay in shared memory; (Q, dO, LSE, D) blocks of every query head of the group stream
// through a two-stage cp.async ring. P and dS are recomputed from Q, K and the forward's LSE;
// dK and dV accumulate in registers over the whole group (no atomics, deterministic); dQ gets
// this block's share through fp32 atomics into the workspace.
#pragma once

#include <attnjit/bwd_block.cuh>
#include <attnjit/bwd_dq_kernel.cuh>
#include <attnjit/bwd_params.h>
#include <attnjit/bwd_prepost.cuh>
#include <attnjit/bwd_traits.cuh>
#include <attnjit/bwd_warp_mma.cuh>

namespace attnjit {

template <class K>
__global__ void __launch_bounds__(K::kThreads)
    flash_bwd_dkdv_kernel(const __grid_constant__ BwdParams p) {
  allow_next_kernel();
  wait_for_prior_kernels(); // D and the zeroed dQ accumulator
  using T = typename K::T;
  constexpr int KT = K::kKTiles, MT8 = K::kMTiles8, BM = K::kBlockM;
  extern __shared__ __align__(128) unsigned char smem[];
  const u32 sK = smem_u32(smem);               // (BLOCK_N, Dqk)
  const u32 sV = sK + K::KTile::kBytes;        // (BLOCK_N, Dv)
  const u32 sQ = sV + K::VTile::kBytes;        // 2 x (BLOCK_M, Dqk)
  const u32 sDo = sQ + 2 * K::QTile::kBytes;   // 2 x (BLOCK_M, Dv)
  const u32 sDs = sDo + 2 * K::DoTile::kBytes; // (BLOCK_N, BLOCK_M) dS^T
  const u32 sStats = sDs + K::DsTile::kBytes;  // 2 x {LSE, D} x BLOCK_M fp32
  const float* stats = reinterpret_cast<const float*>(smem + (sStats - sK));

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const BwdBlock<BM, K::kBlockN, K::kCausal> block(p);
  const int split = block.split, b = block.b, kv_h = block.kv_h, n0 = block.n0, diag = block.diag;
  const int steps = block.steps;

  const unsigned short *k = block.k, *v = block.v;
  K::KTile::template load_async<K::kThreads>(sK, k, p.k_seq_stride, p.seqlen_k - n0, tid);
  K::VTile::template load_async<K::kThreads>(sV, v, p.v_seq_stride, p.seqlen_k - n0, tid);

  auto head_of = [&](int step) { return block.head_of(p, step); };
  auto m0_of = [&](int step) { return block.m0_of(step); };
  auto load_step = [&](int step) {
    const int slot = step & 1, h = head_of(step), m0 = m0_of(step);
    const auto* q = static_cast<const unsigned short*>(p.q) + b * p.q_batch_stride +
                    h * p.q_head_stride + m0 * p.q_seq_stride;
    const auto* d_o = static_cast<const unsigned short*>(p.dout) + b * p.do_batch_stride +
                      h * p.do_head_stride + m0 * p.do_seq_stride;
    K::QTile::template load_async<K::kThreads>(sQ + slot * K::QTile::kBytes, q, p.q_seq_stride,
                                               p.seqlen_q - m0, tid);
    K::DoTile::template load_async<K::kThreads>(sDo + slot * K::DoTile::kBytes, d_o,
                                                p.do_seq_stride, p.seqlen_q - m0, tid);
    load_row_stats_async<BM, K::kThreads>(p, sStats + slot * 2 * BM * 4, b, h, m0, tid);
  };
  if (steps > 0) load_step(0);
  cp_async_commit(); // K, V and step 0 land together

  const int key0 = warp * K::kWarpKeys; // this warp's first key within the block
  const BwdWarpMma<K> mma(lane, key0);
  float dk[KT][K::kDqk / 8][4] = {}; // (kWarpKeys, Dqk) fp32, MMA C layout
  float dv[KT][K::kDv / 8][4] = {};  // (kWarpKeys, Dv)

  for (int step = 0; step < steps; ++step) {
    cp_async_wait<0>();
    __syncthreads(); // step's tiles visible; everyone is done with the slot refilled next
    if (step + 1 < steps) load_step(step + 1);
    cp_async_commit();
    const int slot = step & 1, h = head_of(step), m0 = m0_of(step);
    const u32 sQ_i = sQ + slot * K::QTile::kBytes, sDo_i = sDo + slot * K::DoTile::kBytes;
    const float* lse = stats + slot * 2 * BM;
    const float* dsum = lse + BM;

    // P^T and dS^T live on as packed dtype fragments: 16 registers each instead of 32 fp32,
    // which is what keeps dK and dV (128 fp32 registers at d128) from spilling.
    using Frags = typename BwdWarpMma<K>::Frags;
    Frags p_frag, ds_frag;
    {
      float s[KT][MT8][4]; // S^T = K Q^T, then P^T: (kWarpKeys, BLOCK_M)
      mma.template rows_times_cols_t<typename K::KTile, typename K::QTile>(s, sK, sQ_i);
      const bool edge =
          n0 + K::kBlockN > p.seqlen_k || (K::kCausal && n0 + key0 + K::kWarpKeys - 1 > m0 + diag);
#pragma unroll
      for (int kt = 0; kt < KT; ++kt)
        probabilities_t<K::kCausal>(s[kt], p, lse, n0 + key0 + kt * 16, m0, diag, edge, lane);
      BwdWarpMma<K>::pack(s, p_frag);
    }
    mma.template accumulate_t<typename K::DoTile>(dv, p_frag, sDo_i); // dV += P^T dO
    {
      float dp[KT][MT8][4]; // dP^T = V dO^T, then dS^T = P^T (dP^T - D)
      mma.template rows_times_cols_t<typename K::VTile, typename K::DoTile>(dp, sV, sDo_i);
#pragma unroll
      for (int mt = 0; mt < MT8; ++mt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float d = dsum[mt * 8 + (lane % 4) * 2 + e];
#pragma unroll
          for (int kt = 0; kt < KT; ++kt)
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
              const u32 pp = p_frag[kt][mt / 2][(mt % 2) * 2 + hf];
              const float pv = e == 0 ? Dtype<T>::lo(pp) : Dtype<T>::hi(pp);
              float& x = dp[kt][mt][2 * hf + e];
              x = pv * (x - d);
            }
        }
      BwdWarpMma<K>::pack(dp, ds_frag);
    }
    mma.template accumulate_t<typename K::QTile>(dk, ds_frag, sQ_i); // dK += dS^T Q (scaled later)
    if constexpr (K::kAccumulateDq) {
      mma.store_ds(ds_frag, sDs);
      __syncthreads(); // all of dS^T in shared memory
      mma.dq_atomic_add(p, sDs, sK, b, h, m0, warp);
    }
  }
  cp_async_wait<0>();
  if (p.kv_splits == 1)
    mma.write_dkdv(p, dk, dv, b, kv_h, n0);
  else
    mma.write_dkdv_partial(p, dk, dv, split, b, kv_h, n0);
}

} // namespace attnjit
