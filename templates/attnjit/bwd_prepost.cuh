// The backward's small kernels around the main one: D = rowsum(dO * O) before it, and dQ's
// conversion from the fp32 accumulator (scaled, to the output dtype and strides) after it.
#pragma once

#include <attnjit/bwd_params.h>
#include <attnjit/ptx.cuh>
#include <attnjit/types.cuh>

namespace attnjit {

template <class T> __device__ __forceinline__ float to_float(unsigned short bits);
template <> __device__ __forceinline__ float to_float<bf16_t>(unsigned short bits) {
  return __uint_as_float(static_cast<u32>(bits) << 16);
}
template <> __device__ __forceinline__ float to_float<fp16_t>(unsigned short bits) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(bits));
  return f;
}

// dot(x, y) of eight 16-bit elements.
template <class T> __device__ __forceinline__ float dot8(const uint4& x, const uint4& y) {
  const u32 xs[4] = {x.x, x.y, x.z, x.w}, ys[4] = {y.x, y.y, y.z, y.w};
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    sum += to_float<T>(xs[i] & 0xffff) * to_float<T>(ys[i] & 0xffff);
    sum += to_float<T>(xs[i] >> 16) * to_float<T>(ys[i] >> 16);
  }
  return sum;
}

// D = rowsum(dO * O) for 128 query rows of one (batch, head); grid.x = ceil(Sq / 128) * B * H.
// Eight threads share a row, so a warp reads four rows' contiguous 128-byte segments (one
// thread per row read 16-byte pieces of 32 rows at once: 23.5 us at d128 S2048 H40, 1.8 TB/s).
// The same block zeroes its rows of the dQ accumulator, which the main kernel adds to: the
// memset this replaces was one more launch between the kernels.
template <class T, int HEAD_DIM_QK, int HEAD_DIM_V>
__global__ void __launch_bounds__(128) flash_bwd_dsum_kernel(const __grid_constant__ BwdParams p) {
  allow_next_kernel();
  constexpr int kChunks = HEAD_DIM_V / 8, kPerThread = (kChunks + 7) / 8, kPasses = 128 / 16;
  const int blocks_per_head = (p.seqlen_q + 127) / 128;
  const int bh = blockIdx.x / blocks_per_head, row0 = (blockIdx.x % blocks_per_head) * 128;
  const int b = bh / p.num_heads, h = bh % p.num_heads;
  const int t = threadIdx.x % 8, r = threadIdx.x / 8; // 16 rows a pass
  const unsigned short* o =
      static_cast<const unsigned short*>(p.o) + b * p.o_batch_stride + h * p.o_head_stride;
  const unsigned short* d_o =
      static_cast<const unsigned short*>(p.dout) + b * p.do_batch_stride + h * p.do_head_stride;
  float sum[kPasses]; // every load comes before the first store in program order
#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass) {
    const int row = row0 + pass * 16 + r;
    sum[pass] = 0.f;
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
      const int c = j * 8 + t;
      if (row < p.seqlen_q && (kChunks % 8 == 0 || c < kChunks))
        sum[pass] += dot8<T>(*reinterpret_cast<const uint4*>(o + row * p.o_seq_stride + c * 8),
                             *reinterpret_cast<const uint4*>(d_o + row * p.do_seq_stride + c * 8));
    }
  }
#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass) {
    float x = sum[pass];
    x += __shfl_xor_sync(0xffffffffu, x, 4);
    x += __shfl_xor_sync(0xffffffffu, x, 2);
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    const int row = row0 + pass * 16 + r;
    if (t == 0 && row < p.seqlen_q) p.dsum[static_cast<i64>(bh) * p.seqlen_q + row] = x;
  }
  if (p.kv_done != nullptr && blockIdx.x == 0)
    for (int i = threadIdx.x; i < p.batch * p.num_kv_heads; i += 128)
      p.kv_done[i] = 0;
  if (p.dq_accum_rows > row0) { // rows of the accumulator (padded to whole tiles) past row0
    const int rows = min(128, p.dq_accum_rows - row0);
    float4* dst = reinterpret_cast<float4*>(
        p.dq_accum + (static_cast<i64>(bh) * p.dq_accum_rows + row0) * HEAD_DIM_QK);
    for (int i = threadIdx.x; i < rows * HEAD_DIM_QK / 4; i += 128)
      dst[i] = make_float4(0.f, 0.f, 0.f, 0.f);
  }
}

