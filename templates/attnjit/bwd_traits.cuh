// Compile-time shape of the backward's main (dK/dV) kernel. The CTA owns BLOCK_N keys of one
// (batch, KV head) and walks every query block of every query head in its group; each warp owns
// kWarpKeys of the keys, so S^T = K Q^T lands with keys as rows and P^T, dS^T feed the dV and dK
// MMAs straight from registers (FlashAttention-2 goes through shared memory for that instead).
#pragma once

#include <attnjit/smem_tile.cuh>

namespace attnjit {

template <class T_, int HEAD_DIM_QK, int HEAD_DIM_V, int BLOCK_M, int BLOCK_N, int NUM_WARPS,
          bool CAUSAL, bool DETERMINISTIC>
struct BwdTraits {
  using T = T_;
  static constexpr int kDqk = HEAD_DIM_QK;
  static constexpr int kDv = HEAD_DIM_V;
  static constexpr int kBlockM = BLOCK_M;
  static constexpr int kBlockN = BLOCK_N;
  static constexpr int kWarps = NUM_WARPS;
  static constexpr int kThreads = NUM_WARPS * 32;
  static constexpr bool kCausal = CAUSAL;
  // Deterministic: dQ comes from its own kernel (bwd_dq_kernel.cuh), not from atomics here.
  static constexpr bool kAccumulateDq = !DETERMINISTIC;

  static constexpr int kWarpKeys = BLOCK_N / NUM_WARPS;
  static constexpr int kKTiles = kWarpKeys / 16; // m16 tiles of keys per warp
  static constexpr int kMTiles8 = BLOCK_M / 8;   // n8 tiles of queries in S^T

  // dQ = dS K: the (BLOCK_M, Dqk) block split over warps as (m16 tile, column range) pairs.
  static constexpr int kDqRowTiles = BLOCK_M / 16;
  static constexpr int kDqWarpsPerRow = NUM_WARPS / kDqRowTiles;
  static constexpr int kDqCols = HEAD_DIM_QK / kDqWarpsPerRow; // columns per warp
  static constexpr int kDqTiles = kDqCols / 8;

  static_assert(HEAD_DIM_QK % 16 == 0 && HEAD_DIM_V % 16 == 0, "head dims must be multiples of 16");
  static_assert(kWarpKeys % 16 == 0, "each warp owns whole 16-key MMA tiles");
  static_assert(BLOCK_M % 16 == 0, "block_m must be a multiple of 16");
  static_assert(NUM_WARPS % kDqRowTiles == 0, "dQ: warps must cover block_m / 16 row tiles evenly");
  static_assert(kDqCols % 16 == 0, "dQ: each warp needs whole pairs of 8-column tiles");

  using QTile = SmemTile<BLOCK_M, HEAD_DIM_QK>; // (BLOCK_M, Dqk) x 2 stages
  using DoTile = SmemTile<BLOCK_M, HEAD_DIM_V>; // (BLOCK_M, Dv) x 2 stages
  using KTile = SmemTile<BLOCK_N, HEAD_DIM_QK>; // (BLOCK_N, Dqk)
  using VTile = SmemTile<BLOCK_N, HEAD_DIM_V>;  // (BLOCK_N, Dv)
  using DsTile = SmemTile<BLOCK_N, BLOCK_M>;    // (BLOCK_N, BLOCK_M) dS^T, for dQ = dS K
  static constexpr int kRowStatsBytes = 2 * 2 * BLOCK_M * 4; // LSE and D, 2 stages, fp32

  static constexpr int kSmemBytes = KTile::kBytes + VTile::kBytes + 2 * QTile::kBytes +
                                    2 * DoTile::kBytes + DsTile::kBytes + kRowStatsBytes;
};

} // namespace attnjit
