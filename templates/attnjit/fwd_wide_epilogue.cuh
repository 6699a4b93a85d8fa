// Writing the wide-Dv forward's results. The row sums live in the S warps (one part per warp of a
// row tile) while O lives in column slices across all warps, so the sums meet in shared memory
// first; O is then staged in Q's place and stored as by the other forward (store_o_tile).
#pragma once

#include <attnjit/fwd_epilogue.cuh>
#include <attnjit/fwd_params.h>
#include <attnjit/fwd_wide_softmax.cuh>

namespace attnjit {

// Needs a barrier after every warp's SplitSoftmax::share_sum, and every warp done reading Q.
template <class K>
__device__ __forceinline__ void
write_wide_output(const FwdParams& p, float (&o)[K::kMTiles][K::kDTiles][4],
                  const SplitSoftmax<K::kSplit, K::kBlockM>& softmax,
                  const WideRowStats<K::kSplit, K::kBlockM>& stats, u32 sO, int b, int h, int m0,
                  int s_row, int s_part, int o_col, int tid) {
  using T = typename K::T;
  using OTile = typename K::OTile; // (BLOCK_M, Dv): reuses Q's shared memory
  const int lane = tid % 32;

  // LSE: one writer per row, the first S warp of its row tile.
  if (s_part == 0 && lane % 4 == 0)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const int row = s_row + lane / 4 + hf * 8;
      if (m0 + row < p.seqlen_q)
        p.lse[(static_cast<i64>(b) * p.num_heads + h) * p.seqlen_q + m0 + row] =
            softmax.lse(hf, stats.total_sum(row), p.softmax_scale_log2);
    }

#pragma unroll
  for (int mt = 0; mt < K::kMTiles; ++mt)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const int row = mt * 16 + lane / 4 + hf * 8;
      const float sum = stats.total_sum(row);
      const float inv = sum == 0.f ? 0.f : 1.f / sum; // a row that saw no key is exactly 0
#pragma unroll
      for (int dt = 0; dt < K::kDTiles; ++dt) {
        const u32 packed = Dtype<T>::pack(o[mt][dt][2 * hf] * inv, o[mt][dt][2 * hf + 1] * inv);
        const u32 addr = sO + OTile::offset(row, o_col / 8 + dt) + (lane % 4) * 4;
        asm volatile("st.shared.u32 [%0], %1;" ::"r"(addr), "r"(packed));
      }
    }
  __syncthreads();
  store_o_tile<OTile, K::kBlockM, K::kThreads>(p, sO, b, h, m0, tid);
}

} // namespace attnjit
