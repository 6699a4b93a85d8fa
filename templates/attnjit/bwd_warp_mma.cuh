// The backward's per-warp tensor-core steps. A warp owns kWarpKeys keys (rows of K, V, dK, dV)
// and, for dQ, one (16-row, kDqCols-column) piece of the query block.
#pragma once

#include <attnjit/bwd_dkdv_store.cuh>
#include <attnjit/bwd_params.h>
#include <attnjit/ptx.cuh>
#include <attnjit/smem_tile.cuh>

namespace attnjit {

template <class K> struct BwdWarpMma {
  using T = typename K::T;
  static constexpr int KT = K::kKTiles, MT8 = K::kMTiles8;

  int lane, key0;
  SwizzledCols cols_a;  // A operands and transposed B operands: rows lane & 15
  SwizzledCols cols_bt; // B operands read untransposed: rows (lane & 7) + 8 * (lane >> 4)

  __device__ __forceinline__ BwdWarpMma(int lane_, int key0_)
      : lane(lane_), key0(key0_), cols_a((lane_ >> 4) ^ (lane_ & 7)),
        cols_bt(((lane_ >> 3) & 1) ^ (lane_ & 7)) {}

  // acc = R C^T with R = this warp's rows of a (BLOCK_N, D) tile (K or V) and C a (BLOCK_M, D)
  // tile (Q or dO): (kWarpKeys, BLOCK_M) fp32.
  template <class RowTile, class ColTile>
  __device__ __forceinline__ void rows_times_cols_t(float (&acc)[KT][MT8][4], u32 rows,
                                                    u32 cols) const {
    static_assert(RowTile::kChunks == ColTile::kChunks, "R and C must share the head dim");
#pragma unroll
    for (int kt = 0; kt < KT; ++kt)
#pragma unroll
      for (int mt = 0; mt < MT8; ++mt)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          acc[kt][mt][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < RowTile::kChunks / 2; ++kk) {
      u32 a[KT][4];
#pragma unroll
      for (int kt = 0; kt < KT; ++kt)
        ldmatrix_x4(a[kt], rows + RowTile::row_offset(key0 + kt * 16 + (lane & 15)) + cols_a(kk));
#pragma unroll
      for (int mt = 0; mt < MT8; mt += 2) {
        u32 bf[4]; // b-fragments of query tiles mt and mt+1
        ldmatrix_x4(bf, cols + ColTile::row_offset(mt * 8 + (lane & 7) + ((lane >> 4) << 3)) +
                            cols_bt(kk));
#pragma unroll
        for (int kt = 0; kt < KT; ++kt) {
          mma_16816<T>(acc[kt][mt], a[kt], bf[0], bf[1]);
          mma_16816<T>(acc[kt][mt + 1], a[kt], bf[2], bf[3]);
        }
      }
    }
  }

  // A (kWarpKeys, BLOCK_M) fp32 matrix in the MMA's C layout, re-packed in the dtype as the A
  // fragments of the next MMA: frag[kt][kp] holds query columns kp*16 .. kp*16+15. Element
  // (kt, mt, 2*hf + e) of the C layout is half e of frag[kt][mt / 2][(mt % 2) * 2 + hf].
  static constexpr int KP = K::kBlockM / 16;
  using Frags = u32[KT][KP][4];

  __device__ __forceinline__ static void pack(const float (&x)[KT][MT8][4], Frags& frag) {
#pragma unroll
    for (int kt = 0; kt < KT; ++kt)
#pragma unroll
      for (int mt = 0; mt < MT8; ++mt)
#pragma unroll
        for (int hf = 0; hf < 2; ++hf)
          frag[kt][mt / 2][(mt % 2) * 2 + hf] =
              Dtype<T>::pack(x[kt][mt][2 * hf], x[kt][mt][2 * hf + 1]);
  }

  // acc += X C with X (kWarpKeys, BLOCK_M) packed A fragments (P^T or dS^T) and C a
  // (BLOCK_M, D) tile in shared memory (dO or Q), read transposed.
  template <class ColTile, int D8>
  __device__ __forceinline__ void accumulate_t(float (&acc)[KT][D8][4], const Frags& a,
                                               u32 cols) const {
#pragma unroll
    for (int kp = 0; kp < KP; ++kp)
#pragma unroll
      for (int dt = 0; dt < D8; dt += 2) {
        u32 bf[4];
        ldmatrix_x4_trans(bf, cols + ColTile::row_offset(kp * 16 + (lane & 15)) + cols_a(dt / 2));
#pragma unroll
        for (int kt = 0; kt < KT; ++kt) {
          mma_16816<T>(acc[kt][dt], a[kt][kp], bf[0], bf[1]);
          mma_16816<T>(acc[kt][dt + 1], a[kt][kp], bf[2], bf[3]);
        }
      }
  }

  // dS^T (kWarpKeys, BLOCK_M), packed, -> shared memory, for dQ = dS K.
  __device__ __forceinline__ void store_ds(const Frags& ds, u32 s_ds) const {
    using DsTile = typename K::DsTile;
#pragma unroll
    for (int kt = 0; kt < KT; ++kt)
#pragma unroll
      for (int mt = 0; mt < MT8; ++mt)
#pragma unroll
        for (int hf = 0; hf < 2; ++hf) {
          const int row = key0 + kt * 16 + lane / 4 + hf * 8;
          const u32 addr = s_ds + DsTile::offset(row, mt) + (lane % 4) * 4;
          asm volatile("st.shared.u32 [%0], %1;" ::"r"(addr),
                       "r"(ds[kt][mt / 2][(mt % 2) * 2 + hf]));
        }
  }

  // dQ[m0 + 16 rows, kDqCols columns] += dS K for this warp's piece, by fp32 atomics.
  __device__ __forceinline__ void dq_atomic_add(const BwdParams& p, u32 s_ds, u32 s_k, int b, int h,
                                                int m0, int warp) const {
    using DsTile = typename K::DsTile;
    using KTile = typename K::KTile;
    constexpr int DT = K::kDqTiles;
    const int row_tile = warp / K::kDqWarpsPerRow;
    const int col0 = (warp % K::kDqWarpsPerRow) * K::kDqCols;
    float acc[DT][4] = {};
    // row_tile and col0 depend on the warp, so their swizzled columns are computed rather than
    // indexed out of SwizzledCols (a run-time index would put its array in local memory). When a
    // warp's columns start on a 64-column boundary, the swizzle pattern repeats and col0 is a
    // plain byte offset.
    const u32 ds_col = cols_bt.at(row_tile);
    auto k_col = [&](int dt) {
      if constexpr (K::kDqCols % 64 == 0)
        return cols_a(dt / 2) + static_cast<u32>(col0) * 2;
      else
        return cols_a.at(col0 / 16 + dt / 2);
    };
#pragma unroll
    for (int kn = 0; kn < K::kBlockN / 16; ++kn) {
      u32 a[4]; // dS (16 queries, 16 keys), read transposed out of dS^T
      ldmatrix_x4_trans(a, s_ds + DsTile::row_offset(kn * 16 + (lane & 7) + ((lane >> 4) << 3)) +
                               ds_col);
#pragma unroll
      for (int dt = 0; dt < DT; dt += 2) {
        u32 bf[4];
        ldmatrix_x4_trans(bf, s_k + KTile::row_offset(kn * 16 + (lane & 15)) + k_col(dt));
        mma_16816<T>(acc[dt], a, bf[0], bf[1]);
        mma_16816<T>(acc[dt + 1], a, bf[2], bf[3]);
      }
    }
    float* dq = p.dq_accum + ((static_cast<i64>(b) * p.num_heads + h) * p.seqlen_q) * K::kDqk;
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      const int row = m0 + row_tile * 16 + lane / 4 + hf * 8;
      if (row >= p.seqlen_q) continue;
#pragma unroll
      for (int dt = 0; dt < DT; ++dt) {
        const int col = col0 + dt * 8 + (lane % 4) * 2;
        red_add2(dq + static_cast<i64>(row) * K::kDqk + col, acc[dt][2 * hf], acc[dt][2 * hf + 1]);
      }
    }
  }

  // dK (scaled by the softmax scale, which S carried) and dV to global memory.
  template <int DQK8, int DV8>
  __device__ __forceinline__ void write_dkdv(const BwdParams& p, const float (&dk)[KT][DQK8][4],
                                             const float (&dv)[KT][DV8][4], int b, int kv_h,
                                             int n0) const {
    store_dkdv<T>(p, dk, dv, b, kv_h, n0 + key0, lane);
  }

  // fp32 partials of this CTA's share of the group, for flash_bwd_dkv_reduce_kernel.
  template <int DQK8, int DV8>
  __device__ __forceinline__ void
  write_dkdv_partial(const BwdParams& p, const float (&dk)[KT][DQK8][4],
                     const float (&dv)[KT][DV8][4], int split, int b, int kv_h, int n0) const {
    store_dkdv_partial(p, dk, dv, split, b, kv_h, n0 + key0, lane);
  }
};

} // namespace attnjit
