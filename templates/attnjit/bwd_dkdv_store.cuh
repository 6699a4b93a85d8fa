// Writing a warp's dK (scaled by the softmax scale, which S carried) and dV: from fp32
// accumulators in the MMA C layout (KT tiles of 16 keys from `first_key`; mma.sync and wgmma
// agree on it per warp) to the dtype outputs, or to fp32 partials for the GQA/MQA split.
#pragma once

#include <attnjit/bwd_params.h>
#include <attnjit/types.cuh>

namespace attnjit {

template <class T, int KT, int DQK8, int DV8>
__device__ __forceinline__ void store_dkdv(const BwdParams& p, const float (&dk)[KT][DQK8][4],
                                           const float (&dv)[KT][DV8][4], int b, int kv_h,
                                           int first_key, int lane) {
  auto* dk_out =
      static_cast<unsigned short*>(p.dk) + b * p.dk_batch_stride + kv_h * p.dk_head_stride;
  auto* dv_out =
      static_cast<unsigned short*>(p.dv) + b * p.dv_batch_stride + kv_h * p.dv_head_stride;
#pragma unroll
  for (int kt = 0; kt < KT; ++kt)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const int key = first_key + kt * 16 + lane / 4 + hf * 8;
      if (key >= p.seqlen_k) continue;
#pragma unroll
      for (int dt = 0; dt < DQK8; ++dt)
        *reinterpret_cast<u32*>(dk_out + key * p.dk_seq_stride + dt * 8 + (lane % 4) * 2) =
            Dtype<T>::pack(dk[kt][dt][2 * hf] * p.softmax_scale,
                           dk[kt][dt][2 * hf + 1] * p.softmax_scale);
#pragma unroll
      for (int dt = 0; dt < DV8; ++dt)
        *reinterpret_cast<u32*>(dv_out + key * p.dv_seq_stride + dt * 8 + (lane % 4) * 2) =
            Dtype<T>::pack(dv[kt][dt][2 * hf], dv[kt][dt][2 * hf + 1]);
    }
}

// fp32 partials of this CTA's share of the group, for flash_bwd_dkv_reduce_kernel.
template <int KT, int DQK8, int DV8>
__device__ __forceinline__ void store_dkdv_partial(const BwdParams& p,
                                                   const float (&dk)[KT][DQK8][4],
                                                   const float (&dv)[KT][DV8][4], int split, int b,
                                                   int kv_h, int first_key, int lane) {
  constexpr int kRow = (DQK8 + DV8) * 8; // Dqk + Dv floats per key
  float* out = p.dkv_partial + ((static_cast<i64>(split) * p.batch + b) * p.num_kv_heads + kv_h) *
                                   static_cast<i64>(p.seqlen_k) * kRow;
#pragma unroll
  for (int kt = 0; kt < KT; ++kt)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const int key = first_key + kt * 16 + lane / 4 + hf * 8;
      if (key >= p.seqlen_k) continue;
      float* row = out + static_cast<i64>(key) * kRow + (lane % 4) * 2;
#pragma unroll
      for (int dt = 0; dt < DQK8; ++dt)
        *reinterpret_cast<float2*>(row + dt * 8) = make_float2(
            dk[kt][dt][2 * hf] * p.softmax_scale, dk[kt][dt][2 * hf + 1] * p.softmax_scale);
#pragma unroll
      for (int dt = 0; dt < DV8; ++dt)
        *reinterpret_cast<float2*>(row + (DQK8 + dt) * 8) =
            make_float2(dv[kt][dt][2 * hf], dv[kt][dt][2 * hf + 1]);
    }
}

} // namespace attnjit
