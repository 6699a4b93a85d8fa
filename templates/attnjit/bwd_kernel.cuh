// FlashAttention-2-style backward, dK/dV kernel: one CTA per (BLOCK_N keys, batch, KV head).
// K and V stay in shared memory; (Q, dO, LSE, D) blocks of every query head of the group stream
// through a two-stage cp.async ring. P and dS are recomputed from Q, K and the forward's LSE;
// dK and dV accumulate in registers over the whole group (no atomics, deterministic); dQ gets
// this block's share through fp32 atomics into the workspace.
#pragma once

#include <attnjit/bwd_dq_kernel.cuh>
#include <attnjit/bwd_params.h>
#include <attnjit/bwd_prepost.cuh>
#include <attnjit/bwd_traits.cuh>
#include <attnjit/bwd_warp_mma.cuh>

namespace attnjit {

template <class K>
__global__ void __launch_bounds__(K::kThreads)
    flash_bwd_dkdv_kernel(const __grid_constant__ BwdParams p) {
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
  // Causal: a key block's work falls with its index (fewer query blocks see it), so the key block
  // is the slowest-varying index and the heaviest CTAs of every head start first (longest job
  // first keeps the last wave short). Non-causal: key blocks of one head run side by side and
  // share its Q and dO in L2.
  const int groups = gridDim.x / p.num_n_blocks; // (split, batch, KV head) triples
  const int n_block = K::kCausal ? blockIdx.x / groups : blockIdx.x % p.num_n_blocks;
  const int rest = K::kCausal ? blockIdx.x % groups : blockIdx.x / p.num_n_blocks;
  const int split = rest % p.kv_splits, bkv = rest / p.kv_splits;
  const int b = bkv / p.num_kv_heads, kv_h = bkv % p.num_kv_heads;
  const int heads_per_split = p.heads_per_kv / p.kv_splits;
  const int n0 = n_block * K::kBlockN, diag = p.seqlen_k - p.seqlen_q;
  // Causal: only queries i >= n0 - diag see these keys.
  const int m_begin = K::kCausal ? max(0, n0 - diag) / BM : 0;
  const int m_count = max(0, p.num_m_blocks - m_begin);
  const int steps = m_count * heads_per_split; // (query head, query block) pairs

  const unsigned short* k = static_cast<const unsigned short*>(p.k) + b * p.k_batch_stride +
                            kv_h * p.k_head_stride + n0 * p.k_seq_stride;
  const unsigned short* v = static_cast<const unsigned short*>(p.v) + b * p.v_batch_stride +
                            kv_h * p.v_head_stride + n0 * p.v_seq_stride;
  K::KTile::template load_async<K::kThreads>(sK, k, p.k_seq_stride, p.seqlen_k - n0, tid);
  K::VTile::template load_async<K::kThreads>(sV, v, p.v_seq_stride, p.seqlen_k - n0, tid);

  auto head_of = [&](int step) {
    return kv_h * p.heads_per_kv + split * heads_per_split + step / m_count;
  };
  auto m0_of = [&](int step) { return (m_begin + step % m_count) * BM; };
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
    const i64 row0 = (static_cast<i64>(b) * p.num_heads + h) * p.seqlen_q + m0;
    for (int i = tid; i < 2 * BM; i += K::kThreads) { // LSE then D; rows past Sq read as 0
      const int r = i % BM;
      const float* src = (i < BM ? p.lse : p.dsum) + row0 + r;
      cp_async_4(sStats + (slot * 2 * BM + i) * 4, m0 + r < p.seqlen_q ? src : p.lse,
                 m0 + r < p.seqlen_q ? 4 : 0);
    }
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
      const bool edge = n0 + K::kBlockN > p.seqlen_k ||
                        (K::kCausal && n0 + key0 + K::kWarpKeys - 1 > m0 + diag);
#pragma unroll
      for (int mt = 0; mt < MT8; ++mt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int col = mt * 8 + (lane % 4) * 2 + e, query = m0 + col;
          // A query past Sq, or one that sees no key (LSE -inf), gets P = 0: subtract +inf.
          const float l = lse[col];
          const float lse_log2 = query >= p.seqlen_q || l == neg_inf()
                                     ? __int_as_float(0x7f800000)
                                     : l * 1.4426950408889634f;
#pragma unroll
          for (int kt = 0; kt < KT; ++kt)
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
              float& x = s[kt][mt][2 * hf + e];
              const int key = n0 + key0 + kt * 16 + lane / 4 + hf * 8;
              const bool masked =
                  edge && (key >= p.seqlen_k || (K::kCausal && key > query + diag));
              x = masked ? 0.f : ex2(fmaf(x, p.softmax_scale_log2, -lse_log2));
            }
        }
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
