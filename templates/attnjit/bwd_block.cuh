// Which keys a backward dK/dV CTA owns and the (query head, query block) steps it walks, shared
// by the mma.sync and wgmma kernels, which launch the same grid:
// grid.x = num_n_blocks * batch * num_kv_heads * kv_splits.
#pragma once

#include <attnjit/bwd_params.h>
#include <attnjit/ptx.cuh>

namespace attnjit {

template <int BLOCK_M, int BLOCK_N, bool CAUSAL> struct BwdBlock {
  int split, b, kv_h;
  int n0;                  // first key
  int diag;                // Sk - Sq (bottom-right causal alignment)
  int heads_per_split;     // query heads of the group this CTA walks
  int m_begin;             // first query block that sees these keys
  int m_count;             // query blocks per head
  int steps;               // (query head, query block) pairs
  const unsigned short* k; // row n0 of this (b, kv_h)
  const unsigned short* v;

  __device__ __forceinline__ explicit BwdBlock(const BwdParams& p) {
    // Causal: a key block's work falls with its index (fewer query blocks see it), so within a
    // chunk of causal_chunk groups the key block is the slowest-varying index and the heaviest
    // CTAs start first (longest job first keeps the last wave short). The chunk keeps the Q,
    // dO and dQ rows the running CTAs share within L2; one chunk of every group thrashed it at
    // 128 heads. Non-causal: key blocks of one head run side by side and share its Q and dO.
    const int groups = gridDim.x / p.num_n_blocks; // (split, batch, KV head) triples
    int n_block, rest;
    if (CAUSAL) {
      const int per_chunk = p.causal_chunk * p.num_n_blocks, chunk = blockIdx.x / per_chunk;
      const int first = chunk * p.causal_chunk, in_chunk = min(p.causal_chunk, groups - first);
      const int r = blockIdx.x - chunk * per_chunk;
      n_block = r / in_chunk, rest = first + r % in_chunk;
    } else {
      n_block = blockIdx.x % p.num_n_blocks, rest = blockIdx.x / p.num_n_blocks;
    }
    split = rest % p.kv_splits;
    const int bkv = rest / p.kv_splits;
    b = bkv / p.num_kv_heads, kv_h = bkv % p.num_kv_heads;
    heads_per_split = p.heads_per_kv / p.kv_splits;
    n0 = n_block * BLOCK_N, diag = p.seqlen_k - p.seqlen_q;
    // Causal: only queries i >= n0 - diag see these keys.
    m_begin = CAUSAL ? max(0, n0 - diag) / BLOCK_M : 0;
    m_count = max(0, p.num_m_blocks - m_begin);
    steps = m_count * heads_per_split;
    k = static_cast<const unsigned short*>(p.k) + b * p.k_batch_stride + kv_h * p.k_head_stride +
        n0 * p.k_seq_stride;
    v = static_cast<const unsigned short*>(p.v) + b * p.v_batch_stride + kv_h * p.v_head_stride +
        n0 * p.v_seq_stride;
  }

  __device__ __forceinline__ int head_of(const BwdParams& p, int step) const {
    return kv_h * p.heads_per_kv + split * heads_per_split + step / m_count;
  }
  __device__ __forceinline__ int m0_of(int step) const {
    return (m_begin + step % m_count) * BLOCK_M;
  }
};

// LSE then D of query rows [m0, m0 + BLOCK_M) of (b, h), fp32, to 2 * BLOCK_M floats at `dst`;
// rows past Sq read as 0.
template <int BLOCK_M, int THREADS>
__device__ __forceinline__ void load_row_stats_async(const BwdParams& p, u32 dst, int b, int h,
                                                     int m0, int tid) {
  const i64 row0 = (static_cast<i64>(b) * p.num_heads + h) * p.seqlen_q + m0;
  for (int i = tid; i < 2 * BLOCK_M; i += THREADS) {
    const int r = i % BLOCK_M;
    const float* src = (i < BLOCK_M ? p.lse : p.dsum) + row0 + r;
    cp_async_4(dst + i * 4, m0 + r < p.seqlen_q ? src : p.lse, m0 + r < p.seqlen_q ? 4 : 0);
  }
}

// S^T of one 16-key tile (keys first_key.., MT8 n8 tiles of queries from m0, the MMA C layout)
// into P^T = exp(scale * S^T - LSE), in place. Where `edge`, keys past seqlen_k and (causal)
// above the diagonal get P = 0. A query past Sq, or one that sees no key (LSE -inf), gets P = 0:
// it subtracts +inf. Shared by the mma.sync and wgmma dK/dV kernels.
template <bool CAUSAL, int MT8>
__device__ __forceinline__ void probabilities_t(float (&s)[MT8][4], const BwdParams& p,
                                                const float* lse, int first_key, int m0, int diag,
                                                bool edge, int lane) {
#pragma unroll
  for (int mt = 0; mt < MT8; ++mt)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int col = mt * 8 + (lane % 4) * 2 + e, query = m0 + col;
      const float l = lse[col];
      const float lse_log2 = query >= p.seqlen_q || l == neg_inf() ? __int_as_float(0x7f800000)
                                                                   : l * 1.4426950408889634f;
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        float& x = s[mt][2 * hf + e];
        const int key = first_key + lane / 4 + hf * 8;
        const bool masked = edge && (key >= p.seqlen_k || (CAUSAL && key > query + diag));
        x = masked ? 0.f : ex2(fmaf(x, p.softmax_scale_log2, -lse_log2));
      }
    }
}

} // namespace attnjit