// One thread per 8 columns of dQ; grid-stride over B * H * Sq * Dqk / 8.
template <class T, int HEAD_DIM_QK>
__global__ void __launch_bounds__(256) flash_bwd_dq_kernel(const __grid_constant__ BwdParams p) {
  allow_next_kernel();
  wait_for_prior_kernels(); // the main kernel's sums
  constexpr int kChunks = HEAD_DIM_QK / 8;
  const i64 total = static_cast<i64>(p.batch) * p.num_heads * p.seqlen_q * kChunks;
  for (i64 i = blockIdx.x * 256ll + threadIdx.x; i < total;
       i += static_cast<i64>(gridDim.x) * 256) {
    const int chunk = static_cast<int>(i % kChunks);
    const i64 row_index = i / kChunks; // (b, h, row) in the accumulator's order
    const int row = static_cast<int>(row_index % p.seqlen_q);
    const int bh = static_cast<int>(row_index / p.seqlen_q);
    const int b = bh / p.num_heads, h = bh % p.num_heads;
    const float4* acc =
        reinterpret_cast<const float4*>(p.dq_accum + row_index * HEAD_DIM_QK + chunk * 8);
    const float4 lo = acc[0], hi = acc[1];
    const float s = p.softmax_scale;
    uint4 out;
    out.x = Dtype<T>::pack(lo.x * s, lo.y * s);
    out.y = Dtype<T>::pack(lo.z * s, lo.w * s);
    out.z = Dtype<T>::pack(hi.x * s, hi.y * s);
    out.w = Dtype<T>::pack(hi.z * s, hi.w * s);
    *reinterpret_cast<uint4*>(static_cast<unsigned short*>(p.dq) + b * p.dq_batch_stride +
                              h * p.dq_head_stride + row * p.dq_seq_stride + chunk * 8) = out;
  }
}

// The same from the warp-specialized kernel's workspace: per (b, h, 64-row block) Dqk / SLICE
// tiles of 64 rows x SLICE columns, each in MMA fragment order: float4 (dt * 128 + t) holds
// thread t's accumulator for columns dt * 8 + (t % 4) * 2 + {0, 1} of rows (t / 32) * 16 +
// (t % 32) / 4 and 8 rows below. One thread per quad of threads and dt: 64 contiguous bytes,
// two rows of 8 columns; grid-stride over B * H * ceil(Sq / 64) * Dqk * 4. Neighbouring
// threads take neighbouring dt, so a warp writes whole row segments (with the quad fastest the
// conversion took 33 us at d64 B2 S2048 H12; now 8.7, the row-major kernel's 8.0).
template <class T, int HEAD_DIM_QK, int SLICE>
__global__ void __launch_bounds__(256)
    flash_bwd_dq_tiled_kernel(const __grid_constant__ BwdParams p) {
  allow_next_kernel();
  static_assert(HEAD_DIM_QK % SLICE == 0 && SLICE % 8 == 0,
                "whole slices of whole 8-column groups");
  constexpr int kItemsPerTile = SLICE / 8 * 32; // dt x 4 warps x 8 quads
  const int m_blocks = (p.seqlen_q + 63) / 64;
  const i64 per_head = static_cast<i64>(m_blocks) * HEAD_DIM_QK * 4;
  const i64 total = static_cast<i64>(p.batch) * p.num_heads * per_head;
  const unsigned all_ctas = static_cast<unsigned>(p.num_n_blocks * p.kv_splits);
  // With no key there is no dK/dV kernel and no count to wait for: this kernel follows the
  // pre-pass directly, and the accumulator's zeroes are the pre-pass's to finish writing.
  if (all_ctas == 0) wait_for_prior_kernels();
  for (i64 base = blockIdx.x * 256ll; base < total; base += static_cast<i64>(gridDim.x) * 256) {
    // Instead of waiting for the whole main kernel: the heads of this block's items are done
    // once every dK/dV CTA of their KV head has counted itself (kv_done), so heads finished
    // in earlier waves are converted while the last wave still runs.
    if (threadIdx.x == 0) {
      const i64 last = (base + 255 < total ? base + 255 : total - 1) / per_head;
      for (i64 bh = base / per_head; bh <= last; ++bh) {
        const int b = static_cast<int>(bh / p.num_heads), h = static_cast<int>(bh % p.num_heads);
        const unsigned* done = p.kv_done + b * p.num_kv_heads + h / p.heads_per_kv;
        while (load_acquire(done) < all_ctas)
          __nanosleep(200);
      }
    }
    __syncthreads();
    const i64 i = base + threadIdx.x;
    if (i >= total) continue;
    const int dt = static_cast<int>(i % (SLICE / 8)), quad = static_cast<int>(i / (SLICE / 8) % 32);
    const i64 tile = i / kItemsPerTile; // ((b, h, row block), slice)
    const int slice = static_cast<int>(tile % (HEAD_DIM_QK / SLICE));
    const i64 row_block = tile / (HEAD_DIM_QK / SLICE);
    const int bh = static_cast<int>(row_block / m_blocks);
    const int row = static_cast<int>(row_block % m_blocks) * 64 + (quad / 8) * 16 + quad % 8;
    const int b = bh / p.num_heads, h = bh % p.num_heads;
    const float4* acc =
        reinterpret_cast<const float4*>(p.dq_accum + tile * 64 * SLICE) + dt * 128 + quad * 4;
    const float s = p.softmax_scale;
    uint4 upper, lower; // rows `row` and `row + 8`, 8 columns each
    u32* up = &upper.x;
    u32* lo = &lower.x;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const float4 v = acc[q];
      up[q] = Dtype<T>::pack(v.x * s, v.y * s);
      lo[q] = Dtype<T>::pack(v.z * s, v.w * s);
    }
    unsigned short* out = static_cast<unsigned short*>(p.dq) + b * p.dq_batch_stride +
                          h * p.dq_head_stride + slice * SLICE + dt * 8;
    if (row < p.seqlen_q) *reinterpret_cast<uint4*>(out + row * p.dq_seq_stride) = upper;
    if (row + 8 < p.seqlen_q) *reinterpret_cast<uint4*>(out + (row + 8) * p.dq_seq_stride) = lower;
  }
  // Finishing only after the main kernel has keeps "a kernel done means those before it are"
  // true for whatever the stream runs next.
  wait_for_prior_kernels();
}

