// Online softmax for the wide-Dv forward, where SPLIT warps share 16 rows of S and each sees only
// its own keys. The row maxima meet in shared memory every block; each warp then exponentiates
// its slice against the common maximum and keeps the sum over its own keys. Since all SPLIT
// warps derive the same maxima, their partial sums are rescaled alike and meet once, at the end.
// Scores stay in raw units, as in OnlineSoftmax (fwd_softmax.cuh).
#pragma once

#include <attnjit/ptx.cuh>

namespace attnjit {

// Shared-memory row statistics of one CTA: fp32 arrays of BLOCK_M rows each.
template <int SPLIT, int BLOCK_M> struct WideRowStats {
  float* max_part; // [SPLIT][BLOCK_M]: each S warp's maximum over its keys, this block
  float* sum_part; // [SPLIT][BLOCK_M]: each S warp's sum over its keys, after the last block
  float* rescale;  // [BLOCK_M]: factor for the O accumulated so far, this block

  __device__ __forceinline__ explicit WideRowStats(float* base)
      : max_part(base), sum_part(base + SPLIT * BLOCK_M), rescale(base + 2 * SPLIT * BLOCK_M) {}

  // Sum of the SPLIT partial sums of `row`.
  __device__ __forceinline__ float total_sum(int row) const {
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < SPLIT; ++j)
      sum += sum_part[j * BLOCK_M + row];
    return sum;
  }
};

template <int SPLIT, int BLOCK_M> struct SplitSoftmax {
  using Stats = WideRowStats<SPLIT, BLOCK_M>;
  // Each thread holds rows row0 + lane/4 and row0 + lane/4 + 8 of the block.
  float row_max[2]; // raw-score max over all keys so far, -inf before any visible key
  float row_sum[2]; // this thread's part of the sum over this warp's keys

  __device__ __forceinline__ void init() {
#pragma unroll
    for (int h = 0; h < 2; ++h)
      row_max[h] = neg_inf(), row_sum[h] = 0.f;
  }

  // Step 1: publish this warp's row maxima of s (its keys only) as partial `part`.
  template <int N_TILES>
  __device__ __forceinline__ void share_max(const float (&s)[N_TILES][4], const Stats& stats,
                                            int part, int row0, int lane) const {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float m = neg_inf();
#pragma unroll
      for (int n = 0; n < N_TILES; ++n)
        m = fmaxf(m, fmaxf(s[n][2 * h], s[n][2 * h + 1]));
      // The four lanes of a quad share a row.
      m = fmaxf(m, __shfl_xor_sync(0xffffffff, m, 1));
      m = fmaxf(m, __shfl_xor_sync(0xffffffff, m, 2));
      if (lane % 4 == 0) stats.max_part[part * BLOCK_M + row0 + lane / 4 + 8 * h] = m;
    }
  }

  // Step 2, after a barrier: the block maximum from all SPLIT partials; s becomes probabilities
  // in place, and `rescale` the factor for the output accumulated so far (as OnlineSoftmax).
  template <int N_TILES>
  __device__ __forceinline__ void update(float (&s)[N_TILES][4], const Stats& stats, int row0,
                                         int lane, float scale_log2, float (&rescale)[2]) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = row0 + lane / 4 + 8 * h;
      float block_max = neg_inf();
#pragma unroll
      for (int j = 0; j < SPLIT; ++j)
        block_max = fmaxf(block_max, stats.max_part[j * BLOCK_M + row]);
      const float old_max = row_max[h];
      const float new_max = fmaxf(old_max, block_max);
      row_max[h] = new_max;
      // -inf guards as in OnlineSoftmax::update: a row with no visible key stays at 0, not NaN.
      const float max_scaled = new_max == neg_inf() ? 0.f : new_max * scale_log2;
      rescale[h] = old_max == neg_inf() ? 0.f : ex2(old_max * scale_log2 - max_scaled);
      float sum = 0.f;
#pragma unroll
      for (int n = 0; n < N_TILES; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float p = ex2(fmaf(s[n][2 * h + e], scale_log2, -max_scaled));
          s[n][2 * h + e] = p;
          sum += p;
        }
      row_sum[h] = row_sum[h] * rescale[h] + sum;
    }
  }

  // After the last block: this warp's partial sums, reduced over the quad, as partial `part`.
  __device__ __forceinline__ void share_sum(const Stats& stats, int part, int row0,
                                            int lane) const {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float sum = row_sum[h];
      sum += __shfl_xor_sync(0xffffffff, sum, 1);
      sum += __shfl_xor_sync(0xffffffff, sum, 2);
      if (lane % 4 == 0) stats.sum_part[part * BLOCK_M + row0 + lane / 4 + 8 * h] = sum;
    }
  }

  // Natural-log logsumexp of the scaled scores of row half h, given its full sum; -inf for a row
  // that saw no key.
  __device__ __forceinline__ float lse(int h, float total_sum, float scale_log2) const {
    if (total_sum == 0.f) return neg_inf();
    const float kLn2 = 0.6931471805599453f;
    return (row_max[h] * scale_log2 + lg2(total_sum)) * kLn2;
  }
};

} // namespace attnjit
