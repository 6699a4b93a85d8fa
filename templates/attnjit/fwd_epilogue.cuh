// Writing the forward's results: O normalized by the row sums, staged through shared memory so
// global stores are 16 bytes wide and coalesced; LSE straight from the registers.
#pragma once

#include <attnjit/fwd_params.h>
#include <attnjit/fwd_softmax.cuh>

namespace attnjit {

// Copies the staged (BLOCK_M, Dv) O tile at sO to global memory, 16 bytes per thread and step,
// skipping rows past seqlen_q. Every thread must have staged its part (a barrier before).
template <class OTile, int BLOCK_M, int THREADS>
__device__ __forceinline__ void store_o_tile(const FwdParams& p, u32 sO, int b, int h, int m0,
                                             int tid) {
  unsigned short* out = static_cast<unsigned short*>(p.o) + b * p.o_batch_stride +
                        h * p.o_head_stride + m0 * p.o_seq_stride;
  constexpr int kChunks = OTile::kChunks, kTotal = BLOCK_M * kChunks;
#pragma unroll
  for (int it = 0; it < (kTotal + THREADS - 1) / THREADS; ++it) {
    const int i = tid + it * THREADS;
    if (kTotal % THREADS != 0 && i >= kTotal) break;
    const int row = i / kChunks, chunk = i % kChunks;
    if (m0 + row >= p.seqlen_q) continue;
    uint4 val;
    asm volatile("ld.shared.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(val.x), "=r"(val.y), "=r"(val.z), "=r"(val.w)
                 : "r"(sO + OTile::offset(row, chunk)));
    *reinterpret_cast<uint4*>(out + row * p.o_seq_stride + chunk * 8) = val;
  }
}

// Normalizes this thread's O rows by their sums into sO, laid out as OTile, and writes their
// LSE straight to global memory.
template <class K, class OTile = typename K::OTile>
__device__ __forceinline__ void stage_output(const FwdParams& p,
                                             float (&o)[K::kMTiles][K::kDTiles][4],
                                             const OnlineSoftmax<K::kMTiles>& softmax, u32 sO,
                                             int b, int h, int m0, int row_in_warp, int lane) {
  using T = typename K::T;
#pragma unroll
  for (int mt = 0; mt < K::kMTiles; ++mt)
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const float sum = softmax.row_sum[mt][hf];
      const float inv = sum == 0.f ? 0.f : 1.f / sum; // a row that saw no key is exactly 0
      const int row = row_in_warp + mt * 16 + lane / 4 + hf * 8;
#pragma unroll
      for (int dt = 0; dt < K::kDTiles; ++dt) {
        const u32 packed = Dtype<T>::pack(o[mt][dt][2 * hf] * inv, o[mt][dt][2 * hf + 1] * inv);
        const u32 addr = sO + OTile::offset(row, dt) + (lane % 4) * 4;
        asm volatile("st.shared.u32 [%0], %1;" ::"r"(addr), "r"(packed));
      }
      const int q_row = m0 + row;
      if (lane % 4 == 0 && q_row < p.seqlen_q)
        p.lse[(static_cast<i64>(b) * p.num_heads + h) * p.seqlen_q + q_row] =
            softmax.lse(mt, hf, p.softmax_scale_log2);
    }
}

// The whole CTA stages the tile (in Q's shared memory) and copies it out. (The
// warp-specialized kernel stages with stage_output and stores with TMA.)
template <class K>
__device__ __forceinline__ void write_output(const FwdParams& p,
                                             float (&o)[K::kMTiles][K::kDTiles][4],
                                             const OnlineSoftmax<K::kMTiles>& softmax, u32 sO,
                                             int b, int h, int m0, int row_in_warp, int tid) {
  stage_output<K>(p, o, softmax, sO, b, h, m0, row_in_warp, tid % 32);
  CtaBarrier::sync();
  store_o_tile<typename K::OTile, K::kBlockM, K::kThreads>(p, sO, b, h, m0, tid);
}

} // namespace attnjit