// dK and dV of GQA/MQA split over kv_splits CTAs: the partials summed in split order (so the
// same bits every run) and written in the dtype. One thread per 8 columns of one key's
// [dK | dV] row; grid-stride over B * KV * Sk * (Dqk + Dv) / 8.
template <class T, int HEAD_DIM_QK, int HEAD_DIM_V>
__global__ void __launch_bounds__(256)
    flash_bwd_dkv_reduce_kernel(const __grid_constant__ BwdParams p) {
  allow_next_kernel();
  wait_for_prior_kernels(); // the main kernel's sums
  constexpr int kRow = HEAD_DIM_QK + HEAD_DIM_V, kChunks = kRow / 8;
  const i64 rows = static_cast<i64>(p.batch) * p.num_kv_heads * p.seqlen_k;
  const i64 split_stride = rows * kRow;
  for (i64 i = blockIdx.x * 256ll + threadIdx.x; i < rows * kChunks;
       i += static_cast<i64>(gridDim.x) * 256) {
    const int chunk = static_cast<int>(i % kChunks);
    const i64 row = i / kChunks; // (b, kv head, key)
    const int key = static_cast<int>(row % p.seqlen_k);
    const int bkv = static_cast<int>(row / p.seqlen_k);
    const int b = bkv / p.num_kv_heads, kv_h = bkv % p.num_kv_heads;
    float acc[8] = {};
    for (int s = 0; s < p.kv_splits; ++s) {
      const float4* src = reinterpret_cast<const float4*>(p.dkv_partial + s * split_stride +
                                                          row * kRow + chunk * 8);
      const float4 lo = src[0], hi = src[1];
      acc[0] += lo.x, acc[1] += lo.y, acc[2] += lo.z, acc[3] += lo.w;
      acc[4] += hi.x, acc[5] += hi.y, acc[6] += hi.z, acc[7] += hi.w;
    }
    uint4 out;
    out.x = Dtype<T>::pack(acc[0], acc[1]);
    out.y = Dtype<T>::pack(acc[2], acc[3]);
    out.z = Dtype<T>::pack(acc[4], acc[5]);
    out.w = Dtype<T>::pack(acc[6], acc[7]);
    const bool is_k = chunk * 8 < HEAD_DIM_QK;
    unsigned short* dst = is_k ? static_cast<unsigned short*>(p.dk) + b * p.dk_batch_stride +
                                     kv_h * p.dk_head_stride + key * p.dk_seq_stride + chunk * 8
                               : static_cast<unsigned short*>(p.dv) + b * p.dv_batch_stride +
                                     kv_h * p.dv_head_stride + key * p.dv_seq_stride + chunk * 8 -
                                     HEAD_DIM_QK;
    *reinterpret_cast<uint4*>(dst) = out;
  }
}

} // namespace attnjit
