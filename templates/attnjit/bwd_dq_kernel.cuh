// Deterministic dQ: one CTA per (BLOCK_M queries, batch, head) walks the K/V blocks like the
// forward does and recomputes P and dS to accumulate dQ = scale * dS K in registers, so every
// element is summed in one fixed order: no atomics, the same bits on every run. It repeats the
// S and dP products that the dK/dV kernel already did (about 40% more backward work).
#pragma once

#include <attnjit/bwd_params.h>
#include <attnjit/smem_tile.cuh>

namespace attnjit {

template <class T_, int HEAD_DIM_QK, int HEAD_DIM_V, bool CAUSAL> struct BwdDqTraits {
  using T = T_;
  static constexpr int kDqk = HEAD_DIM_QK, kDv = HEAD_DIM_V;
  static constexpr int kBlockM = 64, kBlockN = 64, kWarps = 4, kThreads = 128; // 16 rows a warp
  static constexpr bool kCausal = CAUSAL;
  using QTile = SmemTile<kBlockM, HEAD_DIM_QK>; // (64, Dqk)
  using DoTile = SmemTile<kBlockM, HEAD_DIM_V>; // (64, Dv)
  using KTile = SmemTile<kBlockN, HEAD_DIM_QK>; // (64, Dqk) x 2 stages
  using VTile = SmemTile<kBlockN, HEAD_DIM_V>;  // (64, Dv) x 2 stages
  static constexpr int kSmemBytes =
      QTile::kBytes + DoTile::kBytes + 2 * (KTile::kBytes + VTile::kBytes);
};

template <class K>
__global__ void __launch_bounds__(K::kThreads)
    flash_bwd_dq_deterministic_kernel(const __grid_constant__ BwdParams p) {
  allow_next_kernel();
  wait_for_prior_kernels(); // D
  using T = typename K::T;
  using QTile = typename K::QTile;
  using DoTile = typename K::DoTile;
  using KTile = typename K::KTile;
  using VTile = typename K::VTile;
  constexpr int NT = K::kBlockN / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  const u32 sQ = smem_u32(smem), sDo = sQ + QTile::kBytes;
  const u32 sK = sDo + DoTile::kBytes, sV = sK + 2 * KTile::kBytes;

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int m_blocks = (p.seqlen_q + K::kBlockM - 1) / K::kBlockM;
  const int m_block = blockIdx.x % m_blocks, bh = blockIdx.x / m_blocks;
  const int b = bh / p.num_heads, h = bh % p.num_heads, kv_h = h / p.heads_per_kv;
  const int m0 = m_block * K::kBlockM, diag = p.seqlen_k - p.seqlen_q;
  int n_blocks = (p.seqlen_k + K::kBlockN - 1) / K::kBlockN;
  if (K::kCausal)
    n_blocks = min(n_blocks, max(0, m0 + K::kBlockM + diag + K::kBlockN - 1) / K::kBlockN);

  const auto* q = static_cast<const unsigned short*>(p.q) + b * p.q_batch_stride +
                  h * p.q_head_stride + m0 * p.q_seq_stride;
  const auto* d_o = static_cast<const unsigned short*>(p.dout) + b * p.do_batch_stride +
                    h * p.do_head_stride + m0 * p.do_seq_stride;
  const auto* k =
      static_cast<const unsigned short*>(p.k) + b * p.k_batch_stride + kv_h * p.k_head_stride;
  const auto* v =
      static_cast<const unsigned short*>(p.v) + b * p.v_batch_stride + kv_h * p.v_head_stride;
  auto load_kv = [&](int n_block) {
    const int slot = n_block & 1, n0 = n_block * K::kBlockN;
    KTile::template load_async<K::kThreads>(sK + slot * KTile::kBytes, k + n0 * p.k_seq_stride,
                                            p.k_seq_stride, p.seqlen_k - n0, tid);
    VTile::template load_async<K::kThreads>(sV + slot * VTile::kBytes, v + n0 * p.v_seq_stride,
                                            p.v_seq_stride, p.seqlen_k - n0, tid);
  };
  QTile::template load_async<K::kThreads>(sQ, q, p.q_seq_stride, p.seqlen_q - m0, tid);
  DoTile::template load_async<K::kThreads>(sDo, d_o, p.do_seq_stride, p.seqlen_q - m0, tid);
  if (n_blocks > 0) load_kv(0);
  cp_async_commit();

  // This thread's two rows (lane/4 and lane/4 + 8 of the warp's 16): LSE in log2 units, and D.
  float lse_log2[2], dsum[2];
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const int row = m0 + warp * 16 + lane / 4 + hf * 8;
    const i64 at = (static_cast<i64>(b) * p.num_heads + h) * p.seqlen_q + row;
    const float l = row < p.seqlen_q ? p.lse[at] : neg_inf();
    // A row that sees no key (LSE -inf) gets P = 0: subtract +inf.
    lse_log2[hf] = l == neg_inf() ? __int_as_float(0x7f800000) : l * 1.4426950408889634f;
    dsum[hf] = row < p.seqlen_q ? p.dsum[at] : 0.f;
  }

