// Hopper's asynchronous copy machinery (sm_90a): TMA tile loads that land in shared memory and
// count their bytes on an mbarrier, the mbarrier operations a producer/consumer ring needs,
// and register reallocation between warpgroups.
#pragma once

#include <attnjit/ptx.cuh>
#include <attnjit/tma_params.h>

namespace attnjit {

__device__ __forceinline__ void mbarrier_init(u32 bar, u32 arrivals) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(arrivals) : "memory");
}

// Makes initialized barriers visible to the async proxy (TMA) and the other threads; a CTA
// barrier must follow.
__device__ __forceinline__ void fence_mbarrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

// One arrival that also announces `bytes` more to come from TMA in the current phase.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(u32 bar, u32 bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes)
               : "memory");
}

__device__ __forceinline__ void mbarrier_arrive(u32 bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}

// `count` arrivals at once, e.g. one thread speaking for its warpgroup's four warps.
__device__ __forceinline__ void mbarrier_arrive(u32 bar, u32 count) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}

// Waits until the phase with this parity has completed. A fresh barrier is in phase 0, so
// waiting for parity 1 returns at once: that is how a producer's first pass over an empty ring
// slot goes through.
__device__ __forceinline__ void mbarrier_wait(u32 bar, u32 parity) {
  u32 done;
  do {
    asm volatile("{\n\t.reg .pred p;\n\t"
                 "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
                 "selp.u32 %0, 1, 0, p;\n\t}"
                 : "=r"(done)
                 : "r"(bar), "r"(parity)
                 : "memory");
  } while (!done);
}

__device__ __forceinline__ void prefetch_tensor_map(const TmaTensor& t) {
  asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<u64>(&t.map[0])) : "memory");
}

// The coordinate along map dimension d (1-3) of `row` of (head, batch): TmaTensor says which
// index each dimension is; one that is not in the map is addressed at 0.
__device__ __forceinline__ int tma_coord(const TmaTensor& t, int d, int row, int head, int batch) {
  return d == t.seq_dim ? row : d == t.head_dim ? head : d == t.batch_dim ? batch : 0;
}

// Copies one (64 elements, box rows) box starting at `row` of (head, batch) into shared memory at
// dst, 128-byte swizzled exactly as SwizzledTile lays out one 64-column group. Rows past the
// tensor's end arrive as zeros. Completion adds the box's bytes to `bar`'s transaction count.
__device__ __forceinline__ void tma_load_box(u32 dst, const TmaTensor& t, u32 bar, int col, int row,
                                             int head, int batch) {
  asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes"
               " [%0], [%1, {%2, %3, %4, %5}], [%6];" ::"r"(dst),
               "l"(reinterpret_cast<u64>(&t.map[0])), "r"(col),
               "r"(tma_coord(t, 1, row, head, batch)), "r"(tma_coord(t, 2, row, head, batch)),
               "r"(tma_coord(t, 3, row, head, batch)), "r"(bar)
               : "memory");
}

// Copies one (64 elements, box rows) box from shared memory at src (swizzled as tma_load_box
// lands it) to global memory starting at `row` of (head, batch); rows past the tensor's end are
// not written. Tracked by bulk groups: src may be rewritten after bulk_wait_group_read.
__device__ __forceinline__ void tma_store_box(const TmaTensor& t, u32 src, int col, int row,
                                              int head, int batch) {
  asm volatile("cp.async.bulk.tensor.4d.global.shared::cta.bulk_group"
               " [%0, {%1, %2, %3, %4}], [%5];" ::"l"(reinterpret_cast<u64>(&t.map[0])),
               "r"(col), "r"(tma_coord(t, 1, row, head, batch)),
               "r"(tma_coord(t, 2, row, head, batch)), "r"(tma_coord(t, 3, row, head, batch)),
               "r"(src)
               : "memory");
}

// Adds `bytes` of fp32 from shared memory to global memory, element by element and atomically
// (CTAs may add to the same elements). Both addresses 16-byte aligned, bytes a multiple of 16.
// Tracked by bulk groups.
__device__ __forceinline__ void bulk_reduce_add_f32(float* dst, u32 src, u32 bytes) {
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;" ::"l"(
                   reinterpret_cast<u64>(dst)),
               "r"(src), "r"(bytes)
               : "memory");
}

__device__ __forceinline__ void bulk_commit_group() {
  asm volatile("cp.async.bulk.commit_group;" ::: "memory");
}

