// Hopper's warpgroup MMA (sm_90a): shared-memory matrix descriptors, the fences around the
// asynchronous MMAs, and the tile layout they read. The MMA instructions themselves list every
// accumulator register as an operand, so codegen writes them for the N sizes a kernel uses
// (specializations of Wgmma<T, N> in the generated source).
#pragma once

#include <attnjit/ptx.cuh>

namespace attnjit {

// A (ROWS, COLS) tile as wgmma reads it with 128-byte swizzling: column groups of 64 elements
// one after another, each ROWS rows of 128 bytes, and within every 8-row, 1024-byte atom the
// 16-byte chunk c of row r stored at chunk c ^ (r % 8). The tile must start 1024-byte aligned.
template <int ROWS, int COLS> struct SwizzledTile {
  static_assert(COLS % 64 == 0, "wgmma tiles hold whole 64-column (128-byte) groups");
  static_assert(ROWS % 8 == 0, "wgmma tiles hold whole 8-row swizzle atoms");
  static constexpr int kGroupBytes = ROWS * 128; // one 64-column group
  static constexpr int kBytes = COLS / 64 * kGroupBytes;

  static __device__ __forceinline__ u32 offset(int row, int chunk) {
    return static_cast<u32>((chunk / 8) * kGroupBytes + row * 128 +
                            (((chunk % 8) ^ (row % 8)) << 4));
  }

  // Asynchronously copies rows [0, ROWS) of a global [rows, COLS] slice whose row r starts at
  // gmem + r * row_stride; rows >= valid_rows are zero-filled. Group by group, each thread keeps
  // one chunk column and steps down the rows by THREADS / 8 (a multiple of 8), so its swizzled
  // column never changes.
  template <int THREADS>
  static __device__ __forceinline__ void load_async(u32 smem, const unsigned short* gmem,
                                                    i64 row_stride, int valid_rows, int tid) {
    static_assert(THREADS % 64 == 0, "the loader steps whole 8-row atoms");
    constexpr int kRowStep = THREADS / 8;
    const int row0 = tid / 8, chunk = tid % 8;
#pragma unroll
    for (int g = 0; g < COLS / 64; ++g) {
      const unsigned short* src = gmem + row0 * row_stride + g * 64 + chunk * 8;
      const u32 dst = smem + g * kGroupBytes + offset(row0, chunk);
#pragma unroll
      for (int it = 0; it < (ROWS + kRowStep - 1) / kRowStep; ++it) {
        const int row = row0 + it * kRowStep;
        if (ROWS % kRowStep != 0 && row >= ROWS) break;
        const bool in_range = row < valid_rows;
        cp_async_16(dst + it * kRowStep * 128, in_range ? src : gmem, in_range ? 16 : 0);
        src += kRowStep * row_stride;
      }
    }
  }
};

// Matrix descriptor for 128-byte swizzled operands (PTX ISA, "Matrix Descriptor Format"):
// start address, leading and stride byte offsets, all in 16-byte units; bits 62-63 = 1 selects
// the 128-byte swizzle. K-major tiles ignore the leading offset; their stride offset is the
// 1024 bytes between 8-row atoms. MN-major tiles (V, read transposed) step between 64-column
// groups by the leading offset and between 8-row atoms by the stride offset.
__device__ __forceinline__ u64 wgmma_desc(u32 smem_addr, u32 leading_bytes, u32 stride_bytes) {
  return static_cast<u64>((smem_addr & 0x3ffff) >> 4) |
         static_cast<u64>((leading_bytes >> 4) & 0x3fff) << 16 |
         static_cast<u64>((stride_bytes >> 4) & 0x3fff) << 32 | 1ull << 62;
}

// Before the first wgmma of a batch: register writes (accumulators, A fragments) made by ordinary
// instructions become visible to the asynchronous MMAs.
__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
}

__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}

// Waits until at most N committed groups are still running.
template <int N> __device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}

// Shared memory written through the generic proxy (cp.async, st.shared) before the async proxy
// (wgmma) reads it: each writing thread fences, then the CTA barrier.
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

// Tells the compiler a register is read and written here, so it keeps the value in place (and
// does not reuse its register) while an asynchronous MMA that reads or writes it is in flight.
__device__ __forceinline__ void keep_in_register(float& r) {
  asm volatile("" : "+f"(r)::"memory");
}
__device__ __forceinline__ void keep_in_register(u32& r) {
  asm volatile("" : "+r"(r)::"memory");
}

// D (64 x N, fp32, the MMA C layout per 8 columns) (+)= A (64 x 16) * B (16 x N).
//   ss: A and B from shared memory (descriptors);
//   rs: A from registers (the m16n8k16 A fragment of each warp's 16 rows), B from shared memory.
// TRANS_A / TRANS_B = 1 read A / B MN-major (transposed). Specialized by codegen for the N a
// kernel needs.
template <class T, int N> struct Wgmma;

} // namespace attnjit