  const SwizzledCols cols_a((lane >> 4) ^ (lane & 7)), cols_bt(((lane >> 3) & 1) ^ (lane & 7));
  const u32 a_row = warp * 16 + (lane & 15);          // A operands: Q, dO
  const u32 bt_row = (lane & 7) + ((lane >> 4) << 3); // B operands K, V read as is
  float dq[K::kDqk / 8][4] = {};                      // (16, Dqk) fp32

  for (int n_block = 0; n_block < n_blocks; ++n_block) {
    cp_async_wait<0>();
    __syncthreads();
    if (n_block + 1 < n_blocks) load_kv(n_block + 1);
    cp_async_commit();
    const u32 sK_n = sK + (n_block & 1) * KTile::kBytes, sV_n = sV + (n_block & 1) * VTile::kBytes;

    float s[NT][4] = {}, dp[NT][4] = {}; // (16, BLOCK_N): S then P; dP then dS
#pragma unroll
    for (int kk = 0; kk < K::kDqk / 16; ++kk) {
      u32 a[4];
      ldmatrix_x4(a, sQ + QTile::row_offset(a_row) + cols_a(kk));
#pragma unroll
      for (int nt = 0; nt < NT; nt += 2) {
        u32 bf[4];
        ldmatrix_x4(bf, sK_n + KTile::row_offset(nt * 8 + bt_row) + cols_bt(kk));
        mma_16816<T>(s[nt], a, bf[0], bf[1]);
        mma_16816<T>(s[nt + 1], a, bf[2], bf[3]);
      }
    }
#pragma unroll
    for (int kk = 0; kk < K::kDv / 16; ++kk) {
      u32 a[4];
      ldmatrix_x4(a, sDo + DoTile::row_offset(a_row) + cols_a(kk));
#pragma unroll
      for (int nt = 0; nt < NT; nt += 2) {
        u32 bf[4];
        ldmatrix_x4(bf, sV_n + VTile::row_offset(nt * 8 + bt_row) + cols_bt(kk));
        mma_16816<T>(dp[nt], a, bf[0], bf[1]);
        mma_16816<T>(dp[nt + 1], a, bf[2], bf[3]);
      }
    }
    const int n0 = n_block * K::kBlockN;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int hf = e / 2, row = m0 + warp * 16 + lane / 4 + hf * 8;
        const int key = n0 + nt * 8 + (lane % 4) * 2 + (e % 2);
        const bool masked = key >= p.seqlen_k || (K::kCausal && key > row + diag);
        const float prob = masked ? 0.f : ex2(fmaf(s[nt][e], p.softmax_scale_log2, -lse_log2[hf]));
        dp[nt][e] = prob * (dp[nt][e] - dsum[hf]); // dS
      }
      // dQ += dS K: dS re-enters the tensor cores from the accumulators, K is read transposed.
#pragma unroll
    for (int kp = 0; kp < K::kBlockN / 16; ++kp) {
      u32 a[4];
      a[0] = Dtype<T>::pack(dp[2 * kp][0], dp[2 * kp][1]);
      a[1] = Dtype<T>::pack(dp[2 * kp][2], dp[2 * kp][3]);
      a[2] = Dtype<T>::pack(dp[2 * kp + 1][0], dp[2 * kp + 1][1]);
      a[3] = Dtype<T>::pack(dp[2 * kp + 1][2], dp[2 * kp + 1][3]);
#pragma unroll
      for (int dt = 0; dt < K::kDqk / 8; dt += 2) {
        u32 bf[4];
        ldmatrix_x4_trans(bf, sK_n + KTile::row_offset(kp * 16 + (lane & 15)) + cols_a(dt / 2));
        mma_16816<T>(dq[dt], a, bf[0], bf[1]);
        mma_16816<T>(dq[dt + 1], a, bf[2], bf[3]);
      }
    }
  }
  cp_async_wait<0>();

  auto* out = static_cast<unsigned short*>(p.dq) + b * p.dq_batch_stride + h * p.dq_head_stride;
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const int row = m0 + warp * 16 + lane / 4 + hf * 8;
    if (row >= p.seqlen_q) continue;
#pragma unroll
    for (int dt = 0; dt < K::kDqk / 8; ++dt)
      *reinterpret_cast<u32*>(out + row * p.dq_seq_stride + dt * 8 + (lane % 4) * 2) =
          Dtype<T>::pack(dq[dt][2 * hf] * p.softmax_scale, dq[dt][2 * hf + 1] * p.softmax_scale);
  }
}

} // namespace attnjit