// Until at most N bulk groups of this thread still read shared memory (their source may be
// rewritten), or with bulk_wait_group, are still in flight at all.
template <int N> __device__ __forceinline__ void bulk_wait_group_read() {
  asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(N) : "memory");
}
// After bulk_wait_group: orders the bulk copies' global writes before this thread's later
// (generic) memory operations, such as a release that publishes them. (The completion of a bulk
// copy implies such a fence in the PTX memory model; this one says so where it matters.)
__device__ __forceinline__ void fence_proxy_async_global() {
  asm volatile("fence.proxy.async.global;" ::: "memory");
}

template <int N> __device__ __forceinline__ void bulk_wait_group() {
  asm volatile("cp.async.bulk.wait_group %0;" ::"n"(N) : "memory");
}

// One (rows, COLS) tile as Tile's 64-column groups, each a box starting at `row`.
template <class Tile, int COLS>
__device__ __forceinline__ void tma_load_tile(u32 dst, const TmaTensor& t, u32 bar, int row,
                                              int head, int batch) {
#pragma unroll
  for (int g = 0; g < COLS / 64; ++g)
    tma_load_box(dst + g * Tile::kGroupBytes, t, bar, g * 64, row, head, batch);
}

// Rows [row0, row0 + box rows) of a (ROWS, COLS) Tile at src, one box per 64-column group, to
// global rows starting at `row`.
template <class Tile, int COLS>
__device__ __forceinline__ void tma_store_tile(const TmaTensor& t, u32 src, int row0, int row,
                                               int head, int batch) {
#pragma unroll
  for (int g = 0; g < COLS / 64; ++g)
    tma_store_box(t, src + g * Tile::kGroupBytes + row0 * 128, g * 64, row, head, batch);
}

// Hands registers between warpgroups: every warp of a warpgroup executes the same one. The
// loading warpgroup gives up what the computing ones take.
template <int REGS> __device__ __forceinline__ void setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(REGS));
}
template <int REGS> __device__ __forceinline__ void setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(REGS));
}

// How a warp-specialized kernel of COMPUTE_THREADS computing threads plus one loading warpgroup
// shares registers. Two CTAs per SM when a single computing warpgroup leaves room for a second
// CTA's SMEM_BYTES (227 KB per SM, 1 KB of it reserved per CTA). Registers at entry come from
// __launch_bounds__; then the loader keeps PRODUCER_REGS and the computing warpgroups share the
// rest, at most 240 each (setmaxnreg takes multiples of 8 from 24 to 256). The loader's count is
// the least its loop runs in without spilling (codegen's ws_producer_registers).
template <int COMPUTE_THREADS, int SMEM_BYTES, int PRODUCER_REGS> struct WsRegisters {
  static constexpr int kCtasPerSm =
      COMPUTE_THREADS == 128 && 2 * (SMEM_BYTES + 1024) <= 233472 ? 2 : 1;
  static constexpr int kProducerRegs = PRODUCER_REGS;
  static constexpr int kEntryRegs = 65536 / kCtasPerSm / (COMPUTE_THREADS + 128) / 8 * 8 > 255
                                        ? 255
                                        : 65536 / kCtasPerSm / (COMPUTE_THREADS + 128) / 8 * 8;
  // The pool is what the CTA was launched with, kEntryRegs per thread: setmaxnreg.inc waits
  // until the loader's setmaxnreg.dec has released enough, so asking for more than the pool
  // holds hangs the CTA (65536 per SM is not the pool: 168 x 384 = 64512).
  static constexpr int kComputeRegsFit =
      (kEntryRegs * (COMPUTE_THREADS + 128) - 128 * kProducerRegs) / COMPUTE_THREADS / 8 * 8;
  static constexpr int kComputeRegs = kComputeRegsFit > 240 ? 240 : kComputeRegsFit;
  static constexpr bool kMoveRegisters = kEntryRegs < kComputeRegs;
  static_assert(!kMoveRegisters || 128 * kProducerRegs + COMPUTE_THREADS * kComputeRegs <=
                                       kEntryRegs * (COMPUTE_THREADS + 128),
                "the computing warpgroups would ask for more registers than the loader frees");

  // The loading warpgroup's side and the computing warpgroups' side of the hand-off.
  static __device__ __forceinline__ void give() {
    if (kMoveRegisters) setmaxnreg_dec<kProducerRegs>();
  }
  static __device__ __forceinline__ void take() {
    if (kMoveRegisters) setmaxnreg_inc<kComputeRegs>();
  }
};

} // namespace attnjit
