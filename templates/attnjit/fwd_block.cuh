// Which tile a forward CTA computes: its query block, batch and head (when causal, the longest
// rows first within groups of heads, FwdParams::causal_groups), the base pointers of its Q rows
// and of its K/V head, and how many key blocks it visits.
// Shared by the mma.sync, wide-Dv and wgmma forward kernels, which launch
// grid.x = num_m_blocks * batch * num_heads, one CTA per tile, and by the warp-specialized one,
// whose CTAs may walk several tiles.
#pragma once

#include <attnjit/fwd_params.h>
#include <attnjit/types.cuh>

namespace attnjit {

template <int BLOCK_M, int BLOCK_N, bool CAUSAL> struct FwdBlock {
  int b, h, kv_h;
  int m0;       // first query row
  int diag;     // Sk - Sq: query i sees key j iff j <= i + diag (bottom-right causal alignment)
  int n_blocks; // key blocks to visit
  const unsigned short* q; // row m0 of this (b, h)
  const unsigned short* k; // row 0 of this (b, kv_h)
  const unsigned short* v;

  __device__ __forceinline__ explicit FwdBlock(const FwdParams& p, int tile = blockIdx.x) {
    int m_block, bh;
    if (CAUSAL) {
      // p.causal_groups groups of (b, h) pairs, each walked longest rows first across the group:
      // the hardware hands tiles out in order, so the short ones fill the gaps at the end. The
      // first pairs % groups groups hold one pair more (a short last group would start its
      // longest tiles last).
      const int pairs = p.batch * p.num_heads, groups = p.causal_groups, M = p.num_m_blocks;
      const int small = pairs / groups, big_groups = pairs % groups;
      const int big_tiles = big_groups * (small + 1) * M;
      const bool big = tile < big_tiles;
      const int in_group = big ? small + 1 : small, t = big ? tile : tile - big_tiles;
      const int group_first = (big ? 0 : big_groups * (small + 1)) + t / (in_group * M) * in_group;
      const int r = t % (in_group * M);
      m_block = M - 1 - r / in_group;
      bh = group_first + r % in_group;
    } else {
      m_block = tile % p.num_m_blocks;
      bh = tile / p.num_m_blocks;
    }
    b = bh / p.num_heads, h = bh % p.num_heads, kv_h = h / p.heads_per_kv;
    m0 = m_block * BLOCK_M;
    q = static_cast<const unsigned short*>(p.q) + b * p.q_batch_stride + h * p.q_head_stride +
        m0 * p.q_seq_stride;
    k = static_cast<const unsigned short*>(p.k) + b * p.k_batch_stride + kv_h * p.k_head_stride;
    v = static_cast<const unsigned short*>(p.v) + b * p.v_batch_stride + kv_h * p.v_head_stride;
    diag = p.seqlen_k - p.seqlen_q;
    n_blocks = (p.seqlen_k + BLOCK_N - 1) / BLOCK_N;
    if (CAUSAL) n_blocks = min(n_blocks, max(0, m0 + BLOCK_M + diag + BLOCK_N - 1) / BLOCK_N);
  }
};

} // namespace attnjit
