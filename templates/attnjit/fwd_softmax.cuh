// Online softmax over one warp's rows, in registers. Scores stay in raw units; the scale (with
// log2(e) folded in) enters through one FFMA before ex2, as in FlashAttention-2.
#pragma once

#include <attnjit/ptx.cuh>

namespace attnjit {

template <int M_TILES> struct OnlineSoftmax {
  // Each thread holds two rows per m-tile: lane/4 and lane/4 + 8.
  float row_max[M_TILES][2]; // raw-score max so far, -inf before any visible key
  float row_sum[M_TILES][2]; // this thread's partial sum; the quad is reduced in finish()

  __device__ __forceinline__ void init() {
#pragma unroll
    for (int m = 0; m < M_TILES; ++m)
#pragma unroll
      for (int h = 0; h < 2; ++h)
        row_max[m][h] = neg_inf(), row_sum[m][h] = 0.f;
  }

  // Turns scores s into probabilities in place and returns, per row, the factor by which the
  // output accumulated so far must be rescaled.
  template <int N_TILES>
  __device__ __forceinline__ void update(float (&s)[M_TILES][N_TILES][4], float scale_log2,
                                         float (&rescale)[M_TILES][2]) {
#pragma unroll
    for (int m = 0; m < M_TILES; ++m)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float block_max = neg_inf();
#pragma unroll
        for (int n = 0; n < N_TILES; ++n)
          block_max = fmaxf(block_max, fmaxf(s[m][n][2 * h], s[m][n][2 * h + 1]));
        // The four lanes of a quad share a row.
        block_max = fmaxf(block_max, __shfl_xor_sync(0xffffffff, block_max, 1));
        block_max = fmaxf(block_max, __shfl_xor_sync(0xffffffff, block_max, 2));
        const float old_max = row_max[m][h];
        const float new_max = fmaxf(old_max, block_max);
        row_max[m][h] = new_max;
        // A row with no visible key yet keeps max -inf; subtracting 0 keeps exp2(-inf) = 0
        // instead of exp2(-inf - -inf) = NaN.
        const float max_scaled = new_max == neg_inf() ? 0.f : new_max * scale_log2;
        rescale[m][h] = old_max == neg_inf() ? 0.f : ex2(old_max * scale_log2 - max_scaled);
        float sum = 0.f;
#pragma unroll
        for (int n = 0; n < N_TILES; ++n)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float p = ex2(fmaf(s[m][n][2 * h + e], scale_log2, -max_scaled));
            s[m][n][2 * h + e] = p;
            sum += p;
          }
        row_sum[m][h] = row_sum[m][h] * rescale[m][h] + sum;
      }
  }

  // After the last block: the full row sums, shared by the quad.
  __device__ __forceinline__ void finish() {
#pragma unroll
    for (int m = 0; m < M_TILES; ++m)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float sum = row_sum[m][h];
        sum += __shfl_xor_sync(0xffffffff, sum, 1);
        sum += __shfl_xor_sync(0xffffffff, sum, 2);
        row_sum[m][h] = sum;
      }
  }

  // Natural-log logsumexp of the scaled scores; -inf for a row that saw no key.
  __device__ __forceinline__ float lse(int m, int h, float scale_log2) const {
    if (row_sum[m][h] == 0.f) return neg_inf();
    const float kLn2 = 0.6931471805599453f;
    return (row_max[m][h] * scale_log2 + lg2(row_sum[m][h])) * kLn2;
  }
};

} // namespace attnjit
