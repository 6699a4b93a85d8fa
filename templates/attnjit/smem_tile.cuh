// A (ROWS, COLS) tile of 16-bit elements in shared memory, rows padded to a multiple of 64
// elements and 16-byte chunks XOR-swizzled by row, so the 8 row addresses of one ldmatrix (and
// the 16-byte cp.async writes) hit 8 different bank groups.
#pragma once

#include <attnjit/ptx.cuh>

namespace attnjit {

template <int ROWS, int COLS> struct SmemTile {
  static_assert(COLS % 8 == 0, "tile columns must be whole 16-byte chunks");
  static constexpr int kChunks = COLS / 8;
  // Swizzling permutes chunks within aligned groups of 8, so a row holds whole groups.
  static constexpr int kRowStride = (COLS + 63) / 64 * 64; // elements
  static constexpr int kElements = ROWS * kRowStride;
  static constexpr int kBytes = kElements * 2;

  // Byte offset of element (row, chunk * 8) from the start of the tile.
  static __device__ __forceinline__ u32 offset(int row, int chunk) {
    return static_cast<u32>((row * kRowStride + ((chunk ^ (row & 7)) << 3)) * 2);
  }

  // Byte offset of row `row` (the column part comes from SwizzledCols).
  static __device__ __forceinline__ u32 row_offset(int row) {
    return static_cast<u32>(row * kRowStride * 2);
  }

  // Asynchronously copies rows [0, ROWS) of a global [rows, COLS] slice whose row r starts at
  // gmem + r * row_stride; rows >= valid_rows are zero-filled.
  template <int THREADS>
  static __device__ __forceinline__ void load_async(u32 smem, const unsigned short* gmem,
                                                    i64 row_stride, int valid_rows, int tid) {
    constexpr int kTotal = ROWS * kChunks;
    // Fast path when every thread's rows share row & 7 (so one swizzled column serves them all).
    if constexpr (THREADS % kChunks == 0 && kTotal % THREADS == 0 && (THREADS / kChunks) % 8 == 0) {
      // Each thread keeps one chunk column and steps down the rows: one pointer and one shared
      // address advanced by constants, instead of a 64-bit address per row held in registers.
      constexpr int kRowStep = THREADS / kChunks;
      const int row0 = tid / kChunks, chunk = tid % kChunks;
      const unsigned short* src = gmem + row0 * row_stride + chunk * 8;
      const u32 dst = smem + offset(row0, chunk);
#pragma unroll
      for (int it = 0; it < ROWS / kRowStep; ++it) {
        const bool in_range = row0 + it * kRowStep < valid_rows;
        cp_async_16(dst + it * kRowStep * kRowStride * 2, in_range ? src : gmem, in_range ? 16 : 0);
        src += kRowStep * row_stride;
      }
    } else {
#pragma unroll
      for (int it = 0; it < (kTotal + THREADS - 1) / THREADS; ++it) {
        const int i = tid + it * THREADS;
        if (kTotal % THREADS != 0 && i >= kTotal) break;
        const int row = i / kChunks, chunk = i % kChunks;
        const bool in_range = row < valid_rows;
        const unsigned short* src = in_range ? gmem + row * row_stride + chunk * 8 : gmem;
        cp_async_16(smem + offset(row, chunk), src, in_range ? 16 : 0);
      }
    }
  }
};

// The column part of SmemTile::offset for ldmatrix, whose 8 row addresses per matrix all share
// row & 7. For chunk = 2 * k + h (h in {0, 1} per lane), chunk ^ (row & 7) = 8 * (k / 4) +
// ((2 * (k % 4)) ^ c) with c = h ^ (row & 7): four per-lane values, the rest compile-time.
struct SwizzledCols {
  u32 col[4];
  __device__ __forceinline__ explicit SwizzledCols(int c) {
#pragma unroll
    for (int j = 0; j < 4; ++j)
      col[j] = static_cast<u32>(((2 * j) ^ c) << 4);
  }
  // Byte offset of chunk pair k (chunks 2k, 2k+1) within a row. For compile-time k only: a
  // run-time k would index col[] dynamically, which puts it in local memory.
  __device__ __forceinline__ u32 operator()(int k) const {
    return col[k % 4] + (k / 4) * 128;
  }
  // The same for a run-time k, from col[0] = c << 4: a few integer instructions, no array.
  __device__ __forceinline__ u32 at(int k) const {
    return ((static_cast<u32>(2 * (k & 3)) << 4) ^ col[0]) + static_cast<u32>(k >> 2) * 128;
  }
};

} // namespace attnjit
